"""The text embedder's faster arithmetic against the float32 model it replaces, on real titles.

The reference is sentence-transformers itself as the stage used it before (float32 weights,
normalised by the library), not features.text: each text's new vector must have a cosine of at
least 0.99 with it, which is what lets the text hash stay as it was (jobs/extract_features.py).
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from features.text import (TEXT_DIM, TEXT_PRECISIONS, TextEmbedder, model_dir, native_int8, resolve_precision,
                           video_text)

MIN_COSINE = 0.99


@pytest.fixture(scope="module")
def reference_model():
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_dir()), device="cpu", local_files_only=True)


def reference(model, texts: list[str]) -> np.ndarray:
    return model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True,
                        show_progress_bar=False)


@pytest.fixture(scope="module")
def bfloat16_embedder() -> TextEmbedder:
    # Asked for explicitly, so the bfloat16 path is checked on every machine, not only where
    # "auto" picks it.
    return TextEmbedder(precision="bfloat16")


@pytest.fixture(scope="module")
def int8_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("text-model")


@pytest.fixture(scope="module")
def int8_embedder(int8_cache) -> TextEmbedder:
    # "auto" picks int8 only where the CPU multiplies 8-bit natively (native_int8); elsewhere ONNX
    # Runtime's int8 products lose more (cosine 0.983 on an AMD EPYC with AVX2 only).
    if not native_int8():
        pytest.skip("no 8-bit dot products on this CPU: the int8 embedder is not used here")
    # Built here from the bundled weights into an empty cache, so the export, smoothing,
    # quantisation and check all run.
    return TextEmbedder(precision="int8", cache_dir=int8_cache)


def movielens_texts(shared_data) -> list[str]:
    from jobs.datasets.import_dataset import read_movielens_100k

    source = shared_data / "movielens-100k"
    if not (source / "u.item").is_file():
        pytest.skip(f"no MovieLens-100k in {source}")
    catalog = read_movielens_100k(source).catalog
    return [video_text(title, None, tags) for title, tags in zip(catalog["title"], catalog["tags"])]


def demo_texts() -> list[str]:
    """The 240 videos of `make demo` (make_demo_data's default seed and run date)."""
    from jobs.datasets.make_demo_data import DEFAULT_RUN_DATE, DEFAULT_SEED, plan_catalog

    catalog_seq, _ = np.random.SeedSequence(DEFAULT_SEED).spawn(2)
    videos = plan_catalog(np.random.default_rng(catalog_seq), 240, date.fromisoformat(DEFAULT_RUN_DATE))
    return [video_text(v.title, v.description, v.tags) for v in videos]


def assert_close_to_reference(new: np.ndarray, old: np.ndarray, texts: list[str]) -> None:
    assert new.shape == old.shape == (len(texts), TEXT_DIM) and new.dtype == np.float32
    assert np.allclose(np.linalg.norm(new, axis=1), 1.0, atol=1e-5)
    cosine = np.sum(new * old, axis=1)
    worst = int(np.argmin(cosine))
    assert cosine[worst] >= MIN_COSINE, f"cosine {cosine[worst]:.4f} for {texts[worst]!r}"


def test_bfloat16_matches_float32_on_every_movielens_title(shared_data, reference_model, bfloat16_embedder):
    texts = movielens_texts(shared_data)
    assert len(texts) == 1682
    assert_close_to_reference(bfloat16_embedder.embed(texts), reference(reference_model, texts), texts)


def test_bfloat16_matches_float32_on_the_demo_catalog(reference_model, bfloat16_embedder):
    texts = demo_texts()
    assert len(set(texts)) > 200
    assert_close_to_reference(bfloat16_embedder.embed(texts), reference(reference_model, texts), texts)


def test_int8_matches_float32_on_every_movielens_title(shared_data, reference_model, int8_embedder):
    texts = movielens_texts(shared_data)
    assert_close_to_reference(int8_embedder.embed(texts), reference(reference_model, texts), texts)


def test_int8_matches_float32_on_the_demo_catalog(reference_model, int8_embedder):
    texts = demo_texts()
    assert_close_to_reference(int8_embedder.embed(texts), reference(reference_model, texts), texts)


def test_int8_gives_the_same_texts_the_same_vectors_in_any_order(int8_embedder):
    # Activations are quantised per batch: the batches must not depend on the order of the rows
    # (a Spark partition's rows come in no fixed order).
    texts = demo_texts()[:64]
    order = np.random.default_rng(1).permutation(len(texts))
    assert np.array_equal(int8_embedder.embed([texts[i] for i in order]), int8_embedder.embed(texts)[order])


def test_int8_vectors_do_not_depend_on_how_many_batches_run_at_once(int8_cache, int8_embedder):
    # A Spark task embeds on one thread, the benchmark and a driver on several: the same texts
    # must give the same vectors either way.
    from features.text_int8 import Int8Encoder, int8_encoder_path

    texts = demo_texts()
    path = int8_encoder_path(model_dir(), int8_cache)
    one, three = Int8Encoder(path, model_dir(), threads=1), Int8Encoder(path, model_dir(), threads=3)
    assert np.array_equal(one.embed(texts), three.embed(texts))


def test_int8_model_is_built_once_and_reused(int8_cache, int8_embedder):
    import json

    from features.text_int8 import MODEL_FILE

    [built] = [p for p in int8_cache.iterdir()]  # no temporary build folder left behind
    record = json.loads((built / "build.json").read_text())
    assert record["calibration_cosine_min"] >= MIN_COSINE
    before = (built / MODEL_FILE).stat().st_mtime_ns
    again = TextEmbedder(precision="int8", cache_dir=int8_cache)
    assert (built / MODEL_FILE).stat().st_mtime_ns == before and list(int8_cache.iterdir()) == [built]
    assert np.array_equal(again.embed(["Toy Story (1995)", ""]), int8_embedder.embed(["Toy Story (1995)", ""]))


def test_default_embedder_matches_float32_and_keeps_input_order(reference_model):
    """The embedder the stage builds ("auto"), on texts of very different lengths given in an
    order that length sorting must undo, with empty texts in between."""
    texts = demo_texts()[:40] + ["Toy Story (1995)", "", "a " * 300, "Heat (1995)\nAction, Crime, Thriller", "  "]
    embedder = TextEmbedder()
    assert embedder.precision == resolve_precision("auto") != "auto"
    vectors = embedder.embed(texts)
    present = [i for i, t in enumerate(texts) if t.strip()]
    assert not vectors[[i for i in range(len(texts)) if i not in present]].any()
    assert_close_to_reference(vectors[present], reference(reference_model, [texts[i].strip() for i in present]),
                              [texts[i] for i in present])


def test_precision_names():
    assert [resolve_precision(p) for p in ("float32", "bfloat16", "int8")] == ["float32", "bfloat16", "int8"]
    assert resolve_precision("auto") in TEXT_PRECISIONS[1:]
    with pytest.raises(ValueError, match="int4"):
        resolve_precision("int4")
    with pytest.raises(ValueError, match="CPU only"):
        resolve_precision("int8", "cuda")
