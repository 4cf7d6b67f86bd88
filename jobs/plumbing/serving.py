"""The Delta tables a night publishes, in one place: the serving table and its explanations side
table (where each lives: `config.Warehouse.recommendations` / `.explanations`, both in
`Warehouse.published_tables()`), their schemas, the one writer that commits a night to either,
their history (which version holds which night), rollback of both together, and retention.

Every commit of either table carries the night's `run_date` and `model_version` in its commit
metadata, and every row of either carries them as columns: readers join the two on
(user_id, video_id, run_date, model_version), so tonight's lists are never paired with another
night's reasons. A night's explanations are committed before its lists.
"""

from __future__ import annotations

import pyarrow as pa

from jobs.plumbing import config
from jobs.plumbing.table_location import TableLocation

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

# The re-ranker's strongest contributions to a row's score, largest |value| first.
RANKER_FEATURE_TYPE = pa.list_(pa.struct([pa.field("feature", pa.string()), pa.field("contribution", pa.float64())]))
EXPLANATIONS_SCHEMA = pa.schema([
    pa.field(config.USER_ID, pa.string(), nullable=False),
    pa.field(config.RANK, pa.int32(), nullable=False),
    pa.field(config.VIDEO_ID, pa.string(), nullable=False),
    pa.field(config.RUN_DATE, pa.date32(), nullable=False),
    pa.field(config.MODEL_VERSION, pa.string(), nullable=False),
    pa.field(config.BECAUSE_VIDEO_ID, pa.string()),
    pa.field(config.BECAUSE_SIMILARITY, pa.float64()),
    pa.field(config.REASON, pa.string(), nullable=False),
    *[pa.field(name, pa.float64(), nullable=False) for name in config.SHARE_COLUMNS],
    pa.field(config.RANKER_TOP_FEATURES, RANKER_FEATURE_TYPE),
])
assert tuple(EXPLANATIONS_SCHEMA.names) == config.EXPLANATION_COLUMNS


def commit_night(location: TableLocation, table: pa.Table, run_date: str, model_version: str,
                 **metadata: str) -> int:
    """One Delta commit (an overwrite) that makes `table` the table's whole content, with the
    night in its commit metadata; returns the new version. On S3 each commit is a conditional put
    (If-None-Match), so of two writers racing for one version, one fails instead of overwriting."""
    from deltalake import CommitProperties, write_deltalake

    write_deltalake(location.uri, table, mode="overwrite", storage_options=location.storage_options or None,
                    commit_properties=CommitProperties(custom_metadata={
                        "run_date": run_date, "model_version": model_version, **metadata}))
    return location.delta_table().version()


def published_versions(table) -> dict[int, str]:
    """Delta version -> run date, for every commit that wrote lists (publishes, not rollbacks)."""
    return {entry["version"]: entry["run_date"] for entry in table.history()
            if entry.get("operation") == "WRITE" and entry.get("run_date")}


def published_nights(table) -> dict[int, tuple[str, str]]:
    """Delta version -> (run date, model version), for every publish (not rollback) commit."""
    return {entry["version"]: (entry["run_date"], entry.get("model_version", "")) for entry in table.history()
            if entry.get("operation") == "WRITE" and entry.get("run_date")}


def vacuum(table, retention_days: float) -> int:
    """Delete files that no version younger than the retention needs; returns how many."""
    removed = table.vacuum(retention_hours=int(retention_days * 24), enforce_retention_duration=False,
                           dry_run=False)
    return len(removed)


def vacuum_published(wh: config.Warehouse, retention_days: float) -> int:
    """Retention over every published table (those that exist); files removed in all."""
    return sum(vacuum(location.delta_table(), retention_days)
               for location in wh.published_tables().values() if location.exists())


def production_model(wh: config.Warehouse) -> str | None:
    """The model whose lists the latest version of the serving table holds, if any."""
    if not wh.recommendations.exists():
        return None
    head = wh.recommendations.delta_table().to_pyarrow_dataset().head(1, columns=[config.MODEL_VERSION])
    return head.column(0)[0].as_py() if head.num_rows else None


def explanations_version_of(wh: config.Warehouse, run_date: str, model_version: str) -> int | None:
    """The latest version of the explanations table that holds the night (run date, model), if any."""
    if not wh.explanations.exists():
        return None
    matching = [version for version, night in published_nights(wh.explanations.delta_table()).items()
                if night == (run_date, model_version)]
    return max(matching) if matching else None
