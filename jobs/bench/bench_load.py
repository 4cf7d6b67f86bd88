"""Load benchmark: generate a platform-sized landing zone and run every nightly stage on it.

    python -m jobs.bench.bench_load --warehouse DIR [--videos 50000] [--users 200000] \
        [--interactions 1000000 | --per-user LOW HIGH] [--media 300] [--movielens DIR] [--out FILE] \
        [--second-night] [--score-engines local spark] [--master URL] [--score-only]

Each stage runs as `python -m jobs.<stage>`, the command the DAG's tasks run, in its own process.
Wall time is measured per stage; peak memory is the largest sum of resident memory over the
stage's whole process tree (Python, the Spark JVM, ffmpeg), sampled every 0.2 s. Prints a table
and the machine, then the held-out NDCG@10 and HR@10 of the published model and of every baseline
from the night's `tables/model_metrics`; `--out` writes JSON. A stage that fails stops the run with
its error line. When the night of `--run-date` is measured leave-last-out (a full retrain), it
adds the generator's Bayes-optimal ranking on the same held-out slice (`jobs.bench.ceiling`), the
most any method can expect there. `--per-user 3 15` makes the sparse, short-video-shaped log of
`make bench-sparse`;
`--sequential-baseline` then runs the evaluate stage once more with SASRec forced on
(`VREC_EVAL_SEQUENTIAL=1`; the night itself skips it above `VREC_SEQUENTIAL_MAX_INTERACTIONS`),
timed apart from the night, so the quality table includes it. `--second-night` first runs a night
the day before `--run-date` with the newest two days of interactions held back (a full retrain: no
model exists yet), then the night itself on all of them, whose `auto` training is incremental: it
trains on the two new days up to its exam's cutoff and is examined on what comes after it (the newest
`VREC_EVAL_DAYS`, moved earlier until `VREC_EVAL_MIN_USERS` users sit it). Both nights are reported.

`--movielens DIR` lands MovieLens-100k from DIR instead (`jobs.import_dataset`, timed as the
`import` step) and, with `--per-user LOW HIGH`, keeps each user's newest LOW to HIGH ratings
(drawn uniformly per user, seeded): the real-data sparse log of `make bench-sparse`. Its videos
have titles and genres and no media; there is no generator, so no Bayes-optimal ranking.

`--score-engines local spark` runs the score stage once per engine, each timed the same way, and
checks that they wrote the same lists (same users, same videos in the same order, scores within
1e-5 relative); the night counts the first. The spark engine runs as its DAG task will:
`spark-submit --master MASTER --py-files <the project archive (jobs.package)> jobs/score.py --engine spark`
(`--master`, default `local[*]`; e.g. `spark://host:7077`), with no checkout on the Python path, so
the driver and the executors import the project from the zip. `--score-only` times just that on a
warehouse where a night (or bench run) already trained a model, and reports nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

import psutil

from jobs.plumbing.config import TS, USER_ID, VIDEO_ID, Warehouse
from jobs.plumbing.evaluation_report import is_diagnostic
from jobs.plumbing.dist import build_archive
from jobs.plumbing.stage import read_counters, write_json
from jobs.plumbing.tables import read_table

STAGES = ("ingest", "extract_features", "validate_features", "train", "evaluate", "score", "publish")
PROJECT_ROOT = Path(__file__).resolve().parents[2]
SCORE_RTOL = 1e-5
# The night after the first brings two days: it trains on them up to its exam (the newest
# VREC_EVAL_DAYS, moved earlier until VREC_EVAL_MIN_USERS users sit it).
SECOND_NIGHT_DAYS = 2


def tree_rss(process: psutil.Process) -> int:
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.Error:   # a child that just exited
            pass
    return total


def run_measured(command: list[str], env: dict | None = None) -> dict:
    """Run `command`; its wall seconds, peak process-tree RSS, exit code and last stderr line."""
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             env=None if env is None else {**os.environ, **env})
    watched, peak = psutil.Process(child.pid), 0
    stderr_lines: list[str] = []
    reader = threading.Thread(target=lambda: stderr_lines.extend(child.stderr), daemon=True)
    reader.start()
    while child.poll() is None:
        try:
            peak = max(peak, tree_rss(watched))
        except psutil.Error:
            pass
        time.sleep(0.2)
    reader.join()
    last = next((line.strip() for line in reversed(stderr_lines) if line.strip()), "")
    return {"seconds": round(time.perf_counter() - started, 1), "peak_rss_gib": round(peak / 2**30, 2),
            "exit_code": child.returncode, "last_line": last}


def held_out_quality(wh: Warehouse, run_date: str) -> dict:
    """Each method's held-out NDCG@10 and HR@10 on the night, and the published model's ratio to
    the best baseline."""
    metrics = read_table(wh.model_metrics / run_date).to_pandas()
    table = metrics[metrics["metric"].isin(["ndcg@10", "hr@10"])].pivot_table(
        index="method", columns="metric", values="value")
    published = metrics.loc[metrics["is_published"], "method"].iloc[0]
    # On an incremental night "production" is last night's model measured on tonight's exam, not a
    # baseline; nor are the ablations and the ranker's gains (diagnostics of the model).
    baselines = table.drop(index=[m for m in table.index
                                  if m.startswith("two_tower") or m == "production" or is_diagnostic(m)])
    best = baselines["ndcg@10"].idxmax()
    return {"methods": {m: {k: round(float(v), 4) for k, v in row.items()} for m, row in table.iterrows()},
            "published": published, "best_baseline": best,
            "ndcg@10_vs_best_baseline": round(float(table.loc[published, "ndcg@10"] / table.loc[best, "ndcg@10"]), 3)}


def score_run(engine: str, common: list[str], master: str, py_files: Path) -> tuple[list[str], dict]:
    """(command, environment) of the score stage with `engine`, launched as its task will be."""
    python = sys.executable
    if engine == "local":
        return [python, "-m", "jobs.score", *common, "--engine", "local"], {}
    spark_submit = str(Path(python).parent / "spark-submit")
    command = [spark_submit, "--master", master, "--py-files", str(py_files), "--conf", "spark.ui.enabled=false",
               str(PROJECT_ROOT / "jobs" / "score.py"), *common, "--engine", "spark"]
    # Without the checkout on PYTHONPATH: driver and executors import the project from the zip.
    return command, {"PYTHONPATH": "", "PYSPARK_PYTHON": python, "PYSPARK_DRIVER_PYTHON": python}


def sorted_lists(wh: Warehouse, run_date: str):
    lists = read_table(wh.candidate_lists / run_date, ["user_id", "rank", "video_id", "score"])
    return lists.sort_by([("user_id", "ascending"), ("rank", "ascending")])


def time_score_engines(wh: Warehouse, run_date: str, engines: list[str], master: str) -> dict:
    """Each engine's score stage timed, and whether its lists equal the first engine's."""
    import numpy as np

    results, reference = {}, None
    with tempfile.TemporaryDirectory() as scratch:
        py_files = build_archive(Path(scratch))
        for engine in engines:
            command, env = score_run(engine, ["--warehouse", str(wh.root), "--run-date", run_date], master, py_files)
            load_before = round(os.getloadavg()[0], 2)   # 2 cores: anything else running shows here
            measured = {**run_measured(command, env), "load_average_before": load_before}
            results[engine] = measured
            if measured["exit_code"] != 0:
                break
            lists = sorted_lists(wh, run_date)
            measured["rows"] = lists.num_rows
            if reference is None:
                reference = (engine, lists)
                continue
            first, expected = reference
            same = all(lists[c].equals(expected[c]) for c in ("user_id", "rank", "video_id"))
            got, want = lists["score"].to_numpy(), expected["score"].to_numpy()
            measured[f"same_lists_as_{first}"] = bool(same and np.allclose(got, want, rtol=SCORE_RTOL, atol=0))
            measured["max_relative_score_difference"] = float(
                np.max(np.abs(got - want) / np.maximum(np.abs(want), 1e-300))) if same and len(got) else None
    return results


def print_stage(name: str, measured: dict) -> None:
    print(f"| {name} | {measured['seconds']} | {measured['peak_rss_gib']} |", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", type=Path, required=True)
    parser.add_argument("--videos", type=int, default=50_000)
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--interactions", type=int, default=1_000_000)
    parser.add_argument("--media", type=int, default=300)
    parser.add_argument("--per-user", type=int, nargs=2, metavar=("LOW", "HIGH"),
                        help="each user draws LOW to HIGH interactions instead of --interactions")
    parser.add_argument("--movielens", type=Path, metavar="DIR",
                        help="land MovieLens-100k from DIR instead of generating (with --per-user: each user's "
                             "newest LOW to HIGH ratings)")
    parser.add_argument("--sequential-baseline", action="store_true",
                        help="after the night, evaluate again with SASRec forced on (timed apart)")
    parser.add_argument("--second-night", action="store_true",
                        help="hold the newest two days of interactions back from a first (full) night the day "
                             "before, then run the night on all of them (auto training)")
    parser.add_argument("--score-engines", nargs="+", choices=("local", "spark"), default=["local"],
                        help="run the score stage with each engine, timed, and compare their lists")
    parser.add_argument("--master", default="local[*]", help="Spark master of the spark engine's spark-submit")
    parser.add_argument("--score-only", action="store_true",
                        help="only time the score engines, on a warehouse where a night already trained a model")
    parser.add_argument("--run-date", default="2026-11-20")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.score_only:
        return score_only(args)
    if args.per_user and not 1 <= args.per_user[0] <= args.per_user[1]:
        parser.error("--per-user needs 1 <= LOW <= HIGH")
    if args.movielens and args.second_night:
        parser.error("--second-night holds back days of a generated log; MovieLens-100k's nights are in bench_nights")
    print("| step | seconds | peak RSS GiB |\n|---|---|---|", flush=True)
    if args.movielens:
        step = "import"
        landed = run_measured([sys.executable, "-m", "jobs.import_dataset", "--format", "movielens-100k",
                               "--source", str(args.movielens), "--warehouse", str(args.warehouse)])
        sizes = {"dataset": "movielens-100k", "per_user": args.per_user}
        if landed["exit_code"] == 0 and args.per_user:
            sizes.update(keep_newest(Warehouse.at(str(args.warehouse)), *args.per_user))
    else:
        step = "generate"
        landed = run_measured([sys.executable, "-m", "jobs.datasets.make_load_data", "--warehouse", str(args.warehouse),
                               "--videos", str(args.videos), "--users", str(args.users),
                               "--interactions", str(args.interactions), "--media", str(args.media),
                               "--run-date", args.run_date,
                               *(["--per-user", *map(str, args.per_user)] if args.per_user else [])])
        sizes = {k: getattr(args, k) for k in ("videos", "users", "interactions", "media", "per_user")}
    print_stage(step, landed)
    results: dict = {"sizes": sizes, "machine": machine(), "completed": False}
    if landed["exit_code"] != 0:
        print(f"error: {step} failed: {landed['last_line']}", file=sys.stderr)
        results["stages"] = {step: landed}
    else:
        wh = Warehouse.at(str(args.warehouse))
        if args.second_night:
            first_date = (date.fromisoformat(args.run_date) - timedelta(days=1)).isoformat()
            with held_back(wh, SECOND_NIGHT_DAYS):
                results["first_night"] = run_night(args, first_date)
            if not results["first_night"]["completed"]:
                return finish(args, results)
            print(f"the night of {args.run_date}, with the newest {SECOND_NIGHT_DAYS} days", flush=True)
        results.update(run_night(args, args.run_date))
        results["stages"] = {step: landed, **results["stages"]}
        if results["completed"] and results["evaluation_protocol"] == "leave_last_out" and not args.movielens:
            results["quality"]["bayes_optimal"] = bayes_optimal(wh, args, results["quality"])
    return finish(args, results)


def newest_per_user(frame, low: int, high: int, seed: int = 7):
    """Each user's newest k rows of `frame` (by time, then video id), k drawn uniformly from LOW to
    HIGH for each user (seeded); a user with fewer keeps them all."""
    import numpy as np

    frame = frame.sort_values([USER_ID, TS, VIDEO_ID], kind="stable")
    users, user_index = np.unique(frame[USER_ID].to_numpy(), return_inverse=True)
    keep = np.random.default_rng(seed).integers(low, high + 1, len(users))[user_index]
    newest_first = frame.groupby(USER_ID, sort=False).cumcount(ascending=False).to_numpy()
    return frame[newest_first < keep].reset_index(drop=True)


def keep_newest(wh: Warehouse, low: int, high: int) -> dict:
    """`newest_per_user` applied to the landing zone's interactions file, in place; the sizes left."""
    import pandas as pd

    (path,) = wh.landing_interactions.iterdir()
    kept = newest_per_user(pd.read_parquet(path), low, high)
    kept.to_parquet(path, index=False)
    return {"users": int(kept[USER_ID].nunique()), "videos_watched": int(kept[VIDEO_ID].nunique()),
            "interactions": len(kept)}


