"""Rollback: make an earlier night's lists current again, as a new commit of the serving table.

    python -m jobs.rollback --warehouse DIR (--to-version N | --to-date YYYY-MM-DD) [--retention-days 30]
                            [--serving-table s3://bucket/prefix]

`--to-date` picks the latest publish of that run date. The rollback is one Delta commit (a
restore), so readers see either tonight's lists or the restored ones, and the rolled-back version
stays in the history. Versions whose files were vacuumed (older than the retention) cannot be
restored; the error says which versions can.
"""

from __future__ import annotations

import sys

from jobs.plumbing import config
from jobs.plumbing.stage import StageError, add_serving_table_argument, parse_run_date, run_stage
from jobs.plumbing.serving import published_versions, vacuum

STAGE = "rollback"


def rollback(wh: config.Warehouse, *, to_version: int | None = None, to_date: str | None = None,
             retention_days: float = config.DEFAULT_RETENTION_DAYS) -> dict:
    from deltalake import CommitProperties
    from deltalake.exceptions import DeltaError

    if not wh.recommendations.exists():
        raise StageError(STAGE, f"no serving table at {wh.recommendations}")
    table = wh.recommendations.delta_table()
    publishes = published_versions(table)
    if to_date is not None:
        matching = [version for version, run_date in publishes.items() if run_date == to_date]
        if not matching:
            raise StageError(STAGE, f"no lists published for {to_date}; published: {_listing(publishes)}")
        to_version = max(matching)
    current = table.version()
    if to_version is None or not 0 <= to_version <= current:
        raise StageError(STAGE, f"version {to_version} is not in the table (0..{current}); published: "
                                f"{_listing(publishes)}")
    try:
        table.restore(to_version, commit_properties=CommitProperties(custom_metadata={
            "run_date": publishes.get(to_version, ""), "rollback_from": str(current),
            "rollback_to": str(to_version)}))
    except (OSError, DeltaError) as err:  # the version's files are gone (vacuumed)
        raise StageError(STAGE, f"version {to_version} can no longer be restored ({err}); "
                                f"retention is {retention_days} days") from err
    restored = wh.recommendations.delta_table()
    removed = vacuum(restored, retention_days)
    return {"restored_version": to_version, "restored_run_date": publishes.get(to_version),
            "previous_version": current, "delta_version": restored.version(), "files_vacuumed": removed}


def _listing(publishes: dict[int, str]) -> str:
    return ", ".join(f"v{version} ({run_date})" for version, run_date in sorted(publishes.items())) or "none"


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", default=config.DEFAULT_WAREHOUSE)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--to-version", type=int, help="the Delta version to make current again")
    target.add_argument("--to-date", type=parse_run_date, help="the run date whose lists to make current again")
    parser.add_argument("--retention-days", type=float, default=config.DEFAULT_RETENTION_DAYS,
                        help="keep files of earlier versions this long (default: $VREC_RETENTION_DAYS or 30)")
    add_serving_table_argument(parser)
    args = parser.parse_args(argv)
    return run_stage(STAGE, args.warehouse, lambda wh: rollback(wh, to_version=args.to_version,
                                                                to_date=args.to_date, retention_days=args.retention_days),
                     serving_table=args.serving_table)


if __name__ == "__main__":
    sys.exit(main())
