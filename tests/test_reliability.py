"""A warehouse that cannot be written, or fills up, ends the run with one clear line naming the path."""

from __future__ import annotations

import subprocess
import sys

import pytest

from jobs import config
from tests.conftest import PROJECT_ROOT, project_env
from tests.landing import text_only_catalog, write_landing

RUN_DATE = "2026-11-20"


def run_nightly(command_prefix: list[str], warehouse: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([*command_prefix, sys.executable, "-m", "jobs.run_nightly", "--warehouse", warehouse,
                           "--run-date", RUN_DATE, "--epochs", "2"],
                          cwd=PROJECT_ROOT, env=project_env(**env), capture_output=True, text=True)


def error_lines(done: subprocess.CompletedProcess) -> list[str]:
    return [line for line in done.stderr.splitlines() if line.startswith("error:")]


def can_mount_tmpfs() -> bool:
    done = subprocess.run(["unshare", "--mount", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                          capture_output=True)
    return done.returncode == 0


def test_unwritable_warehouse_fails_before_any_work_naming_the_path(tmp_path):
    wh = config.Warehouse.at(tmp_path / "warehouse")
    videos, _, rows = text_only_catalog(seed=2, n_videos=30, n_users=10)
    write_landing(wh, videos, rows)
    (wh.root / "tables").write_text("not a directory")     # root may write anywhere; a file blocks it
    done = run_nightly([], str(wh.root))
    assert done.returncode == 1
    assert error_lines(done) == [f"error: [preflight] cannot write to {wh.root / 'tables'}: File exists"]


@pytest.mark.slow
@pytest.mark.parametrize("size, min_free_mib, expected", [
    ("2m", "100", "only 2 MiB free at {root}; the run needs at least 100 MiB (VREC_MIN_FREE_MIB)"),
    ("600k", "0", "no space left on device under {root}"),
], ids=["refused_before_work", "full_during_the_run"])
def test_full_warehouse_ends_with_one_line_naming_it(tmp_path, size, min_free_mib, expected):
    if not can_mount_tmpfs():
        pytest.skip("cannot mount a small file system here (needs root and mount namespaces)")
    landing = config.Warehouse.at(tmp_path / "landing-source")
    videos, _, rows = text_only_catalog(seed=2, n_videos=30, n_users=10)
    write_landing(landing, videos, rows)
    root = tmp_path / "small"
    root.mkdir()
    # A private mount namespace: a file system of `size` exists only for this one run.
    mount = ["unshare", "--mount", "sh", "-c",
             f'mount -t tmpfs -o size={size} tmpfs "{root}" && cp -r "{landing.root}/landing" "{root}/landing" '
             '&& exec "$@"', "sh"]
    done = run_nightly(mount, str(root), VREC_MIN_FREE_MIB=min_free_mib)
    assert done.returncode == 1, done.stderr[-2000:]
    errors = error_lines(done)
    assert len(errors) == 1, done.stderr[-3000:]
    assert errors[0].endswith(expected.format(root=root)), errors