@contextmanager
def held_back(wh: Warehouse, days: float):
    """The landing zone's interactions without their newest `days` days while the context lasts,
    the whole file again afterwards."""
    import pandas as pd

    (path,) = wh.landing_interactions.iterdir()
    whole = path.read_bytes()
    frame = pd.read_csv(path)
    seconds = pd.to_datetime(frame[TS], utc=True)
    frame[seconds <= seconds.max() - pd.Timedelta(days=days)].to_csv(path, index=False)
    try:
        yield
    finally:
        path.write_bytes(whole)


def run_night(args, run_date: str) -> dict:
    """Every stage of one night, each timed as its DAG task runs it; the night's sums, the train
    stage's choices and the held-out quality."""
    python = sys.executable
    common = ["--warehouse", str(args.warehouse), "--run-date", run_date]
    night: dict = {"run_date": run_date, "stages": {}, "completed": False}
    for stage in STAGES:
        if stage == "score":
            night["score_engines"] = time_score_engines(Warehouse.at(str(args.warehouse)), run_date,
                                                        args.score_engines, args.master)
            for engine, run in night["score_engines"].items():
                print_stage(f"score, {engine} engine", run)
            runs = list(night["score_engines"].values())
            measured = next((run for run in runs if run["exit_code"]), runs[0])
        else:
            measured = run_measured([python, "-m", f"jobs.{stage}", *common])
            print_stage(stage, measured)
        night["stages"][stage] = measured
        if measured["exit_code"] != 0:
            print(f"error: {stage} failed: {measured['last_line']}", file=sys.stderr)
            break
    else:
        night["completed"] = True
    if night["completed"] and args.sequential_baseline:
        measured = run_measured([python, "-m", "jobs.evaluate", *common], env={"VREC_EVAL_SEQUENTIAL": "1"})
        night["evaluate_with_sasrec"] = measured
        print(f"| evaluate again with SASRec (not part of the night) | {measured['seconds']} | "
              f"{measured['peak_rss_gib']} |", flush=True)
        night["completed"] = measured["exit_code"] == 0
    night["pipeline_seconds"] = round(sum(v["seconds"] for v in night["stages"].values()), 1)
    night["pipeline_peak_rss_gib"] = max((v["peak_rss_gib"] for v in night["stages"].values()), default=0)
    print(f"pipeline {night['pipeline_seconds']} s, peak {night['pipeline_peak_rss_gib']} GiB", flush=True)
    if night["completed"]:
        wh = Warehouse.at(str(args.warehouse))
        counters = read_counters(wh, run_date)
        night["interactions_valid"] = counters["ingest"]["interactions_valid"]
        night["training"] = {k: counters["train"].get(k) for k in ("training_mode", "mode_reason", "fit_seconds")}
        night["evaluation_protocol"] = counters["evaluate"].get("evaluation_protocol")
        night["quality"] = held_out_quality(wh, run_date)
        print(f"training: {night['training']}; evaluation protocol: {night['evaluation_protocol']}")
        print("| method | NDCG@10 | HR@10 |\n|---|---|---|")
        for method, values in night["quality"]["methods"].items():
            print(f"| {method} | {values['ndcg@10']} | {values['hr@10']} |")
        print(f"published {night['quality']['published']}: "
              f"{night['quality']['ndcg@10_vs_best_baseline']}x the best baseline's NDCG@10", flush=True)
    return night


