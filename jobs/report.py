"""Report: the run's counters, gathered from every stage, as one JSON object.

    python -m jobs.report --warehouse DIR --run-date YYYY-MM-DD

This is the last line that `run_nightly` prints and what the DAG's report task logs.
"""

from __future__ import annotations

import json
import sys

from jobs.plumbing import config
from jobs.plumbing.stage import base_parser, read_counters

# (summary key, stage, counter) -- the run counters of the DESIGN.md contract first.
SUMMARY_FIELDS = (
    ("videos_decoded", "extract_features", "videos_decoded"),
    ("videos_skipped", "extract_features", "videos_skipped"),
    ("videos_quarantined", "extract_features", "videos_quarantined"),
    ("interactions_rejected", "ingest", "interactions_rejected"),
    ("users_published", "publish", "users_published"),
    ("rows_published", "publish", "rows_published"),
    ("videos", "ingest", "videos"),
    ("interactions_valid", "ingest", "interactions_valid"),
    ("interactions_expired", "ingest", "interactions_expired"),
    ("deletion_requests", "erase_users", "deletion_requests"),
    ("deletion_request_sha256", "erase_users", "deletion_request_sha256"),
    ("users_erased", "erase_users", "users_erased"),
    ("model_version", "publish", "model_version"),
    ("delta_version", "publish", "delta_version"),
    ("training_mode", "train", "training_mode"),
)
# Counters that are null, not 0, when their stage did not run (or trained nothing: skip_training).
NULL_WHEN_ABSENT = ("model_version", "delta_version", "training_mode")


def run_summary(wh: config.Warehouse, run_date: str) -> dict:
    counters = read_counters(wh, run_date)
    summary = {"run_date": run_date}
    for key, stage, name in SUMMARY_FIELDS:
        default = [] if key == "deletion_request_sha256" else None if key in NULL_WHEN_ABSENT else 0
        summary[key] = counters.get(stage, {}).get(name, default)
    return summary


def main(argv: list[str] | None = None) -> int:
    args = base_parser(__doc__.splitlines()[0]).parse_args(argv)
    print(json.dumps(run_summary(config.Warehouse.at(args.warehouse), args.run_date), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
