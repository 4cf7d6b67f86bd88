"""Publish: validate tonight's lists and commit them to the Delta serving table.

    python -m jobs.publish --warehouse DIR --run-date YYYY-MM-DD [--top-n 20] [--serving-table s3://bucket/prefix]

The lists in `tables/candidate_lists/<run_date>/` go through the recommendations suite first; a
failing check publishes nothing and the previous lists stay current. The publish itself is one
Delta commit (an overwrite), so a reader of the latest version sees one night's lists, never a mix,
and earlier nights stay readable by version. Written with delta-rs (`deltalake`), at reader
version 1 / writer version 2, so delta-spark on a cluster reads the same table. The table is in the
warehouse unless `--serving-table` (or $VREC_SERVING_TABLE) puts it elsewhere, e.g. on S3.
"""

from __future__ import annotations

import datetime as dt
import sys

import pyarrow as pa

from jobs.plumbing import config
from jobs.plumbing.quality import recommendation_suite, save_result
from jobs.plumbing.serving import vacuum
from jobs.plumbing.stage import StageError, add_serving_table_argument, base_parser, run_stage, write_counters
from jobs.plumbing.tables import read_table

STAGE = "publish"

SERVING_SCHEMA = pa.schema([
    pa.field(config.USER_ID, pa.string(), nullable=False),
    pa.field(config.RANK, pa.int32(), nullable=False),
    pa.field(config.VIDEO_ID, pa.string(), nullable=False),
    pa.field(config.SCORE, pa.float64(), nullable=False),
    pa.field(config.MODEL_VERSION, pa.string(), nullable=False),
    pa.field(config.RUN_DATE, pa.date32(), nullable=False),
    # UTC-aware: a timestamp without time zone would raise the Delta protocol (timestampNtz).
    pa.field(config.GENERATED_AT, pa.timestamp("us", tz="UTC"), nullable=False),
])


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


def publish(wh: config.Warehouse, run_date: str, *, top_n: int = config.DEFAULT_TOP_N,
            retention_days: float = config.DEFAULT_RETENTION_DAYS) -> dict:
    from deltalake import CommitProperties, write_deltalake

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

    table = serving_table(lists, run_date, dt.datetime.now(dt.timezone.utc))
    model_versions = sorted(set(lists[config.MODEL_VERSION]))
    # On S3, delta-rs writes each commit (_delta_log/N.json) with a conditional put (If-None-Match),
    # so of two publishes racing for one version, one fails instead of overwriting the other.
    write_deltalake(wh.recommendations.uri, table, mode="overwrite",
                    storage_options=wh.recommendations.storage_options or None,
                    commit_properties=CommitProperties(
                        custom_metadata={"run_date": run_date, "model_version": ",".join(model_versions)}))
    published = wh.recommendations.delta_table()
    counters = {"users_published": int(lists[config.USER_ID].nunique()), "rows_published": table.num_rows,
                "delta_version": published.version(), "model_version": ",".join(model_versions),
                "table": str(wh.recommendations), "files_vacuumed": vacuum(published, retention_days)}
    write_counters(wh, run_date, STAGE, counters)
    return counters


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--top-n", type=int, default=config.DEFAULT_TOP_N)
    parser.add_argument("--retention-days", type=float, default=config.DEFAULT_RETENTION_DAYS,
                        help="keep earlier nights' files this long (default: $VREC_RETENTION_DAYS or 30)")
    add_serving_table_argument(parser)
    args = parser.parse_args(argv)
    return run_stage(STAGE, args.warehouse, lambda wh: publish(wh, args.run_date, top_n=args.top_n,
                                                               retention_days=args.retention_days),
                     serving_table=args.serving_table)


if __name__ == "__main__":
    sys.exit(main())
