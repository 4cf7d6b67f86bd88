"""Ingest: landing catalog and interaction files -> the `catalog` and `interactions` tables.

    python -m jobs.ingest --warehouse DIR --run-date YYYY-MM-DD [--max-bad-row-share 0.2]

Landing files may be CSV, JSON lines or Parquet, with columns in any order and optional columns
missing. Bad rows are not fatal one by one: each goes to `tables/rejected_rows/<run_date>/`
with its reason and run_date; past `--max-bad-row-share` of the interactions the stage fails, before anything
downstream runs.

Times (`published_at`, `updated_at`, `ts`) are ISO-8601 text, epoch seconds, or, in Parquet, native
timestamp columns of any unit. Every instant from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z
is a time (upstream systems write 9999-12-31 for "never" and 0001-01-01 for "unset"); anything else,
an instant outside that range included, is unreadable (sql/parse_timestamp.sql). An interaction with
an unreadable `ts` is set aside as `bad_timestamp`; an interaction at any time up to the end of the run
date is kept, year 0001 too (it sorts first in its user's history); one after it is `after_run_date`.
A catalog row with an unreadable `published_at` or `updated_at` is kept with that time NULL, and counted
by column in the `catalog_bad_timestamps` counter.

Privacy (jobs/plumbing/privacy.py): with `VREC_PSEUDONYMISE=1` every user id is replaced by its keyed
pseudonym as the landing files are read, before anything is written (the rejected rows' raw JSON
included). With `VREC_INTERACTION_RETENTION_DAYS=N`, interactions before 00:00 UTC of the day N days
before the run date are dropped (counted in `interactions_expired`), and so are the rejected-row
records of run dates before that day.
"""

from __future__ import annotations

import datetime as dt
import shutil
import sys
from pathlib import Path

from jobs.plumbing import config, privacy
from jobs.plumbing.sql import load_sql, timestamp_expr
from jobs.plumbing.stage import StageError, add_shared_arguments, base_parser, run_stage, write_counters
from jobs.plumbing.tables import write_spark_table

STAGE = "ingest"
CATALOG_COLUMNS = (config.VIDEO_ID, config.URI, config.TITLE, config.DESCRIPTION, config.TAGS,
                   config.PUBLISHED_AT, config.UPDATED_AT)
INTERACTION_COLUMNS = (config.USER_ID, config.VIDEO_ID, config.TS, config.EVENT, config.WATCH_SECONDS)
TIME_COLUMNS = (config.PUBLISHED_AT, config.UPDATED_AT, config.TS)
LANDING_SUFFIXES = (".csv", ".jsonl", ".json", ".parquet")


def landing_files(directory: Path) -> list[Path]:
    """Landing files in name order; hidden and in-progress (`_`-prefixed) files are ignored."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir()
                  if p.is_file() and p.suffix.lower() in LANDING_SUFFIXES and not p.name.startswith((".", "_")))


def _read_one(spark, path: Path):
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return (spark.read.option("header", True).option("multiLine", True)
                .option("escape", '"').option("mode", "PERMISSIVE").csv(str(path)))
    if suffix in (".jsonl", ".json"):
        return spark.read.option("primitivesAsString", True).option("mode", "PERMISSIVE").json(str(path))
    # Spark cannot read Parquet timestamps in nanoseconds (what pandas writes by default) at all; as
    # their raw count they can be read, and `_as_text` turns them back into times.
    spark.conf.set("spark.sql.legacy.parquet.nanosAsLong", "true")
    return spark.read.parquet(str(path))


def _nanosecond_columns(path: Path) -> set[str]:
    """The Parquet file's timestamp columns in nanoseconds (Spark reads them as that count)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.suffix.lower() != ".parquet":
        return set()
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError):  # not Parquet: Spark's reader says so
        return set()
    return {f.name for f in schema if pa.types.is_timestamp(f.type) and f.type.unit == "ns"}


