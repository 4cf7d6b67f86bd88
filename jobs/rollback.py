"""Rollback: make an earlier night's lists and their explanations current again, as new commits.

    python -m jobs.rollback --warehouse DIR (--to-version N | --to-date YYYY-MM-DD) [--retention-days 30]
                            [--serving-table s3://bucket/prefix]

`--to-date` picks the latest publish of that run date. The rollback is one Delta commit (a
restore) of the serving table, so readers see either tonight's lists or the restored ones, and the
rolled-back version stays in the history. The explanations table moves with it, first (as publish
commits it first): to its version of the same night (run date and model version); a night
published before there were explanations gets an empty explanations commit, so no other night's
reasons are ever current beside its lists. Versions whose files were vacuumed (older than the
retention) cannot be restored; the error says which versions can.
"""

from __future__ import annotations

import sys

from jobs.plumbing import config
from jobs.plumbing.stage import StageError, add_serving_table_argument, parse_run_date, run_stage
from jobs.plumbing.serving import (EXPLANATIONS_SCHEMA, commit_night, explanations_version_of, published_nights,
                                   published_versions, vacuum_published)

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
    run_date, model_version = _night_of(wh, table, to_version, retention_days)
    metadata = {"rollback_from": str(current), "rollback_to": str(to_version)}
    explanations_before = wh.explanations.delta_table().version() if wh.explanations.exists() else None
    explanations = _restore_explanations(wh, run_date, model_version, metadata)
    try:
        table.restore(to_version, commit_properties=CommitProperties(custom_metadata={
            "run_date": publishes.get(to_version, ""), **metadata}))
    except (OSError, DeltaError) as err:  # the version's files are gone (vacuumed)
        if explanations_before is not None:   # the explanations go back to what served before
            wh.explanations.delta_table().restore(explanations_before)
        raise StageError(STAGE, f"version {to_version} can no longer be restored ({err}); "
                                f"retention is {retention_days} days") from err
    restored = wh.recommendations.delta_table()
    removed = vacuum_published(wh, retention_days)
    return {"restored_version": to_version, "restored_run_date": publishes.get(to_version),
            "previous_version": current, "delta_version": restored.version(), "files_vacuumed": removed,
            **explanations}


def _night_of(wh: config.Warehouse, table, version: int, retention_days: float) -> tuple[str, str]:
    """(run date, model version) of the lists at `version`: from its publish commit, else its rows."""
    from deltalake.exceptions import DeltaError

    night = published_nights(table).get(version)
    if night and night[1]:
        return night
    try:
        head = wh.recommendations.delta_table(version=version).to_pyarrow_dataset().head(
            1, columns=[config.RUN_DATE, config.MODEL_VERSION])
    except (OSError, DeltaError) as err:
        raise StageError(STAGE, f"version {version} can no longer be restored ({err}); "
                                f"retention is {retention_days} days") from err
    if not head.num_rows:
        return "", ""
    return str(head.column(0)[0].as_py()), head.column(1)[0].as_py()


def _restore_explanations(wh: config.Warehouse, run_date: str, model_version: str, metadata: dict) -> dict:
    """Make the explanations of the night (run date, model) current: a restore of their version,
    or, where that night has none, an empty commit of that night."""
    from deltalake import CommitProperties
    from deltalake.exceptions import DeltaError

    target = explanations_version_of(wh, run_date, model_version)
    if target is not None:
        current = wh.explanations.delta_table()
        try:
            if target != current.version():
                current.restore(target, commit_properties=CommitProperties(custom_metadata={
                    "run_date": run_date, "model_version": model_version, **metadata}))
            return {"explanations_restored_version": target,
                    "explanations_delta_version": wh.explanations.delta_table().version()}
        except (OSError, DeltaError):   # vacuumed: fall through to an empty night
            pass
    version = commit_night(wh.explanations, EXPLANATIONS_SCHEMA.empty_table(), run_date, model_version,
                           explanations="none kept for this night", **metadata)
    print(f"rollback: no explanations kept for {run_date} ({model_version}); the explanations table "
          f"now holds none for it", file=sys.stderr)
    return {"explanations_restored_version": None, "explanations_delta_version": version}


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
