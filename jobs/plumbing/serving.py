"""The serving table's history: which model serves now, which version holds which night's
lists, and retention."""

from __future__ import annotations

from jobs.plumbing import config


def published_versions(table) -> dict[int, str]:
    """Delta version -> run date, for every commit that wrote lists (publishes, not rollbacks)."""
    return {entry["version"]: entry["run_date"] for entry in table.history()
            if entry.get("operation") == "WRITE" and entry.get("run_date")}


def vacuum(table, retention_days: float) -> int:
    """Delete files that no version younger than the retention needs; returns how many."""
    removed = table.vacuum(retention_hours=int(retention_days * 24), enforce_retention_duration=False,
                           dry_run=False)
    return len(removed)


def production_model(wh: config.Warehouse) -> str | None:
    """The model whose lists the latest version of the serving table holds, if any."""
    if not wh.recommendations.exists():
        return None
    head = wh.recommendations.delta_table().to_pyarrow_dataset().head(1, columns=[config.MODEL_VERSION])
    return head.column(0)[0].as_py() if head.num_rows else None
