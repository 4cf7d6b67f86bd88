"""What the privacy tests share: a landing zone with distinctive user ids, a key file, nights run as
the CLI, and a scan of a warehouse for strings.

The user ids are distinctive strings (`user-privacy-0003-qx`), so that a byte scan of the warehouse
means something: a short numeric id would match by chance. The scan reads every file's bytes and,
for Parquet files (compressed pages can hide a string from a byte scan), every decoded value.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from jobs.plumbing import config
from tests.conftest import PROJECT_ROOT, project_env
from tests.landing import text_only_catalog, write_landing

RUN_DATE = "2026-11-20"
NEXT_DATE = "2026-11-21"
KEY = b"a-secret-key-for-the-tests-only"
# Known answer: HMAC-SHA256(KEY, "user-erase-me-7781"), first 128 bits, computed once with openssl:
# printf user-erase-me-7781 | openssl dgst -sha256 -hmac a-secret-key-for-the-tests-only
KNOWN_PSEUDONYM = "ps_082bd60323c505d659fabb5355200716"
FAST_EVALUATION = {"VREC_TUNE_BASELINES": "0", "VREC_EVAL_SEQUENTIAL": "0"}


def distinctive(user_id: str) -> str:
    return f"user-privacy-{int(user_id[1:]):04d}-qx"


def privacy_landing(wh: config.Warehouse, *, seed: int = 5, n_videos: int = 40, n_users: int = 16) -> list[dict]:
    """A text-only landing zone with distinctive user ids, plus one rejected row per user (an unknown
    video), so the rejected-row records hold every user too. Returns the interaction rows."""
    videos, _, rows = text_only_catalog(seed=seed, n_videos=n_videos, n_users=n_users)
    rows = [{**row, "user_id": distinctive(row["user_id"])} for row in rows]
    users = sorted({row["user_id"] for row in rows})
    bad = [{"user_id": user, "video_id": "no-such-video", "ts": "2026-11-19T10:00:00Z", "event": "view",
            "watch_seconds": 1.0} for user in users]
    write_landing(wh, videos, rows + bad)
    return rows


def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "secrets" / "pseudonym.key"     # outside the warehouse, as in production
    path.parent.mkdir()
    path.write_bytes(KEY + b"\n")
    return path


def run(module: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          env=project_env(**FAST_EVALUATION, **env))


def night(wh: config.Warehouse, run_date: str, *extra: str, **env: str) -> dict:
    done = run("jobs.run_nightly", "--warehouse", str(wh.root), "--run-date", run_date, "--epochs", "2",
               "--top-n", "5", *extra, **env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def parquet_strings(path: Path) -> list[str]:
    """Every decoded string value of a Parquet file (nested values and JSON text included)."""
    table = pq.read_table(path)
    values = []
    for column in table.columns:
        for value in column.to_pylist():
            values.append(json.dumps(value, default=str) if not isinstance(value, str) else value)
    return values


def scan(root: Path, needles: set[str]) -> list[tuple[str, str]]:
    """(file, needle) for every file under `root` whose bytes, or decoded Parquet values, hold a needle."""
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        hits = {n for n in needles if n.encode() in data}
        if path.suffix == ".parquet" or path.name.endswith(".checkpoint.parquet"):
            text = "\n".join(parquet_strings(path))
            hits |= {n for n in needles if n in text}
        found += [(str(path.relative_to(root)), n) for n in sorted(hits)]
    return found


