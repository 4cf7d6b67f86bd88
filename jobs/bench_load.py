"""Load benchmark: generate a platform-sized landing zone and run every nightly stage on it.

    python -m jobs.bench_load --warehouse DIR [--videos 50000] [--users 200000] \
        [--interactions 1000000] [--media 300] [--out FILE]

Each stage runs as `python -m jobs.<stage>`, the command the DAG's tasks run, in its own process.
Wall time is measured per stage; peak memory is the largest sum of resident memory over the
stage's whole process tree (Python, the Spark JVM, ffmpeg), sampled every 0.2 s. Prints a table
and the machine; `--out` writes JSON. A stage that fails stops the run with its error line.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from jobs.stage import write_json

STAGES = ("ingest", "extract_features", "validate_features", "train", "evaluate", "score", "publish")


def tree_rss(process: psutil.Process) -> int:
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.Error:   # a child that just exited
            pass
    return total


def run_measured(command: list[str]) -> dict:
    """Run `command`; its wall seconds, peak process-tree RSS, exit code and last stderr line."""
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", type=Path, required=True)
    parser.add_argument("--videos", type=int, default=50_000)
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--interactions", type=int, default=1_000_000)
    parser.add_argument("--media", type=int, default=300)
    parser.add_argument("--run-date", default="2026-11-20")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    python = sys.executable
    common = ["--warehouse", str(args.warehouse), "--run-date", args.run_date]
    steps = [("generate", [python, "-m", "jobs.make_load_data", "--warehouse", str(args.warehouse),
                           "--videos", str(args.videos), "--users", str(args.users),
                           "--interactions", str(args.interactions), "--media", str(args.media),
                           "--run-date", args.run_date])]
    steps += [(stage, [python, "-m", f"jobs.{stage}", *common]) for stage in STAGES]
    results: dict = {"sizes": {k: getattr(args, k) for k in ("videos", "users", "interactions", "media")},
                     "stages": {}}
    print("| step | seconds | peak RSS GiB |\n|---|---|---|", flush=True)
    status = 0
    for name, command in steps:
        measured = run_measured(command)
        results["stages"][name] = measured
        print(f"| {name} | {measured['seconds']} | {measured['peak_rss_gib']} |", flush=True)
        if measured["exit_code"] != 0:
            print(f"error: {name} failed: {measured['last_line']}", file=sys.stderr)
            status = 1
            break
    pipeline = [v for k, v in results["stages"].items() if k != "generate"]
    results["pipeline_seconds"] = round(sum(v["seconds"] for v in pipeline), 1)
    results["pipeline_peak_rss_gib"] = max((v["peak_rss_gib"] for v in pipeline), default=0)
    results["completed"] = status == 0
    results["machine"] = (f"{os.cpu_count()} CPUs, {round(psutil.virtual_memory().total / 2**30)} GiB, "
                          f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(f"pipeline {results['pipeline_seconds']} s, peak {results['pipeline_peak_rss_gib']} GiB")
    if args.out:
        write_json(args.out, results)
    return status


if __name__ == "__main__":
    sys.exit(main())
