"""Building the SparkSession that every Spark stage shares.

Locally this is `local[*]` with local defaults; on a cluster spark-submit supplies the master and
resources, and the builder only adds what the jobs rely on, leaving the cluster's own settings be.
Workers must run the same interpreter as the driver, or they start the system Python and fail to
import pandas.

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
    """Return the active SparkSession, or start one configured for the pipeline.

    The settings every stage relies on (UTC, microsecond Parquet timestamps, Arrow) apply
    everywhere. Local mode adds local defaults (no UI, few shuffle partitions, a scratch dir); on a
    cluster, shuffle partitions, the UI and scratch space are the cluster's, and adaptive query
    execution sizes partitions from the data. The effective settings go to the stage log (stderr).
    """
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    # spark-submit sets the master itself; only a plain `python -m jobs.<stage>` needs a default.
    submitted = master is None and _launched_by_spark_submit()
    master = _submitted_master() if submitted else (master or config.DEFAULT_SPARK_MASTER)
    builder = (
        SparkSession.builder.appName(app_name)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.showConsoleProgress", "false")
    )
    if is_local(master):
        builder = (builder
                   .config("spark.ui.enabled", "false")
                   .config("spark.sql.shuffle.partitions", os.environ.get("VREC_SHUFFLE_PARTITIONS", "4"))
                   .config("spark.local.dir", os.environ.get("VREC_SPARK_LOCAL_DIR", tempfile.gettempdir())))
    else:
        builder = (builder
                   .config("spark.sql.adaptive.enabled", "true")
                   .config("spark.sql.adaptive.coalescePartitions.enabled", "true"))
    if not submitted:
        builder = builder.master(master)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("VREC_SPARK_LOG_LEVEL", "WARN"))
    print(f"spark: {effective_settings(spark)}", file=sys.stderr, flush=True)
    return spark


def is_local(master: str) -> bool:
    return master.startswith("local")


def effective_settings(spark) -> str:
    """One line for the stage log: what this session really runs with, wherever it came from."""
    conf = spark.sparkContext.getConf()
    ui = spark.sparkContext.uiWebUrl or "off"
    return (f"master={spark.sparkContext.master} app={spark.sparkContext.applicationId} "
            f"shuffle.partitions={spark.conf.get('spark.sql.shuffle.partitions')} "
            f"adaptive={spark.conf.get('spark.sql.adaptive.enabled')} ui={ui} "
            f"executor.memory={conf.get('spark.executor.memory', 'default')} "
            f"executor.cores={conf.get('spark.executor.cores', 'default')} "
            f"py-files={conf.get('spark.submit.pyFiles', 'none')}")


def _submitted_master() -> str:
    """The master spark-submit was given (`--master`, or spark-defaults.conf)."""
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()   # connects to spark-submit's JVM, which holds its settings
    return SparkConf().get("spark.master", "local[*]")


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
    gateway = SparkContext._gateway
    try:
        active.sparkContext.setLogLevel("OFF")
        active.stop()
    except Exception:  # noqa: BLE001 -- a JVM that is already gone has nothing more to log
        pass
    # py4j's finalizer thread sends the JVM garbage-collection commands on its own, once a second:
    # one sent while the JVM exits logs a traceback after the error line. Shutting the gateway
    # down ends that thread and marks the client disconnected, so nothing more is sent.
    gateway.shutdown()
    # Killed tasks can still log from the JVM after stop() returns; a JVM this process started
    # exits when its stdin closes, and a JVM that has exited logs nothing more.
    jvm = getattr(gateway, "proc", None)
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
