"""Benchmark simulated nights: a history replayed as consecutive nights, auto against full training.

    python -m jobs.bench.bench_nights [--dataset movielens-100k|load] [--source ../shared/data/movielens-100k]
                                      [--users 10000] [--videos 3000] [--interactions 100000]
                                      [--periods 8] [--night-days D] [--seed 7] [--workdir DIR]
                                      [--out docs/bench/nights.json]

The history: MovieLens-100k's ratings (`--source`), or the load benchmark's generated platform
(`jobs.datasets.make_load_data`, text only, its 60 days of timestamps; `--users`, `--videos`,
`--interactions` size it). It is cut by timestamp into `--periods` + 1 consecutive periods: of equal
length, or with `--night-days D` the last `--periods` of D days each and the first one everything
before them (a platform's steady state: each night brings a day, not a ninth of the history).
Night k (run date 2026-11-20 + k - 1 days) sees the interactions of the first k periods. Two
warehouses replay the same nights with the real stages (`python -m jobs.run_nightly`, each night a
process of its own, SASRec off): one with `--training-mode auto` (incremental, full every
VREC_FULL_RETRAIN_DAYS), one with `--training-mode full`. Per night it records the train stage's
and the whole night's seconds, the mode auto chose, the gate's decision, and the next-period
NDCG@10 and HR@10 of the model serving after each night (tonight's, or production's when the gate
stopped tonight's, which is then measured too): every new video, in the following period, of the
users who had interactions before it (`models.evaluation.after_cutoff`), scored from their
histories at the night. Auto's NDCG@10 over full's comes with a 90% interval from a paired bootstrap
over the examined users, and so do the incremental nights pooled ("incremental_nights"). `--seed` is
the stages' seed on both sides: a replay with another one is a second draw of the same comparison.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from jobs.plumbing import config
from jobs.plumbing.serving import production_model
from jobs.plumbing.stage import read_counters, write_json

DEFAULT_SOURCE = Path(__file__).resolve().parents[3] / "shared" / "data" / "movielens-100k"
FIRST_NIGHT = dt.date(2026, 11, 20)
DAY_S = 86_400.0
STAGE_LINE = re.compile(r"^stage (\w+) done in ([\d.]+)s$")
MODES = ("auto", "full")


def run_night(warehouse: Path, run_date: str, mode: str, seed: int, env: dict[str, str]) -> dict:
    """One night of the real stages in its own process (`jobs.run_nightly`), and what it recorded."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "jobs.run_nightly", "--warehouse", str(warehouse), "--run-date",
                           run_date, "--top-n", "20", "--training-mode", mode, "--seed", str(seed)],
                          capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    lines = done.stderr.strip().splitlines()
    stages = {m.group(1): float(m.group(2)) for m in map(STAGE_LINE.match, lines) if m}
    counters = read_counters(config.Warehouse.at(warehouse), run_date)
    evaluated = counters.get("evaluate", {})
    return {"seconds": round(seconds, 1), "train_seconds": stages.get("train"), "stages": stages,
            "published": done.returncode == 0, "error": None if done.returncode == 0 else lines[-1],
            "fit_seconds": counters.get("train", {}).get("fit_seconds"),
            "model_version": counters.get("train", {}).get("model_version"),
            "training_mode": counters.get("train", {}).get("training_mode"),
            "mode_reason": counters.get("train", {}).get("mode_reason"),
            "gate_passed": evaluated.get("gate_passed"), "gate": evaluated.get("gate")}


def next_period(warehouse: Path, version: str, ratings, night_end: float,
                period_end: float) -> tuple[dict, pd.DataFrame]:
    """NDCG@10 and HR@10 of a saved model on the next period's new videos of returning users, and
    each examined row's user and video id and NDCG@10 (for `compare_next_periods`)."""
    from jobs.plumbing.model_inputs import index_interactions, load_items
    from models.artifact import load_artifact
    from models.content import content_matrix
    from models.evaluation import after_cutoff, held_out_ranks, ndcg_gains, rank_metrics
    from models.incremental import artifact_scorer
    from models.scoring import Lineage

    wh = config.Warehouse.at(warehouse)
    items = load_items(wh)
    video_ids = items[config.VIDEO_ID].to_numpy(object)
    frame = ratings[ratings[config.TS] < period_end]
    user_ids = np.sort(frame[config.USER_ID].unique()).astype(object)
    data = index_interactions(frame, video_ids, user_ids)
    exam = after_cutoff(data, len(video_ids), night_end)
    artifact = load_artifact(wh.models, version)
    content = content_matrix(items, artifact.stats)
    lineage = Lineage.of(artifact, video_ids, user_ids)
    ranks, _ = held_out_ranks(artifact_scorer(artifact, content, lineage, exam.train, len(user_ids)), exam,
                              len(user_ids), len(video_ids))
    metrics = rank_metrics(ranks)
    rows = pd.DataFrame({"user": user_ids[exam.users], "video": video_ids[exam.items], "ndcg": ndcg_gains(ranks)})
    return {"ndcg@10": round(metrics.get("ndcg@10", 0.0), 5), "hr@10": round(metrics.get("hr@10", 0.0), 5),
            "videos": int(len(exam.users)), "users": int(len(np.unique(exam.users)))}, rows