def bayes_optimal(wh: Warehouse, args, quality: dict) -> dict:
    """The generator's Bayes-optimal ranking on the night's held-out slice (`jobs.bench.ceiling`):
    the most any method can expect, and the published model's share of it."""
    from jobs.bench.ceiling import warehouse_ceiling
    from jobs.datasets.make_load_data import DEFAULT_SEED   # the seed the benchmark generates with

    # The evaluate stage's slice: the seed and user sample the night's model was measured with.
    version = read_counters(wh, args.run_date)["train"]["model_version"]
    model = json.loads((wh.models / version / "model.json").read_text())
    metrics = warehouse_ceiling(wh, args.videos, date.fromisoformat(args.run_date), DEFAULT_SEED,
                                model.get("max_eval_users"), model["seed"])
    published = quality["methods"][quality["published"]]["ndcg@10"]
    ceiling = {"ndcg@10": round(metrics["ndcg@10"], 4), "hr@10": round(metrics["hr@10"], 4),
               "published_share_of_ndcg@10": round(float(published / metrics["ndcg@10"]), 3)}
    print(f"| Bayes-optimal (the generator's own parameters) | {ceiling['ndcg@10']} | {ceiling['hr@10']} |\n"
          f"published: {ceiling['published_share_of_ndcg@10']} of the Bayes-optimal NDCG@10", flush=True)
    return ceiling


