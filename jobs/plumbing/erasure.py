"""Erasing users from the warehouse: every place a user id (or its pseudonym) can land.

Each function takes the set of strings to erase (the user ids, plus their pseudonyms when
pseudonymisation is on) and returns how many rows, files or versions it removed, so the erasure
stage (jobs/erase_users.py) can count what it did without naming anyone.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from jobs.plumbing import config
from jobs.plumbing.tables import read_table, write_arrow_table

ERASED = "[erased]"
# delta-rs's own default; restored after the history before an erasure is cut.
DEFAULT_LOG_RETENTION = "interval 30 days"


# ---- landing files (written by upstream systems; rewritten without the users' rows) ------------

def _rewrite(path: Path, data: bytes) -> None:
    """Replace a landing file whole: written beside it under a `_` name (which ingest ignores)."""
    tmp = path.with_name(f"_{path.name}.erasing")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _user_of(row: dict) -> str | None:
    value = row.get(config.USER_ID)
    return None if value is None else str(value).strip()


def erase_from_landing_file(path: Path, user_ids: set[str]) -> int:
    """Rewrite one landing interaction file (CSV, JSON lines, Parquet) without the users' rows."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        table = pq.read_table(path)
        if config.USER_ID not in table.column_names:
            return 0
        ids = pc.utf8_trim_whitespace(table[config.USER_ID].cast(pa.string()))
        drop = pc.fill_null(pc.is_in(ids, pa.array(sorted(user_ids))), False)
        removed = pc.sum(drop).as_py() or 0
        if removed:
            sink = io.BytesIO()
            pq.write_table(table.filter(pc.invert(drop)), sink)
            _rewrite(path, sink.getvalue())
        return removed
    text = path.read_text(encoding="utf-8")
    if not any(user_id in text for user_id in user_ids):
        return 0
    if suffix == ".csv":
        rows = list(csv.reader(io.StringIO(text, newline="")))
        if not rows or config.USER_ID not in rows[0]:
            return 0
        column = rows[0].index(config.USER_ID)
        kept = [rows[0]] + [r for r in rows[1:] if not (len(r) > column and r[column].strip() in user_ids)]
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(kept)
        removed = len(rows) - len(kept)
        data = out.getvalue()
    else:   # JSON lines; a line that is not JSON is dropped when it names a user at all
        kept_lines, removed = [], 0
        for line in text.splitlines(keepends=True):
            try:
                row = json.loads(line) if line.strip() else {}
                named = isinstance(row, dict) and _user_of(row) in user_ids
            except json.JSONDecodeError:
                named = any(user_id in line for user_id in user_ids)
            removed += named
            if not named:
                kept_lines.append(line)
        data = "".join(kept_lines)
    if removed:
        _rewrite(path, data.encode("utf-8"))
    return removed


# ---- the warehouse's Parquet tables -------------------------------------------------------------

def _table_directories(root: Path):
    """`root` and every directory under it that directly holds Parquet files (one table or one run
    date's table each); hidden (staging) directories are skipped."""
    if not root.is_dir():
        return
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = sorted(d for d in subdirectories if not d.startswith((".", "_")))
        if any(f.endswith(".parquet") and not f.startswith((".", "_")) for f in files):
            yield Path(directory)


def _rewrite_table(directory: Path, keep) -> int:
    """Rewrite the table in `directory` with the rows where `keep(table)` is true; rows removed."""
    table = read_table(directory)
    if not table.num_rows:
        return 0
    mask = pc.fill_null(keep(table), True)
    removed = table.num_rows - (pc.sum(mask).as_py() or 0)
    if removed:
        write_arrow_table(table.filter(mask), directory, "erasure")
    return removed


def erase_from_user_table(root: Path, erased: set[str]) -> int:
    """Remove the rows whose `user_id` is erased from a user-keyed Parquet table (every run date)."""
    removed = 0
    for directory in list(_table_directories(root)):
        if config.USER_ID in pq.read_schema(next(p for p in directory.glob("*.parquet")
                                                 if not p.name.startswith((".", "_")))).names:
            removed += _rewrite_table(directory, lambda t: pc.invert(pc.is_in(
                t[config.USER_ID].cast(pa.string()), pa.array(sorted(erased)))))
    return removed


