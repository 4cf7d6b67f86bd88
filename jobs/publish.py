"""Publish: validate tonight's lists and commit them to the Delta serving table.

    python -m jobs.publish --warehouse DIR --run-date YYYY-MM-DD [--top-n 20] [--serving-table s3://bucket/prefix]

The lists in `tables/candidate_lists/<run_date>/` go through the recommendations suite first; a
failing check publishes nothing and the previous lists stay current. The publish itself is one
Delta commit (an overwrite), so a reader of the latest version sees one night's lists, never a mix,
and earlier nights stay readable by version. Written with delta-rs (`deltalake`), at reader
version 1 / writer version 2, so delta-spark on a cluster reads the same table. The table is in the
warehouse unless `--serving-table` (or $VREC_SERVING_TABLE) puts it elsewhere, e.g. on S3.

The night's explanations (`tables/candidate_explanations/<run_date>/`) are checked against the
lists (the same (user, rank, video, model) rows, shares summing to 1) and committed first, to the
explanations table beside the serving table (`recommendation_explanations`), so that the latest
lists always have theirs; both carry the run date and model version.
"""

from __future__ import annotations

import datetime as dt
import sys

import pyarrow as pa

from jobs.plumbing import config
from jobs.plumbing.quality import recommendation_suite, save_result
from jobs.plumbing.serving import EXPLANATIONS_SCHEMA, SERVING_SCHEMA, commit_night, vacuum_published
from jobs.plumbing.stage import (StageError, add_serving_table_argument, add_shared_arguments, base_parser, run_stage,
                                 write_counters)
from jobs.plumbing.tables import read_table

STAGE = "publish"


def serving_table(lists, run_date: str, generated_at: dt.datetime) -> pa.Table:
    lists = lists.sort_values([config.USER_ID, config.RANK], kind="stable")
    n = len(lists)
    return pa.table({
        config.USER_ID: pa.array(lists[config.USER_ID], pa.string()),
        config.RANK: pa.array(lists[config.RANK], pa.int32()),
        config.VIDEO_ID: pa.array(lists[config.VIDEO_ID], pa.string()),
        config.SCORE: pa.array(lists[config.SCORE], pa.float64()),
        config.MODEL_VERSION: pa.array(lists[config.MODEL_VERSION], pa.string()),
        config.RUN_DATE: pa.array([dt.date.fromisoformat(run_date)] * n, pa.date32()),
        config.GENERATED_AT: pa.array([generated_at] * n, pa.timestamp("us", tz="UTC")),
    }, schema=SERVING_SCHEMA)


def explanations_table(wh: config.Warehouse, lists, run_date: str) -> pa.Table:
    """Tonight's explanations, checked against the validated lists: the same (user, rank, video,
    model) rows, known reason codes, modality shares in [0, 1] summing to 1."""
    import numpy as np

    from models.explanations import REASONS

    source = wh.candidate_explanations / run_date
    if not source.exists():
        raise StageError(STAGE, f"no explanations for {run_date} at {source}; run score first")
    explained = read_table(source)
    frame = explained.select([config.USER_ID, config.RANK, config.VIDEO_ID, config.MODEL_VERSION,
                              config.REASON, *config.SHARE_COLUMNS]).to_pandas()
    keys = [config.USER_ID, config.RANK, config.VIDEO_ID, config.MODEL_VERSION]
    expected = lists[keys].sort_values(keys[:2]).reset_index(drop=True)
    got = frame[keys].sort_values(keys[:2]).reset_index(drop=True)
    if len(got) != len(expected) or not got.astype(str).equals(expected.astype(str)):
        raise StageError(STAGE, f"the explanations at {source} ({len(got)} rows) are not those of tonight's "
                                f"lists ({len(expected)} rows); run score again, nothing published")
    shares = frame[list(config.SHARE_COLUMNS)].to_numpy(np.float64)
    problems = {"reason codes not in " + ", ".join(REASONS): int((~frame[config.REASON].isin(REASONS)).sum()),
                "shares outside [0, 1]": int(((shares < 0) | (shares > 1)).any(axis=1).sum()),
                "shares not summing to 1": int((np.abs(shares.sum(axis=1) - 1.0) > 1e-6).sum())}
    problems = {what: count for what, count in problems.items() if count}
    if problems:
        raise StageError(STAGE, "the explanations failed validation, nothing published: "
                                + "; ".join(f"{count} rows with {what}" for what, count in problems.items()))
    n = explained.num_rows
    explained = explained.append_column(config.RUN_DATE, pa.array([dt.date.fromisoformat(run_date)] * n, pa.date32()))
    explained = explained.select(list(EXPLANATIONS_SCHEMA.names)).cast(EXPLANATIONS_SCHEMA)
    return explained.sort_by([(config.USER_ID, "ascending"), (config.RANK, "ascending")])


def publish(wh: config.Warehouse, run_date: str, *, top_n: int = config.DEFAULT_TOP_N,
            retention_days: float = config.DEFAULT_RETENTION_DAYS) -> dict:
    source = wh.candidate_lists / run_date
    if not source.exists():
        raise StageError(STAGE, f"no lists for {run_date} at {source}; run score first")
    lists = read_table(source).to_pandas()
    interactions = read_table(wh.interactions, [config.USER_ID, config.VIDEO_ID]).to_pandas()
    catalog_ids = read_table(wh.catalog, [config.VIDEO_ID]).to_pandas()[config.VIDEO_ID]
    result = recommendation_suite(lists, interactions, catalog_ids, top_n)
    save_result(wh, run_date, result)
    if not result.success:
        raise StageError(STAGE, f"the new lists failed validation, nothing published: {result.summary()}")

    explanations = explanations_table(wh, lists, run_date)
    table = serving_table(lists, run_date, dt.datetime.now(dt.timezone.utc))
    model_version = ",".join(sorted(set(lists[config.MODEL_VERSION])))
    # The explanations first: whenever the latest lists are tonight's, tonight's reasons are there.
    explanations_version = commit_night(wh.explanations, explanations, run_date, model_version)
    version = commit_night(wh.recommendations, table, run_date, model_version)
    counters = {"users_published": int(lists[config.USER_ID].nunique()), "rows_published": table.num_rows,
                "delta_version": version, "model_version": model_version, "table": str(wh.recommendations),
                "explanations_rows": explanations.num_rows, "explanations_delta_version": explanations_version,
                "explanations_table": str(wh.explanations),
                "files_vacuumed": vacuum_published(wh, retention_days)}
    write_counters(wh, run_date, STAGE, counters)
    return counters


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    add_shared_arguments(parser, "--top-n")
    parser.add_argument("--retention-days", type=float, default=config.DEFAULT_RETENTION_DAYS,
                        help="keep earlier nights' files this long (default: $VREC_RETENTION_DAYS or 30)")
    add_serving_table_argument(parser)
    args = parser.parse_args(argv)
    return run_stage(STAGE, args.warehouse, lambda wh: publish(wh, args.run_date, top_n=args.top_n,
                                                               retention_days=args.retention_days),
                     serving_table=args.serving_table)


if __name__ == "__main__":
    sys.exit(main())
