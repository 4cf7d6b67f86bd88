"""A class-data-sharing archive of the Spark driver's classes, for the test session's JVMs.

The tests start well over a hundred short-lived Spark driver JVMs (every stage of every night
is a process of its own, as in production), and each spends seconds loading and verifying the
same few thousand classes from Spark's jars. Java 17 can dump the classes a JVM loaded into an
archive when it exits (`-XX:ArchiveClassesAtExit`) and map that archive into later JVMs
(`-XX:SharedArchiveFile`): a local SparkSession then starts in about 4 s instead of 7 here.

    SPARK_SUBMIT_OPTS=-XX:ArchiveClassesAtExit=ARCHIVE python -m tests.spark_class_archive SCRATCH_DIR

(what `build` runs) is the job whose classes are archived: a session that does what the stages do (Arrow from pandas,
Parquet out and in, a shuffle, mapInPandas). A JVM whose class path differs from the archive's
(another SPARK_CONF_DIR, as on the test cluster) ignores the archive and loads its classes as
usual, silently.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path


def build(archive: Path, java_options: str, timeout: float = 180.0) -> bool:
    """Dump the archive of the job below with `java_options`; whether it was written."""
    env = dict(os.environ)
    env["SPARK_SUBMIT_OPTS"] = f"{java_options} -XX:ArchiveClassesAtExit={archive}"
    try:
        done = subprocess.run([sys.executable, "-m", "tests.spark_class_archive", str(archive.parent)],
                              cwd=Path(__file__).resolve().parent.parent, env=env, capture_output=True,
                              timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and archive.is_file()


def _stage_like_job(scratch: str) -> None:
    import pandas as pd

    from jobs.plumbing.spark import get_spark

    spark = get_spark("vrec-class-archive", master="local[2]")
    frame = spark.createDataFrame(pd.DataFrame({"user": [1, 2, 2], "ts": pd.to_datetime([1, 2, 3], unit="s", utc=True)}))
    frame.write.mode("overwrite").parquet(os.path.join(scratch, "table"))
    table = spark.read.parquet(os.path.join(scratch, "table"))
    table.groupBy("user").count().toPandas()
    table.mapInPandas(lambda parts: (p.assign(user=p["user"] + 1) for p in parts), table.schema).toPandas()
    spark.stop()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(dir=sys.argv[1]) as scratch:
        _stage_like_job(scratch)
