"""Building the SparkSession that every Spark stage shares.

Locally this is `local[*]`; on a cluster spark-submit supplies the master and resources and
the builder only adds what the jobs rely on. Workers must run the same interpreter as the
driver, or they start the system Python and fail to import pandas.

Tables are written with timestamps as Parquet TIMESTAMP_MICROS, not Spark's default INT96, which
pyarrow reads as nanoseconds: years 1677 to 2262 only, anything else silently wrapped around.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from jobs.plumbing import config


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
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", os.environ.get("VREC_SHUFFLE_PARTITIONS", "4"))
        .config("spark.local.dir", os.environ.get("VREC_SPARK_LOCAL_DIR", tempfile.gettempdir()))
    )
    # spark-submit sets the master itself; only a plain `python -m jobs.<stage>` needs a default.
    if master or not _launched_by_spark_submit():
        builder = builder.master(master or config.DEFAULT_SPARK_MASTER)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("VREC_SPARK_LOG_LEVEL", "WARN"))
    return spark


def stop_spark() -> None:
    """Stop this process's SparkSession, if one is running, before a CLI prints its last error line.

    A failed job leaves Spark logging after the exception reaches Python (the other tasks of the
    stage are killed and say so, with the worker's traceback); stopping waits for that, so the
    error line really is the last line on stderr. Only for a process that is about to exit.
    """
    if "pyspark" not in sys.modules:   # no Spark stage ran: nothing to stop, nothing to import
        return
    from pyspark.sql import SparkSession

    from pyspark import SparkContext

    active = SparkSession.getActiveSession()
    if active is None:
        return
    try:
        active.sparkContext.setLogLevel("OFF")
        active.stop()
    except Exception:  # noqa: BLE001 -- a JVM that is already gone has nothing more to log
        pass
    # Killed tasks can still log from the JVM after stop() returns; a JVM this process started
    # exits when its stdin closes, and a JVM that has exited logs nothing more.
    jvm = getattr(SparkContext._gateway, "proc", None)
    if jvm is not None:
        jvm.stdin.close()
        try:
            jvm.wait(timeout=30)
        except subprocess.TimeoutExpired:
            jvm.kill()
        SparkContext._gateway = SparkContext._jvm = None   # a later session starts a new JVM


def _launched_by_spark_submit() -> bool:
    # spark-submit starts the driver's Python with the JVM gateway already listening.
    return "PYSPARK_GATEWAY_PORT" in os.environ
