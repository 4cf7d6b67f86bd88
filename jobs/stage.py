"""What every stage CLI shares: its arguments, its counters file and how it fails.

Each stage records its counters in `<warehouse>/runs/<run_date>/<stage>.json`, so the report
(and `run_nightly`'s final JSON line) can be put together from any process, in Airflow or not.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Callable

from jobs import config


class StageError(RuntimeError):
    """An expected failure of a stage: reported as one clear line, exit code 1."""

    def __init__(self, stage: str, message: str):
        super().__init__(f"[{stage}] {message}")
        self.stage = stage


def parse_run_date(text: str) -> str:
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"run date must be YYYY-MM-DD, got {text!r}") from err


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--warehouse", default=config.DEFAULT_WAREHOUSE,
                        help="warehouse root (default: $VREC_WAREHOUSE or ./warehouse)")
    parser.add_argument("--run-date", type=parse_run_date, default=dt.date.today().isoformat(),
                        help="logical date of the run, YYYY-MM-DD (default: today)")
    return parser


def write_json(path: Path, document: dict) -> Path:
    """Write `document` as JSON, whole or not at all (a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(document, indent=1, sort_keys=True, default=str) + "\n")
    tmp.replace(path)
    return path


def write_counters(wh: config.Warehouse, run_date: str, stage: str, counters: dict) -> Path:
    return write_json(wh.run_dir(run_date) / f"{stage}.json", counters)


def read_counters(wh: config.Warehouse, run_date: str) -> dict[str, dict]:
    run_dir = wh.run_dir(run_date)
    if not run_dir.is_dir():
        return {}
    return {p.stem: json.loads(p.read_text()) for p in sorted(run_dir.glob("*.json"))}


def run_stage(stage: str, body: Callable[[], dict]) -> int:
    """Run a stage body for a CLI: print its counters as JSON, or one error line and exit 1."""
    try:
        counters = body()
    except StageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(counters, sort_keys=True, default=str))
    return 0