def compare_next_periods(auto: pd.DataFrame, full: pd.DataFrame) -> dict:
    """Auto's next-period NDCG@10 over full's on the same examined rows (`next_period`'s; a "night"
    column when several nights are pooled), with a 90% interval from a paired bootstrap over
    users: with a few dozen returning users a period, two models of the same quality differ by tens
    of percent, and the interval says which shortfalls the exam can tell from that."""
    from models.evaluation import paired_ratio_interval

    keys = [column for column in ("night", "user", "video") if column in auto]
    both = auto.merge(full, on=keys, suffixes=("_auto", "_full"), validate="1:1")
    if len(both) != len(auto) or not both["ndcg_full"].sum():
        return {}
    low, high = paired_ratio_interval(both["ndcg_auto"].to_numpy(), both["ndcg_full"].to_numpy(),
                                      both["user"].astype(str).to_numpy())
    return {"auto_to_full_ndcg@10": round(float(both["ndcg_auto"].sum() / both["ndcg_full"].sum()), 3),
            "auto_to_full_ndcg@10_interval90": [round(low, 3), round(high, 3)]}


def incremental_summary(nights: list[dict], rows: dict[str, list[pd.DataFrame]]) -> dict:
    """The incremental nights together: auto's train seconds over full's, and auto's NDCG@10 over
    full's on all their exams pooled (each user drawn with all of their rows in every night)."""
    incremental = [n for n in nights if n["auto"]["training_mode"] == "incremental"]
    if not incremental:
        return {}
    summary = {"nights": len(incremental),
               "auto_train_seconds": round(sum(n["auto"]["train_seconds"] for n in incremental), 1),
               "full_train_seconds": round(sum(n["full"]["train_seconds"] for n in incremental), 1)}
    summary["auto_to_full_train_seconds"] = round(summary["auto_train_seconds"] / summary["full_train_seconds"], 3)
    if rows["auto"]:
        summary.update(compare_next_periods(pd.concat(rows["auto"]), pd.concat(rows["full"])))
    return summary


def add_history_arguments(parser: argparse.ArgumentParser) -> None:
    """Which history is replayed and how it is cut: --dataset, its size or source, --night-days."""
    parser.add_argument("--dataset", choices=("movielens-100k", "load"), default="movielens-100k")
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="MovieLens-100k's directory")
    parser.add_argument("--users", type=int, default=10_000, help="the generated platform's users (load)")
    parser.add_argument("--videos", type=int, default=3_000, help="its videos (load)")
    parser.add_argument("--interactions", type=int, default=100_000, help="its interactions, about (load)")
    parser.add_argument("--night-days", type=float, default=None,
                        help="each night after the first brings this many days (default: the history cut into "
                             "--periods + 1 periods of equal length)")


def land_history(warehouse: Path, args) -> Path:
    """A warehouse's landing zone with the whole history (`add_history_arguments`); the
    interactions file's path."""
    if args.dataset == "load":
        command = ["jobs.datasets.make_load_data", "--users", str(args.users), "--videos", str(args.videos),
                   "--interactions", str(args.interactions), "--media", "0"]
    else:
        command = ["jobs.import_dataset", "--format", "movielens-100k", "--source", str(args.source)]
    subprocess.run([sys.executable, "-m", *command, "--warehouse", str(warehouse)], check=True, capture_output=True)
    (path,) = (warehouse / "landing" / "interactions").iterdir()
    return path


def period_edges(seconds: np.ndarray, periods: int, night_days: float | None = None) -> np.ndarray:
    """The ends of the `periods` + 1 periods a history's Unix `seconds` are cut into: night k sees
    what comes before the k-th end and is judged on the period up to the next one.

    None: periods of equal length from the first interaction to the last. `night_days`: the last
    `periods` periods are that many days each, as nights that each bring a day (or `night_days`)
    of new interactions; the first night sees everything before them.
    """
    end = float(np.max(seconds)) + 1
    if night_days is not None and night_days <= 0:
        raise ValueError(f"a night must bring a positive number of days, not {night_days}")
    if night_days is None:
        return np.linspace(float(np.min(seconds)), end, periods + 2)[1:]
    edges = end - night_days * DAY_S * np.arange(periods, -1, -1, dtype=np.float64)
    if edges[0] <= np.min(seconds):
        raise ValueError(f"{periods} periods of {night_days} days reach back before the history's first interaction")
    return edges