def finish(args, results: dict) -> int:
    if args.out:
        write_json(args.out, results)
    return 0 if results["completed"] else 1


def score_only(args) -> int:
    """`--score-only`: the score engines on an existing warehouse, and the machine."""
    wh = Warehouse.at(str(args.warehouse))
    runs = time_score_engines(wh, args.run_date, args.score_engines, args.master)
    print("| score engine | seconds | peak RSS GiB |\n|---|---|---|")
    for engine, run in runs.items():
        print_stage(engine, run)
        if run["exit_code"]:
            print(f"error: score with the {engine} engine failed: {run['last_line']}", file=sys.stderr)
    counters = json.loads((wh.run_dir(args.run_date) / "score.json").read_text())
    results = {"score_engines": runs, "master": args.master, "machine": machine(),
               "sizes": {k: counters.get(k) for k in ("users_scored", "videos_scored", "top_n", "reranked")}}
    print(json.dumps({engine: {k: v for k, v in run.items() if k != "last_line"} for engine, run in runs.items()}))
    if args.out:
        write_json(args.out, results)
    return 1 if any(run["exit_code"] for run in runs.values()) else 0


def machine() -> str:
    return (f"{os.cpu_count()} CPUs, {round(psutil.virtual_memory().total / 2**30)} GiB, "
            f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")


if __name__ == "__main__":
    sys.exit(main())
