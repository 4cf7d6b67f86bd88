"""What every stage CLI shares: its arguments, its counters file and how it fails.

Each stage records its counters in `<warehouse>/runs/<run_date>/<stage>.json`, so the report
(and `run_nightly`'s final JSON line) can be put together from any process, in Airflow or not.
"""

from __future__ import annotations

import argparse
import datetime as dt
import errno
import json
import os
import re
import shutil
import sys
import traceback
from pathlib import Path
from typing import Callable

from jobs.plumbing import config, privacy
from jobs.plumbing.dist import SHIPPED_PACKAGES
from jobs.plumbing.table_location import TableLocation


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


# Options that several commands take: one default and one help text each (built when used, as
# the decode limits import the decoder's module).
_SHARED_OPTIONS = {
    "--top-n": lambda: dict(type=int, default=config.DEFAULT_TOP_N,
                            help="videos in each user's list (default: $VREC_TOP_N or 20)"),
    "--seed": lambda: dict(type=int, default=config.DEFAULT_SEED,
                           help="seed of the training and of the evaluation's samples (default: $VREC_SEED or 7)"),
    "--min-coverage": lambda: dict(
        type=float, default=config.DEFAULT_MIN_FEATURE_COVERAGE,
        help="fail when a smaller share than this of the videos with media decoded, or of all videos have "
             "text (default: $VREC_MIN_FEATURE_COVERAGE or 0.5)"),
    "--max-bad-row-share": lambda: dict(
        type=float, default=config.DEFAULT_MAX_BAD_ROW_SHARE,
        help="fail when a larger share than this of the interaction rows is rejected (kept in "
             "tables/rejected_rows; default: $VREC_MAX_BAD_ROW_SHARE or 0.2)"),
    "--gate-tolerance": lambda: dict(
        type=float, default=config.DEFAULT_GATE_TOLERANCE,
        help="largest relative drop in held-out NDCG@10 against production that still publishes (default: "
             "$VREC_GATE_TOLERANCE or 0.25)"),
    "--decode-timeout-s": lambda: dict(
        type=float, default=config.decode_limits().timeout_s,
        help="seconds one video's decode may take; past it the video is quarantined as timeout and tried "
             "again next night (default: $VREC_DECODE_TIMEOUT_S or 120)"),
}


def add_shared_arguments(parser: argparse.ArgumentParser, *flags: str) -> None:
    """Add the named options of _SHARED_OPTIONS."""
    for flag in flags:
        parser.add_argument(flag, **_SHARED_OPTIONS[flag]())


def add_serving_table_argument(parser: argparse.ArgumentParser) -> None:
    """`--serving-table` for the commands that write or read the serving table."""
    parser.add_argument("--serving-table", type=parse_serving_table, default=None,
                        help="the serving table: a directory or s3://bucket/prefix, reached with the AWS_* "
                             "environment or the Airflow connection $VREC_SERVING_TABLE_CONN_ID (default: "
                             "$VREC_SERVING_TABLE or WAREHOUSE/tables/recommendations)")


def warehouse_at(stage: str, warehouse: str | None, serving_table: str | None = None) -> config.Warehouse:
    """A command's warehouse; a serving-table setting that names no location is a StageError (the
    option is checked by argparse, but $VREC_SERVING_TABLE only here)."""
    try:
        wh = config.Warehouse.at(warehouse, serving_table)
        wh.explanations   # beside the serving table: a location with no room beside it is refused here
        return wh
    except ValueError as err:
        raise StageError(stage, f"serving table (--serving-table or $VREC_SERVING_TABLE): {err}") from err


def published_warehouse_at(stage: str, warehouse: str | None, serving_table: str | None = None) -> config.Warehouse:
    """A reading command's warehouse (`warehouse_at`), refused with a StageError when no night has
    been published to its serving table yet."""
    wh = warehouse_at(stage, warehouse, serving_table)
    if not wh.recommendations.exists():
        raise StageError(stage, f"no serving table at {wh.recommendations}")
    return wh