def history(landing: Path, periods: int, night_days: float | None = None):
    """The whole history as landed; each row's Unix seconds; the ratings as the exams read them
    (sorted by user and time, with weights); the ends of the `periods` + 1 periods (`period_edges`)."""
    everything = pd.read_csv(landing) if landing.suffix == ".csv" else pd.read_parquet(landing)
    seconds = everything[config.TS]
    if not pd.api.types.is_numeric_dtype(seconds):
        seconds = pd.to_datetime(seconds, utc=True).astype("int64") // 10**9
    ratings = everything.assign(**{config.TS: seconds.astype(np.float64)})
    ratings["weight"] = ratings[config.EVENT].map(config.EVENT_WEIGHTS).fillna(1.0).astype(np.float32)
    ratings = ratings.sort_values([config.USER_ID, config.TS, config.VIDEO_ID], kind="stable")
    return everything, seconds, ratings, period_edges(seconds.to_numpy(), periods, night_days)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_history_arguments(parser)
    parser.add_argument("--periods", type=int, default=8, help="nights (each followed by the period it is judged on)")
    parser.add_argument("--seed", type=int, default=config.DEFAULT_SEED, help="the stages' seed, both modes")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the warehouses here (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-nights-"))
    env = {**os.environ, "VREC_EVAL_SEQUENTIAL": os.environ.get("VREC_EVAL_SEQUENTIAL", "0")}

    landing = [land_history(workdir / mode, args) for mode in MODES][0]
    try:
        everything, seconds, ratings, edges = history(landing, args.periods, args.night_days)
    except ValueError as err:
        parser.error(str(err))

    nights, incremental_rows = [], {mode: [] for mode in MODES}
    for k in range(args.periods):
        run_date = (FIRST_NIGHT + dt.timedelta(days=k)).isoformat()
        seen = everything[seconds.to_numpy() < edges[k]]
        record = {"night": k + 1, "run_date": run_date, "interactions": len(seen)}
        rows = {}
        for mode in MODES:
            target = workdir / mode / "landing" / "interactions" / landing.name
            seen.to_csv(target, index=False) if landing.suffix == ".csv" else seen.to_parquet(target, index=False)
            night = run_night(workdir / mode, run_date, mode, args.seed, env)
            # What served the next period: tonight's model, or production's when the gate stopped it.
            serving = production_model(config.Warehouse.at(workdir / mode))
            night["serving_version"] = serving
            if serving:
                night["next_period"], rows[mode] = next_period(workdir / mode, serving, ratings, edges[k],
                                                               edges[k + 1])
            if night["model_version"] and night["model_version"] != serving:
                night["next_period_of_blocked_model"], _ = next_period(workdir / mode, night["model_version"],
                                                                       ratings, edges[k], edges[k + 1])
            record[mode] = night
        full, auto = record["full"].get("next_period"), record["auto"].get("next_period")
        if len(rows) == len(MODES):
            record.update(compare_next_periods(rows["auto"], rows["full"]))
            if record["auto"]["training_mode"] == "incremental":
                for mode in MODES:
                    incremental_rows[mode].append(rows[mode].assign(night=k + 1))
        for measure in ("train_seconds", "fit_seconds"):
            if record["auto"][measure] and record["full"][measure]:
                record[f"auto_to_full_{measure}"] = round(record["auto"][measure] / record["full"][measure], 3)
        print(f"night {k + 1} ({len(seen)} interactions): auto {record['auto']['training_mode']} "
              f"train {record['auto']['train_seconds']}s (fit {record['auto']['fit_seconds']}s) next NDCG@10 {auto and auto['ndcg@10']} "
              f"gate {record['auto']['gate_passed']} | full train {record['full']['train_seconds']}s "
              f"(fit {record['full']['fit_seconds']}s) "
              f"next NDCG@10 {full and full['ndcg@10']} | auto/full {record.get('auto_to_full_ndcg@10')} "
              f"(90% {record.get('auto_to_full_ndcg@10_interval90')})", flush=True)
        nights.append(record)

    result = {"dataset": args.dataset, "periods": args.periods, "night_days": args.night_days, "seed": args.seed,
              "nights": nights,
              "incremental_nights": incremental_summary(nights, incremental_rows),
              **({"size": {"users": args.users, "videos": args.videos, "interactions": args.interactions}}
                 if args.dataset == "load" else {}),
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
              "settings": {"full_retrain_days": config.DEFAULT_FULL_RETRAIN_DAYS, "eval_days": config.DEFAULT_EVAL_DAYS,
                           "eval_min_users": config.DEFAULT_EVAL_MIN_USERS}}
    if args.out:
        write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
