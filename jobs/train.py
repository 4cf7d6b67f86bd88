"""Train: fit the fused two-tower model and its re-ranker, measure them, save a versioned artifact.

    python -m jobs.train --warehouse DIR --run-date YYYY-MM-DD [--training-mode auto|full|incremental] \
        [--full-refresh] [--epochs 24] [--fine-tune-epochs 2] [--batch-size N] [--seed 7]

Uses `cuda` when the node has a GPU (the DAG routes this task to the `gpu` pool), CPU otherwise.
Two modes (`choose_parent` decides under `auto`):

- full: from scratch on the whole history. Each user's most recent interaction is held out to
  measure the model (leave-last-out, `models.fit`); the published model is then fine-tuned on
  everything.
- incremental: the production model updated with the interactions since its window and a replay
  sample of older ones, measured with the production model on the newest interactions, which
  neither trained on (`models.incremental`).

The artifact goes to `tables/models/<model_version>/` with its evaluation, its mode, its parent
version and the interaction window it learnt; the version is recorded in the run's counters for
the evaluate and score stages.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time

import numpy as np

from jobs.plumbing import config
from jobs.plumbing.model_inputs import load_model_inputs
from jobs.plumbing.serving import production_model
from jobs.plumbing.stage import StageError, add_shared_arguments, base_parser, run_stage, write_counters

STAGE = "train"


def train(wh: config.Warehouse, run_date: str, *, epochs: int = config.DEFAULT_EPOCHS, fine_tune_epochs: int = 2,
          seed: int = config.DEFAULT_SEED, batch_size: int | None = None, mode: str = config.DEFAULT_TRAINING_MODE,
          full_refresh: bool = False) -> dict:
    from models.artifact import save_artifact
    from models.content import content_matrix, fit_content_stats

    if mode not in config.TRAINING_MODES:
        raise StageError(STAGE, f"unknown training mode {mode!r}: use one of {', '.join(config.TRAINING_MODES)}")
    if not wh.interactions.exists():
        raise StageError(STAGE, f"no interactions table at {wh.interactions}; run ingest first")
    inputs = load_model_inputs(wh)
    if not len(inputs.data):
        raise StageError(STAGE, "the interactions table is empty: nothing to learn from")
    items, video_ids, user_ids, data = inputs.items, inputs.video_ids, inputs.user_ids, inputs.data

    fresh_stats = fit_content_stats(items)
    parent, why = choose_parent(wh, run_date, mode, full_refresh, fresh_stats, data)
    log = lambda line: print(line, file=sys.stderr)  # noqa: E731
    log(f"training mode: {'incremental' if parent else 'full'} ({why})")
    started = time.perf_counter()
    if parent is None:
        stats = fresh_stats
        result = _fit_full(stats, content_matrix(items, stats), data, len(user_ids), epochs, fine_tune_epochs,
                           batch_size, seed, log)
        lineage = {"training_mode": "full", "parent_version": None, "full_trained_on": run_date,
                   "full_best_epoch": result.training.get("best_epoch"),
                   "evaluation_protocol": "leave_last_out",
                   "window": _window(float(data.ts.min()), float(data.ts.max()))}
    else:
        from models.incremental import IncrementalSettings, fit_incremental

        stats = parent.stats
        settings = IncrementalSettings(eval_days=config.DEFAULT_EVAL_DAYS, min_exam_users=config.DEFAULT_EVAL_MIN_USERS,
                                       max_eval_users=config.DEFAULT_MAX_EVAL_USERS, seed=seed,
                                       batch_size=batch_size or IncrementalSettings.batch_size)
        result = fit_incremental(parent, content_matrix(items, stats), data, video_ids, user_ids, settings, log=log)
        lineage = {"training_mode": "incremental", "parent_version": parent.version,
                   "full_trained_on": parent.metadata["full_trained_on"],
                   "full_best_epoch": parent.metadata.get("full_best_epoch"), "evaluation_protocol": "after_cutoff",
                   "window": _window(result.training["window_start"], result.training["window_end"]),
                   "exam_cutoff": result.training["exam_cutoff"]}
    lineage["mode_reason"] = why
    fit_seconds = round(time.perf_counter() - started, 2)   # the fit and its evaluation, without the I/O
    learnt = data.subset(data.ts <= lineage["window"]["end"])
    warm = np.bincount(learnt.item, minlength=len(video_ids)) > 0
    method = "two_tower_ranker" if result.ranker is not None else "two_tower"
    version = save_artifact(wh.models, run_date, result.model, stats, video_ids, warm, user_ids,
                            {"training": result.training, "evaluation": result.evaluation,
                             "ablation": result.ablation, "ranker_gain": result.ranker_gain,
                             "published_method": method, "candidates": 200, "seed": seed,
                             "max_eval_users": config.DEFAULT_MAX_EVAL_USERS, **lineage},
                            ranker=result.ranker)
    held_out = result.evaluation.get(method, {})
    counters = {"model_version": version, "users": len(user_ids), "videos": len(video_ids),
                "warm_videos": int(warm.sum()), "published_method": method,
                "ndcg@10": held_out.get("ndcg@10"), "hr@10": held_out.get("hr@10"), "fit_seconds": fit_seconds,
                **{k: v for k, v in lineage.items() if k != "window"},
                **{k: v for k, v in result.training.items() if k != "epoch_losses"}}
    write_counters(wh, run_date, STAGE, counters)
    return counters


def _fit_full(stats, content: np.ndarray, data, n_users: int, epochs: int, fine_tune_epochs: int,
              batch_size: int | None, seed: int, log):
    from models.fit import FitSettings, fit_and_evaluate

    settings = FitSettings(epochs=epochs, fine_tune_epochs=fine_tune_epochs, batch_size=batch_size, seed=seed,
                           max_eval_users=config.DEFAULT_MAX_EVAL_USERS, cfg_overrides=stats.branch_layout())
    columns, present = stats.modality_columns(), stats.modality_present(content)
    return fit_and_evaluate(content, data, n_users, settings, log=log,
                            modalities={m: (columns[m], present[m]) for m in columns})


def _window(start: float, end: float) -> dict:
    """The interactions a model learnt: those with start < ts <= end (Unix seconds; a full
    retrain's start is its first interaction, included)."""
    return {"start": start, "end": end, "start_utc": _utc(start), "end_utc": _utc(end)}


def _utc(seconds: float) -> str:
    days, rest = divmod(seconds, 86_400)
    moment = dt.datetime(1970, 1, 1) + dt.timedelta(days=days, seconds=rest)
    return moment.isoformat(timespec="seconds") + "Z"


def choose_parent(wh: config.Warehouse, run_date: str, mode: str, full_refresh: bool, fresh_stats,
                  data) -> tuple[object | None, str]:
    """(the production model to train from, or None for a full retrain; why). Incremental needs
    a production model trained with today's feature schema and model configuration, that recorded
    its window, from which no user was erased since, with interactions newer than its window;
    `auto` also retrains fully every VREC_FULL_RETRAIN_DAYS days. A requested incremental night
    that cannot be one fails, saying why; `auto` also retrains fully when fewer than
    VREC_EVAL_MIN_USERS users could sit the incremental model's exam."""
    if mode == "full":
        return None, "training_mode=full"
    if full_refresh:
        return None, "full_refresh"
    parent, blocker = _usable_parent(wh, fresh_stats, data)
    if parent is not None and mode == "auto":
        from models.incremental import exam_cutoff, exam_users

        since = (dt.date.fromisoformat(run_date) - dt.date.fromisoformat(parent.metadata["full_trained_on"])).days
        if since >= config.DEFAULT_FULL_RETRAIN_DAYS:
            return None, (f"the last full retrain was {since} days ago "
                          f"(VREC_FULL_RETRAIN_DAYS={config.DEFAULT_FULL_RETRAIN_DAYS:g})")
        # Too small an exam would let noise decide the gate: a full night is measured on every user.
        users = exam_users(data, exam_cutoff(data, parent.metadata["window"]["end"], config.DEFAULT_EVAL_DAYS,
                                             config.DEFAULT_EVAL_MIN_USERS))
        if users < config.DEFAULT_EVAL_MIN_USERS:
            return None, (f"an exam after production model {parent.version}'s window would hold {users} users, "
                          f"fewer than VREC_EVAL_MIN_USERS={config.DEFAULT_EVAL_MIN_USERS}")
    if parent is None:
        if mode == "incremental":
            raise StageError(STAGE, f"training_mode=incremental is not possible: {blocker}; "
                                    "use training_mode=full or auto")
        return None, blocker
    return parent, f"training_mode={mode}, from production model {parent.version}"


def _usable_parent(wh: config.Warehouse, fresh_stats, data) -> tuple[object | None, str]:
    import pandas as pd

    from models.artifact import SchemaMismatch, load_artifact
    from models.two_tower import TowerConfig

    version = production_model(wh)
    if version is None:
        return None, "no production model to start from"
    try:
        parent = load_artifact(wh.models, version)
        parent.check_schema(fresh_stats)
    except FileNotFoundError:
        return None, f"production model {version} is not in {wh.models}"
    except SchemaMismatch as err:
        return None, f"the feature schema changed: {err}"
    if parent.stats.dims != fresh_stats.dims:
        return None, f"the feature schema changed: {parent.stats.dims} then, {fresh_stats.dims} now"
    if "window" not in parent.metadata:
        return None, f"production model {version} records no interaction window"
    expected = TowerConfig(n_items=parent.model.cfg.n_items, n_users=parent.model.cfg.n_users,
                           content_dim=parent.stats.width, **parent.stats.branch_layout())
    if expected != parent.model.cfg:
        return None, f"the model configuration changed since production model {version}"
    if pd.isna(parent.user_ids).any():
        return None, f"users were erased from production model {version}: a full retrain forgets them entirely"
    if float(data.ts.max()) <= parent.metadata["window"]["end"]:
        return None, f"no interaction arrived after production model {version}'s window"
    return parent, ""


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=config.DEFAULT_EPOCHS,
                        help="most epochs of a full retrain's first training (early stopping, and on a large log its "
                             "example budget, end it sooner); an incremental night trains at most 5")
    parser.add_argument("--fine-tune-epochs", type=int, default=2, help="epochs of each fine-tuning of a full retrain")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="examples per step (default: 512, 1024 above 250,000 interactions, 2048 above "
                             "1,000,000)")
    add_shared_arguments(parser, "--seed")
    add_training_mode_argument(parser)
    parser.add_argument("--full-refresh", action=argparse.BooleanOptionalAction, default=False,
                        help="retrain fully whatever the mode (the DAG's full_refresh param, which also decodes "
                             "every video again)")
    args = parser.parse_args(argv)
    return run_stage(STAGE, args.warehouse, lambda wh: train(
        wh, args.run_date, epochs=args.epochs, fine_tune_epochs=args.fine_tune_epochs, seed=args.seed,
        batch_size=args.batch_size, mode=args.training_mode, full_refresh=args.full_refresh))


def add_training_mode_argument(parser: argparse.ArgumentParser) -> None:
    """`--training-mode`, for the train stage and run_nightly."""
    parser.add_argument("--training-mode", choices=config.TRAINING_MODES, default=config.DEFAULT_TRAINING_MODE,
                        help="full: retrain from scratch; incremental: update the production model with the "
                             "interactions since its window; auto (default, or $VREC_TRAINING_MODE): "
                             "incremental, but full every $VREC_FULL_RETRAIN_DAYS days (7) and whenever "
                             "incremental cannot apply")


if __name__ == "__main__":
    sys.exit(main())
