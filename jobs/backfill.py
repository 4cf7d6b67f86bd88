"""Backfill: run the nightly pipeline for every date of a range, oldest first, without Airflow.

    python -m jobs.backfill --warehouse DIR --from 2026-11-18 --to 2026-11-20 [run_nightly options]

Each date is one `jobs.run_nightly` process (the same code the DAG runs), so each publishes one
Delta version with its own `run_date`; every stage is idempotent by date, so a backfill can be
run again, or resumed, safely. Stops at the first failing date and says which. With Airflow the
same range is `airflow backfill create --dag-id video_recs_nightly --from-date ... --to-date ...`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys

from jobs.plumbing.stage import parse_run_date


def dates(first: str, last: str) -> list[str]:
    start, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    return [(start + dt.timedelta(days=n)).isoformat() for n in range((end - start).days + 1)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="first", type=parse_run_date, required=True, help="first run date")
    parser.add_argument("--to", dest="last", type=parse_run_date, required=True, help="last run date")
    args, nightly_args = parser.parse_known_args(argv)
    run_dates = dates(args.first, args.last)
    if not run_dates:
        parser.error(f"--from {args.first} is after --to {args.last}")
    for run_date in run_dates:
        print(f"backfill: {run_date}", file=sys.stderr, flush=True)
        done = subprocess.run([sys.executable, "-m", "jobs.run_nightly", "--run-date", run_date, *nightly_args])
        if done.returncode != 0:
            print(f"error: [backfill] {run_date} failed (exit {done.returncode}); dates before it are done",
                  file=sys.stderr)
            return done.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