def parse_serving_table(text: str) -> str:
    try:
        TableLocation.parse(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err
    return text


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


def preflight(wh: config.Warehouse) -> None:
    """Fail before any work when a privacy setting is missing (a pseudonymisation without its key),
    or the warehouse cannot be written or has too little space left."""
    try:
        privacy.load_settings()   # a pseudonymisation without its key, or a bad retention, stops here
    except privacy.PrivacySettingError as err:
        raise StageError("preflight", str(err)) from err
    for directory in (wh.root / "tables", wh.runs):
        probe = directory / f".write-probe-{os.getpid()}"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as err:
            raise StageError("preflight", f"cannot write to {directory}: {err.strerror or err}") from err
    free_mib = shutil.disk_usage(wh.root).free / 2**20
    if free_mib < config.DEFAULT_MIN_FREE_MIB:
        raise StageError("preflight", f"only {free_mib:.0f} MiB free at {wh.root}; the run needs at least "
                                      f"{config.DEFAULT_MIN_FREE_MIB} MiB (VREC_MIN_FREE_MIB)")


_MISSING_MODULE = re.compile(r"^ModuleNotFoundError: No module named '([\w.]+)'")
# `RuntimeError: why` or `pkg.SomeError`, at the start of a line: not a frame, code or caret line.
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Warning|Invalid)\b(:|$)")


def describe(err: Exception, wh: config.Warehouse) -> str:
    """One line for an unexpected failure: a full disk says so and where; an exception in a Spark
    Python worker is named by the worker's own last traceback line (what was raised, and why);
    else the error's first line (a Spark failure's message carries a whole Java stack)."""
    text = str(err)
    if "No space left on device" in text or getattr(err, "errno", None) == errno.ENOSPC:
        return f"no space left on device under {wh.root}"
    if isinstance(err, OSError) and err.filename:
        return f"{err.strerror or type(err).__name__}: {err.filename}"
    if type(err).__name__ == "PythonException" and "Traceback (most recent call last):" in text:
        # The worker's traceback (frames indented) ends with the line of the exception it raised.
        traceback_lines = text[text.index("Traceback (most recent call last):"):].splitlines()
        raised = [line.strip() for line in traceback_lines if _EXCEPTION_LINE.match(line)]
        if raised:
            return f"in a Spark Python worker: {raised[-1]}{_shipping_hint(raised[-1])}"
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return f"{type(err).__name__}: {first}"


def _shipping_hint(raised: str) -> str:
    """What to do when executors cannot import the project: they import only what the job ships."""
    missing = _MISSING_MODULE.match(raised)
    if not missing or missing.group(1).split(".")[0] not in SHIPPED_PACKAGES:
        return ""
    return (" -- the executors do not have the project: ship it with --py-files "
            "(the archive of `python -m jobs.package`, which the DAG's package task builds)")


def fail(message: str) -> int:
    """End a CLI that failed: stop Spark first, so that `message` is the last line on stderr."""
    from jobs.plumbing.spark import stop_spark

    stop_spark()
    sys.stdout.flush()
    print(f"error: {message}", file=sys.stderr, flush=True)
    return 1


def run_stage(stage: str, warehouse: str | None, body: Callable[[config.Warehouse], dict], *,
              serving_table: str | None = None) -> int:
    """Run a stage body for a CLI (what each Airflow task runs): the same preflight as `run_nightly`,
    then the body; print its counters as JSON, or end with one error line and exit 1 (an unexpected
    error's traceback goes to stderr above that line, for the task log). The error line is the last
    line on stderr: Spark is stopped before it is printed (`fail`)."""
    try:
        wh = warehouse_at(stage, warehouse, serving_table)
    except StageError as err:
        return fail(str(err))
    try:
        preflight(wh)
        counters = body(wh)
    except StageError as err:
        return fail(str(err))
    except Exception as err:  # noqa: BLE001 -- the last line of the log must say what failed
        traceback.print_exc()
        return fail(f"[{stage}] {describe(err, wh)}")
    print(json.dumps(counters, sort_keys=True, default=str))
    return 0