def _as_text(df, name: str, nanoseconds: set[str]):
    """Column `name` as text that sql/parse_timestamp.sql and the other columns' SQL read."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, DecimalType, DoubleType, FloatType

    column = F.col(f"`{name}`")
    data_type = df.schema[name].dataType
    if isinstance(data_type, ArrayType):
        return F.array_join(column.cast("array<string>"), "|")
    if name in nanoseconds:
        # Native timestamps (any other unit, with or without a zone) cast to text by themselves.
        return F.timestamp_micros(F.expr(f"`{name}` div 1000")).cast("string")
    if name in TIME_COLUMNS and isinstance(data_type, (DoubleType, FloatType, DecimalType)):
        # Fractional epoch seconds as plain digits (a double casts to '1.7E9'); NaN, infinities
        # and numbers too large for any time become NULL.
        return column.try_cast("decimal(20, 6)").cast("string")
    return column.cast("string")


def read_landing(spark, directory: Path, columns: tuple[str, ...], pseudonym_key: bytes | None = None):
    """All landing files of one kind as one DataFrame of string columns, plus provenance columns.

    Every expected column is present (NULL where a file lacks it); list-valued columns (tags) are
    joined with `|`; `_raw` keeps the original row as JSON for the rejected-rows table. With a
    `pseudonym_key`, `user_id` holds pseudonyms, in `_raw` too.
    """
    from pyspark.sql import functions as F

    frames = []
    for path in landing_files(directory):
        df = _read_one(spark, path)
        nanoseconds = _nanosecond_columns(path)
        if pseudonym_key is not None and config.USER_ID in df.columns:
            user_ids = _as_text(df, config.USER_ID, nanoseconds)
            df = df.withColumn(config.USER_ID, privacy.pseudonym_column(user_ids, pseudonym_key))
        original = [c for c in df.columns if c != "_corrupt_record"]
        raw = F.to_json(F.struct(*[F.col(f"`{c}`") for c in original])) if original else F.lit(None)
        selected = []
        for name in columns:
            if name not in df.columns:
                selected.append(F.lit(None).cast("string").alias(name))
            else:
                selected.append(_as_text(df, name, nanoseconds).alias(name))
        frames.append(df.select(*selected, raw.alias("_raw"), F.lit(path.name).alias("_source_file"),
                                F.monotonically_increasing_id().alias("_row_in_file")))
    if not frames:
        return None
    result = frames[0]
    for frame in frames[1:]:
        result = result.unionByName(frame)
    return result


def retention_cutoff(run_date: str, retention_days: int) -> dt.datetime:
    """The first instant kept: 00:00 UTC of the day `retention_days` before the run date."""
    day = dt.date.fromisoformat(run_date) - dt.timedelta(days=retention_days)
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)


def drop_expired_rejected_rows(wh: config.Warehouse, cutoff: dt.datetime) -> int:
    """Delete the rejected-row records of run dates before the cutoff; how many run dates."""
    if not wh.rejected_rows.is_dir():
        return 0
    expired = []
    for directory in wh.rejected_rows.iterdir():
        try:
            if dt.date.fromisoformat(directory.name) < cutoff.date():
                expired.append(directory)
        except ValueError:   # not a run date's directory
            continue
    for directory in expired:
        shutil.rmtree(directory)
    return len(expired)


def ingest(spark, wh: config.Warehouse, run_date: str,
           max_bad_row_share: float = config.DEFAULT_MAX_BAD_ROW_SHARE) -> dict:
    from pyspark.sql import functions as F

    try:
        settings = privacy.load_settings()
    except privacy.PrivacySettingError as err:
        raise StageError(STAGE, str(err)) from err

    catalog_raw = read_landing(spark, wh.landing_catalog, CATALOG_COLUMNS)
    if catalog_raw is None:
        raise StageError(STAGE, f"no catalog files (csv, jsonl, parquet) in {wh.landing_catalog}")
    interactions_raw = read_landing(spark, wh.landing_interactions, INTERACTION_COLUMNS, settings.key)
    if interactions_raw is None:
        raise StageError(STAGE, f"no interaction files (csv, jsonl, parquet) in {wh.landing_interactions}")

    catalog_raw = catalog_raw.cache()
    catalog_raw.createOrReplaceTempView("landing_catalog")
    catalog = spark.sql(load_sql("catalog_latest", published_at_ts=timestamp_expr(config.PUBLISHED_AT),
                                 updated_at_ts=timestamp_expr(config.UPDATED_AT))).cache()
    catalog.createOrReplaceTempView("catalog")
    bad_times = spark.sql(load_sql("catalog_bad_timestamps", published_at_ts=timestamp_expr(config.PUBLISHED_AT),
                                   updated_at_ts=timestamp_expr(config.UPDATED_AT))).first().asDict()
    catalog_rejected = (catalog_raw.where(F.col(config.VIDEO_ID).isNull() | (F.trim(config.VIDEO_ID) == ""))
                        .select(F.lit("catalog").alias("source"), F.lit("missing_video_id").alias(config.REASON),
                                "_source_file", "_raw"))

    interactions_raw.createOrReplaceTempView("landing_interactions")
    checked = spark.sql(load_sql("interactions_checked", ts_parsed=timestamp_expr(f"i.{config.TS}"),
                                 default_event=config.DEFAULT_EVENT, run_date=run_date)).cache()
    valid = (checked.where(F.col(config.REASON).isNull())
             .select(*INTERACTION_COLUMNS)
             .dropDuplicates([config.USER_ID, config.VIDEO_ID, config.TS, config.EVENT]))
    interactions_rejected = checked.where(F.col(config.REASON).isNotNull()).select(
        F.lit("interactions").alias("source"), config.REASON, "_source_file", "_raw")

    counts = {r[config.REASON]: r["n"] for r in
              checked.groupBy(config.REASON).agg(F.count("*").alias("n")).collect()}
    interactions_read = sum(counts.values())
    after_run_date = counts.get("after_run_date", 0)
    bad = interactions_read - counts.get(None, 0) - after_run_date

    rejected = (catalog_rejected.unionByName(interactions_rejected)
                .withColumn(config.RUN_DATE, F.lit(run_date).cast("date")))
    rejected_dir = wh.rejected_rows / run_date
    write_spark_table(rejected.coalesce(1), rejected_dir, run_date)

    considered = interactions_read - after_run_date
    if considered and bad / considered > max_bad_row_share:
        raise StageError(STAGE, f"{bad} of {considered} interaction rows are bad ({bad / considered:.1%}, "
                                f"limit {max_bad_row_share:.0%}); see {rejected_dir}")

    write_spark_table(catalog, wh.catalog, run_date)
    valid = valid.cache()
    valid_count = valid.count()
    kept, expired, rejected_runs_expired = valid, 0, 0
    if settings.interaction_retention_days is not None:
        cutoff = retention_cutoff(run_date, settings.interaction_retention_days)
        kept = valid.where(F.col(config.TS) >= F.lit(cutoff))
        rejected_runs_expired = drop_expired_rejected_rows(wh, cutoff)
    write_spark_table(kept, wh.interactions, run_date)
    if kept is not valid:
        expired = valid_count - kept.count()
    counters = {
        "catalog_rows_read": catalog_raw.count(),
        "catalog_rows_rejected": catalog_rejected.count(),
        "catalog_bad_timestamps": bad_times,
        "videos": catalog.count(),
        "interactions_read": interactions_read,
        "interactions_rejected": bad,
        "interactions_after_run_date": after_run_date,
        "interactions_valid": valid_count - expired,
        "interactions_expired": expired,
        "rejected_row_runs_expired": rejected_runs_expired,
        "users": kept.select(config.USER_ID).distinct().count(),
        "rejected_reasons": {k: v for k, v in counts.items() if k is not None},
    }
    for df in (catalog_raw, catalog, checked, valid):
        df.unpersist()
    write_counters(wh, run_date, STAGE, counters)
    return counters


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    add_shared_arguments(parser, "--max-bad-row-share")
    args = parser.parse_args(argv)

    def body(wh: config.Warehouse) -> dict:
        from jobs.plumbing.spark import get_spark
        return ingest(get_spark("vrec-ingest"), wh, args.run_date, args.max_bad_row_share)

    return run_stage(STAGE, args.warehouse, body)


if __name__ == "__main__":
    sys.exit(main())