def erase_from_raw_rows(root: Path, erased: set[str]) -> int:
    """Remove the rejected-row records whose raw landing row (`_raw`, JSON) names an erased user."""
    def keep(table: pa.Table):
        raws = table["_raw"].to_pylist() if "_raw" in table.column_names else [None] * table.num_rows
        return pa.array([not _names_user(raw, erased) for raw in raws], pa.bool_())

    return sum(_rewrite_table(directory, keep) for directory in list(_table_directories(root)))


def _names_user(raw: str | None, erased: set[str]) -> bool:
    if not raw:
        return False
    try:
        row = json.loads(raw)
    except json.JSONDecodeError:
        return any(token in raw for token in erased)
    return isinstance(row, dict) and _user_of(row) in erased


# ---- Delta tables (the serving table, and any user-keyed Delta table) ---------------------------

def erase_from_delta_table(location, erased: set[str]) -> dict:
    """Rewrite the latest version without the users' rows (one overwrite commit that keeps the
    version's commit metadata, so it still counts as that night's publish), then cut the history:
    vacuum every file the latest version does not use, checkpoint, and delete the older log
    entries, whose file statistics may name the users. Earlier versions can no longer be read or
    rolled back to."""
    from deltalake import CommitProperties, write_deltalake

    table = location.delta_table()
    latest = table.to_pyarrow_table()
    mask = pc.invert(pc.is_in(latest[config.USER_ID].cast(pa.string()), pa.array(sorted(erased))))
    rows_removed = latest.num_rows - (pc.sum(mask).as_py() or 0)
    versions_before = table.version() + 1
    if rows_removed:
        metadata = next((entry for entry in table.history(1)), {})
        custom = {k: str(v) for k, v in metadata.items() if k in ("run_date", "model_version")}
        write_deltalake(location.uri, latest.filter(mask), mode="overwrite",
                        storage_options=location.storage_options or None,
                        commit_properties=CommitProperties(custom_metadata={**custom, "erasure": "1"}))
        table = location.delta_table()
    files_vacuumed = len(table.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False))
    log_retention = table.metadata().configuration.get("delta.logRetentionDuration", DEFAULT_LOG_RETENTION)
    table.alter.set_table_properties({"delta.logRetentionDuration": "interval 0 days"})
    table = location.delta_table()
    table.create_checkpoint()
    table.cleanup_metadata()
    location.delta_table().alter.set_table_properties({"delta.logRetentionDuration": log_retention})
    return {"rows": rows_removed, "files_vacuumed": files_vacuumed, "versions_cut": versions_before}


# ---- per-run bookkeeping (runs/<date>/) ----------------------------------------------------------

def _token_pattern(erased: set[str]) -> re.Pattern:
    alternatives = "|".join(re.escape(t) for t in sorted(erased, key=len, reverse=True))
    return re.compile(rf"(?<![\w.-])(?:{alternatives})(?![\w.-])")


def _scrub_json(value, pattern: re.Pattern):
    if isinstance(value, str):
        return pattern.sub(ERASED, value)
    if isinstance(value, list):
        return [_scrub_json(v, pattern) for v in value]
    if isinstance(value, dict):
        return {pattern.sub(ERASED, k): _scrub_json(v, pattern) for k, v in value.items()}
    return value


def scrub_run_files(runs: Path, erased: set[str]) -> int:
    """Replace the users' ids in the runs' reports and logs with `[erased]` (in JSON files only in
    string values and keys); archives are left alone. Files changed."""
    if not runs.is_dir() or not erased:
        return 0
    pattern, needles, changed = _token_pattern(erased), [t.encode() for t in erased], 0
    for path in sorted(p for p in runs.rglob("*") if p.is_file() and p.suffix != ".zip"):
        data = path.read_bytes()
        if not any(needle in data for needle in needles):
            continue
        text = data.decode("utf-8", errors="replace")
        try:
            document = json.loads(text)
            scrubbed_document = _scrub_json(document, pattern)
            if scrubbed_document == document:    # the bytes matched a number or a longer word only
                continue
            scrubbed = json.dumps(scrubbed_document, indent=1, sort_keys=True) + "\n"
        except json.JSONDecodeError:
            scrubbed = pattern.sub(ERASED, text)
            if scrubbed == text:
                continue
        tmp = path.with_name(f".{path.name}.erasing")
        tmp.write_text(scrubbed)
        os.replace(tmp, path)
        changed += 1
    return changed
