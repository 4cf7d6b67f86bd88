"""Benchmark the training part on MovieLens-100k: examples per second and seconds per epoch.

    python -m jobs.bench.bench_training [--source ../shared/data/movielens-100k] [--epochs 3] [--out FILE]

Imports the ratings and titles (jobs.datasets.import_dataset), embeds the titles with the packaged text
model, then times (a) plain epochs of the two-tower model after one untimed warm-up epoch and (b) the
whole nightly fit (first training with early stopping, re-ranker, two fine-tunings, evaluation),
on `cuda` when present, else CPU. Prints a table and the machine; `--out` also writes JSON.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from jobs.plumbing import config
from jobs.plumbing.stage import write_json

DEFAULT_SOURCE = Path(__file__).resolve().parents[3] / "shared" / "data" / "movielens-100k"


def movielens_inputs(source: Path):
    """(content matrix, indexed interactions, n_users, stats) for MovieLens-100k, without Spark."""
    from features.text import TextEmbedder, video_text
    from jobs.datasets.import_dataset import main as import_dataset
    from jobs.plumbing.model_inputs import index_interactions
    from models.content import content_matrix, fit_content_stats

    with tempfile.TemporaryDirectory() as tmp:
        wh = config.Warehouse.at(tmp)
        if import_dataset(["--format", "movielens-100k", "--source", str(source), "--warehouse", tmp]) != 0:
            raise SystemExit(f"bench_training: cannot import {source}")
        catalog = pd.read_parquet(wh.landing_catalog).sort_values(config.VIDEO_ID).reset_index(drop=True)
        interactions = pd.read_parquet(wh.landing_interactions)
    texts = [video_text(t, d, g) for t, d, g in zip(catalog[config.TITLE], catalog[config.DESCRIPTION],
                                                   catalog[config.TAGS])]
    items = pd.DataFrame({config.VIDEO_ID: catalog[config.VIDEO_ID], "has_text": True,
                          "text_embedding": list(TextEmbedder().embed(texts)), "has_video": False, "visual": None,
                          "thumbnail": None, "has_audio": False, "audio": None})
    interactions[config.TS] = pd.to_datetime(interactions[config.TS], unit="s", utc=True)
    interactions["weight"] = interactions[config.EVENT].map(config.EVENT_WEIGHTS).fillna(1.0).astype(np.float32)
    interactions = interactions.sort_values([config.USER_ID, config.TS, config.VIDEO_ID], kind="stable")
    user_ids = np.sort(interactions[config.USER_ID].unique()).astype(object)
    data = index_interactions(interactions, items[config.VIDEO_ID].to_numpy(object), user_ids)
    stats = fit_content_stats(items)
    return content_matrix(items, stats), data, len(user_ids), stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="the MovieLens-100k directory")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if not (args.source / "u.data").exists():
        print(f"bench_training: no MovieLens-100k at {args.source}", file=sys.stderr)
        return 2

    import torch

    from models.fit import FitSettings, fit_and_evaluate
    from models.training import pick_device, train_two_tower

    content, data, n_users, stats = movielens_inputs(args.source)
    quiet = lambda line: None  # noqa: E731
    warm, _ = train_two_tower(content, data, n_users, epochs=1, batch_size=args.batch_size, log=quiet)
    started = time.perf_counter()
    train_two_tower(content, data, n_users, epochs=args.epochs, batch_size=args.batch_size, init=warm, log=quiet)
    epoch_s = (time.perf_counter() - started) / args.epochs
    started = time.perf_counter()
    fit = fit_and_evaluate(content, data, n_users, FitSettings(batch_size=args.batch_size,
                                                                cfg_overrides=stats.branch_layout()), log=quiet)
    fit_s = time.perf_counter() - started

    device = pick_device()
    results = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({os.cpu_count()} cores, "
                  f"{torch.get_num_threads()} torch threads)",
        "examples": len(data), "batch_size": args.batch_size,
        "seconds_per_epoch": round(epoch_s, 2), "examples_per_second": round(len(data) / epoch_s),
        "nightly_fit_seconds": round(fit_s, 1), "nightly_fit_epochs": fit.training["epochs"],
        "held_out_ndcg@10": round(fit.evaluation["two_tower"]["ndcg@10"], 4),
        "python": platform.python_version(), "torch": torch.__version__,
    }
    print("| device | examples | s/epoch | examples/s | nightly fit s |\n|---|---|---|---|---|")
    print(f"| {results['device']} | {results['examples']:,} | {results['seconds_per_epoch']} "
          f"| {results['examples_per_second']:,} | {results['nightly_fit_seconds']} |")
    if args.out:
        write_json(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
