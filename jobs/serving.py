"""The serving table's history: which version holds which night's lists, and retention."""

from __future__ import annotations


def published_versions(table) -> dict[int, str]:
    """Delta version -> run date, for every commit that wrote lists (publishes, not rollbacks)."""
    return {entry["version"]: entry["run_date"] for entry in table.history()
            if entry.get("operation") == "WRITE" and entry.get("run_date")}


def vacuum(table, retention_days: float) -> int:
    """Delete files that no version younger than the retention needs; returns how many."""
    removed = table.vacuum(retention_hours=int(retention_days * 24), enforce_retention_duration=False,
                           dry_run=False)
    return len(removed)
