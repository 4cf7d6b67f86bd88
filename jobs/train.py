"""Train: fit the fused two-tower model on the interactions and save a versioned artifact.

    python -m jobs.train --warehouse DIR --run-date YYYY-MM-DD [--epochs 8] [--seed 7]

Uses `cuda` when the node has a GPU (the DAG routes this task to the `gpu` pool), CPU otherwise.
The artifact goes to `tables/models/<model_version>/`; the version is recorded in the run's counters
for the scoring stage.
"""

from __future__ import annotations

import sys

import numpy as np

from jobs import config
from jobs.model_inputs import index_interactions, load_interactions, load_items
from jobs.stage import StageError, base_parser, run_stage, write_counters

STAGE = "train"


def train(wh: config.Warehouse, run_date: str, *, epochs: int = 8, seed: int = config.DEFAULT_SEED,
          batch_size: int = 512) -> dict:
    from models.artifact import save_artifact
    from models.content import content_matrix, fit_content_stats
    from models.training import train_two_tower

    if not wh.interactions.exists():
        raise StageError(STAGE, f"no interactions table at {wh.interactions}; run ingest first")
    items = load_items(wh)
    interactions = load_interactions(wh)
    if interactions.empty:
        raise StageError(STAGE, "the interactions table is empty: nothing to learn from")
    video_ids = items[config.VIDEO_ID].to_numpy(object)
    user_ids = np.sort(interactions[config.USER_ID].unique()).astype(object)
    data = index_interactions(interactions, video_ids, user_ids)

    stats = fit_content_stats(items)
    content = content_matrix(items, stats)
    model, metrics = train_two_tower(content, data, len(user_ids), epochs=epochs, seed=seed,
                                     batch_size=batch_size, log=lambda line: print(line, file=sys.stderr))
    warm = np.bincount(data.item, minlength=len(video_ids)) > 0
    version = save_artifact(wh.models, run_date, model, stats, video_ids, warm, user_ids,
                            {"training": metrics, "seed": seed})
    counters = {"model_version": version, "users": len(user_ids), "videos": len(video_ids),
                "warm_videos": int(warm.sum()), **{k: v for k, v in metrics.items() if k != "epoch_losses"},
                "final_loss": metrics["epoch_losses"][-1] if metrics["epoch_losses"] else None}
    write_counters(wh, run_date, STAGE, counters)
    return counters


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=config.DEFAULT_SEED)
    args = parser.parse_args(argv)
    return run_stage(STAGE, lambda: train(config.Warehouse.at(args.warehouse), args.run_date,
                                          epochs=args.epochs, seed=args.seed, batch_size=args.batch_size))


if __name__ == "__main__":
    sys.exit(main())
