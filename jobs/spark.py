"""Building the SparkSession that every Spark stage shares.

Locally this is `local[*]`; on a cluster spark-submit supplies the master and resources and
the builder only adds what the jobs rely on. Workers must run the same interpreter as the
driver, or they start the system Python and fail to import pandas.
"""

from __future__ import annotations

import os
import sys
import tempfile

from jobs import config


def get_spark(app_name: str, master: str | None = None):
    """Return the active SparkSession, or start one configured for the pipeline."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    builder = (
        SparkSession.builder.appName(app_name)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", os.environ.get("VREC_SHUFFLE_PARTITIONS", "4"))
        .config("spark.local.dir", os.environ.get("VREC_SPARK_LOCAL_DIR", tempfile.gettempdir()))
    )
    # spark-submit sets the master itself; only a plain `python -m jobs.X` needs a default.
    if master or not _launched_by_spark_submit():
        builder = builder.master(master or config.DEFAULT_SPARK_MASTER)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("VREC_SPARK_LOG_LEVEL", "WARN"))
    return spark


def _launched_by_spark_submit() -> bool:
    # spark-submit starts the driver's Python with the JVM gateway already listening.
    return "PYSPARK_GATEWAY_PORT" in os.environ
