"""Train: fit the fused two-tower model and its re-ranker, measure them, save a versioned artifact.

    python -m jobs.train --warehouse DIR --run-date YYYY-MM-DD [--epochs 12] [--fine-tune-epochs 2] \
        [--batch-size N] [--seed 7]

Uses `cuda` when the node has a GPU (the DAG routes this task to the `gpu` pool), CPU otherwise.
Each user's most recent interaction is held out to measure the model (see `models.fit`); the
published model is then fine-tuned on everything. The artifact goes to
`tables/models/<model_version>/` with its evaluation; the version is recorded in the run's counters
for the evaluate and score stages.
"""

from __future__ import annotations

import sys

import numpy as np

from jobs.plumbing import config
from jobs.plumbing.model_inputs import load_model_inputs
from jobs.plumbing.stage import StageError, base_parser, run_stage, write_counters

STAGE = "train"


def train(wh: config.Warehouse, run_date: str, *, epochs: int = config.DEFAULT_EPOCHS, fine_tune_epochs: int = 2,
          seed: int = config.DEFAULT_SEED, batch_size: int | None = None) -> dict:
    from models.artifact import save_artifact
    from models.content import content_matrix, fit_content_stats
    from models.fit import FitSettings, fit_and_evaluate

    if not wh.interactions.exists():
        raise StageError(STAGE, f"no interactions table at {wh.interactions}; run ingest first")
    inputs = load_model_inputs(wh)
    if not len(inputs.data):
        raise StageError(STAGE, "the interactions table is empty: nothing to learn from")
    items, video_ids, user_ids, data = inputs.items, inputs.video_ids, inputs.user_ids, inputs.data

    stats = fit_content_stats(items)
    content = content_matrix(items, stats)
    settings = FitSettings(epochs=epochs, fine_tune_epochs=fine_tune_epochs, batch_size=batch_size, seed=seed,
                           max_eval_users=config.DEFAULT_MAX_EVAL_USERS, cfg_overrides=stats.branch_layout())
    columns, present = stats.modality_columns(), stats.modality_present(content)
    result = fit_and_evaluate(content, data, len(user_ids), settings, log=lambda line: print(line, file=sys.stderr),
                              modalities={m: (columns[m], present[m]) for m in columns})
    warm = np.bincount(data.item, minlength=len(video_ids)) > 0
    method = "two_tower_ranker" if result.ranker is not None else "two_tower"
    version = save_artifact(wh.models, run_date, result.model, stats, video_ids, warm, user_ids,
                            {"training": result.training, "evaluation": result.evaluation,
                             "ablation": result.ablation, "ranker_gain": result.ranker_gain,
                             "published_method": method, "candidates": settings.candidates, "seed": seed,
                             "max_eval_users": settings.max_eval_users},
                            ranker=result.ranker)
    held_out = result.evaluation.get(method, {})
    counters = {"model_version": version, "users": len(user_ids), "videos": len(video_ids),
                "warm_videos": int(warm.sum()), "published_method": method,
                "ndcg@10": held_out.get("ndcg@10"), "hr@10": held_out.get("hr@10"),
                **{k: v for k, v in result.training.items() if k != "epoch_losses"}}
    write_counters(wh, run_date, STAGE, counters)
    return counters


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=config.DEFAULT_EPOCHS,
                        help="most epochs of the first training (early stopping, and on a large log its "
                             "example budget, end it sooner)")
    parser.add_argument("--fine-tune-epochs", type=int, default=2, help="epochs of each fine-tuning")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="examples per step (default: 512, 1024 above 250,000 interactions, 2048 above "
                             "1,000,000)")
    parser.add_argument("--seed", type=int, default=config.DEFAULT_SEED)
    args = parser.parse_args(argv)
    return run_stage(STAGE, args.warehouse, lambda wh: train(wh, args.run_date,
                                                             epochs=args.epochs, fine_tune_epochs=args.fine_tune_epochs,
                                                             seed=args.seed, batch_size=args.batch_size))


if __name__ == "__main__":
    sys.exit(main())
