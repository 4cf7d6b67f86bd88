"""The views downstream consumers use over the serving table, in Spark SQL (`sql/view_*.sql`).

    python -m jobs.consumer_views --warehouse DIR --user-id ID [--serving-table s3://bucket/prefix]

`register_views(spark, wh)` defines `recommendations` (the serving table's latest version),
`recommendation_explanations` (the explanations table's latest version), `catalog`, and the views
`latest_recommendations`, `recommendations_with_titles` and `recommendations_with_explanations`
(the lists joined with their reasons on user_id, video_id, run_date and model_version); the query
`sql/user_recommendations.sql` then gives one user's list. On a cluster with the delta-spark jars
the table is read with `format("delta")`; without them (local runs) the same snapshot is read from
the Parquet files that the latest Delta version lists (delta-rs), never from a directory listing,
which would mix in files of earlier nights. A serving table on S3 is read there through delta-rs
as Arrow, since a local Spark has no S3 file system (hadoop-aws is not on its classpath).
"""

from __future__ import annotations

import sys

from jobs.plumbing import config
from jobs.plumbing.sql import load_sql
from jobs.plumbing.stage import StageError, add_serving_table_argument, published_warehouse_at

VIEWS = ("view_latest_recommendations", "view_recommendations_with_titles", "view_recommendations_with_explanations")


def read_serving_table(spark, wh: config.Warehouse):
    """The latest version of the serving table as a Spark DataFrame."""
    from jobs.plumbing.serving import SERVING_SCHEMA

    return read_delta_table(spark, wh.recommendations, SERVING_SCHEMA)


def read_explanations_table(spark, wh: config.Warehouse):
    """The latest version of the explanations table; with none published yet, no rows."""
    from jobs.plumbing.serving import EXPLANATIONS_SCHEMA

    if not wh.explanations.exists():
        return _empty_frame(spark, EXPLANATIONS_SCHEMA)
    return read_delta_table(spark, wh.explanations, EXPLANATIONS_SCHEMA)


def _empty_frame(spark, schema):
    from pyspark.sql.pandas.types import from_arrow_schema

    return spark.createDataFrame([], from_arrow_schema(schema))


def read_delta_table(spark, location, schema):
    """The latest version of a Delta table as a Spark DataFrame (`schema`: its Arrow schema, for a
    version with no files)."""
    from pyspark.errors import PySparkException
    from py4j.protocol import Py4JJavaError

    try:
        return spark.read.format("delta").load(location.uri)
    except (PySparkException, Py4JJavaError):  # no delta-spark on the classpath
        table = location.delta_table()
        files = table.file_uris()
        if not files:   # an empty night (a rollback to a night kept without explanations)
            return _empty_frame(spark, schema)
        if location.is_local:
            return spark.read.parquet(*files)
        return spark.createDataFrame(table.to_pyarrow_table())


def register_views(spark, wh: config.Warehouse) -> None:
    read_serving_table(spark, wh).createOrReplaceTempView("recommendations")
    read_explanations_table(spark, wh).createOrReplaceTempView("recommendation_explanations")
    spark.read.parquet(str(wh.catalog)).createOrReplaceTempView("catalog")
    for view in VIEWS:
        spark.sql(load_sql(view))


def user_recommendations(spark, user_id: str):
    """One user's current list; the id is a bound parameter, never pasted into the SQL."""
    return spark.sql(load_sql("user_recommendations"), args={"user_id": user_id})


def main(argv: list[str] | None = None) -> int:
    import argparse

    from jobs.plumbing.spark import get_spark

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", default=config.DEFAULT_WAREHOUSE)
    parser.add_argument("--user-id", required=True)
    add_serving_table_argument(parser)
    args = parser.parse_args(argv)
    try:
        wh = published_warehouse_at("consumer_views", args.warehouse, args.serving_table)
    except StageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    spark = get_spark("vrec-consumer-views")
    register_views(spark, wh)
    user_recommendations(spark, args.user_id).show(truncate=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
