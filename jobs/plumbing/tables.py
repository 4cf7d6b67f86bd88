"""Reading and writing the warehouse's Parquet tables so that readers never see half a table.

A table is written beside its current version and swapped in with renames. Staging and previous
directories start with a dot, which Spark and pyarrow readers skip.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq


def replace_directory(staging: Path, target: Path) -> None:
    """Swap a freshly written directory into place, so readers see the old or the new table.

    Two renames are not one atomic step, but each is, and a crash between them leaves
    `.<target>.previous` that `restore_interrupted_swap` puts back on the next run.
    """
    previous = _previous_path(target)
    if previous.exists():
        shutil.rmtree(previous)
    if target.exists():
        target.rename(previous)
    staging.rename(target)
    if previous.exists():
        shutil.rmtree(previous)


def _previous_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.previous")


def restore_interrupted_swap(target: Path) -> None:
    previous = _previous_path(target)
    if previous.exists() and not target.exists():
        previous.rename(target)


def staging_path(target: Path, run_date: str) -> Path:
    path = target.with_name(f".{target.name}.staging-{run_date}")
    if path.exists():
        shutil.rmtree(path)
    return path


def write_spark_table(df, target: Path, run_date: str) -> None:
    """Write a Spark DataFrame as the new version of a Parquet table."""
    restore_interrupted_swap(target)
    staging = staging_path(target, run_date)
    df.write.parquet(str(staging))
    replace_directory(staging, target)


def write_arrow_table(table: pa.Table, target: Path, run_date: str) -> None:
    """Write an Arrow table as the new version of a Parquet table (one file)."""
    restore_interrupted_swap(target)
    staging = staging_path(target, run_date)
    staging.mkdir(parents=True)
    pq.write_table(table, staging / "part-00000.parquet")
    replace_directory(staging, target)


def read_table(path: Path, columns: list[str] | None = None) -> pa.Table:
    """Every Parquet file under `path` (recursively), as one Arrow table.

    INT96 timestamps (what Spark writes unless told otherwise, and tables from before it was) are
    read in microseconds: in nanoseconds, pyarrow's default, a year outside 1677-2262 wraps around.
    """
    restore_interrupted_swap(path)
    parquet = ds.ParquetFileFormat(read_options=ds.ParquetReadOptions(coerce_int96_timestamp_unit="us"))
    return ds.dataset(str(path), format=parquet).to_table(columns=columns)
