"""Import a MicroLens-style dataset with `--media`, then run the night on exactly what the importer wrote.

The clips sit outside the warehouse, as a new user's download would. The night must decode them (the
importer puts them under the media root), keep their features and publish lists for every user.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jobs.plumbing import config
from jobs.plumbing.tables import read_table
from tests.conftest import PROJECT_ROOT, offline, project_env
from tests.serving_contract import check_serving_table

pytestmark = pytest.mark.slow
RUN_DATE = "2026-11-20"
TOP_N = 5
N_USERS, N_ITEMS = 200, 300
# Four of the smallest real clips (two containers, three codecs), as the media of four items.
CLIPS = {"7": "liveportrait/d1.mp4", "42": "liveportrait/d2.mp4", "101": "moviepy/example3.mp4",
         "250": "moviepy/big_buck_bunny_432_433.webm"}
TOPICS = ["cooking pasta", "mountain biking", "cat videos", "piano lessons", "football highlights", "street dance"]


def _microlens_source(source: Path) -> None:
    """A small MicroLens-format dataset: users with 4-8 items each (skewed to popular items), titles."""
    rng = np.random.default_rng(13)
    source.mkdir()
    weights = 1.0 / np.arange(1, N_ITEMS + 1) ** 0.8
    lines = []
    for user in range(1, N_USERS + 1):
        items = rng.choice(N_ITEMS, size=int(rng.integers(4, 9)), replace=False, p=weights / weights.sum()) + 1
        lines.append(f"{user}\t{' '.join(map(str, items))}")
    lines += [f"{N_USERS + 1 + i}\t{item} 1 2" for i, item in enumerate(CLIPS)]  # every clip is watched
    (source / "MicroLens-50k_pairs.tsv").write_text("\n".join(lines) + "\n")
    titles = [f'{item},"{TOPICS[item % len(TOPICS)]}, part {item}"' for item in range(1, N_ITEMS + 1)]
    (source / "MicroLens-50k_titles.csv").write_bytes(("item,title\r\n" + "\r\n".join(titles) + "\r\n").encode())


def test_imported_media_decode_and_lists_are_published(shared_data: Path, tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    clips.mkdir()
    for item, name in CLIPS.items():
        shutil.copyfile(shared_data / "media" / name, clips / f"{item}{Path(name).suffix}")
    source = tmp_path / "microlens"
    _microlens_source(source)
    wh = config.Warehouse.at(tmp_path / "warehouse")
    env = project_env()

    subprocess.run([sys.executable, "-m", "jobs.import_dataset", "--format", "microlens", "--source", str(source),
                    "--warehouse", str(wh.root), "--media", str(clips)],
                   check=True, cwd=PROJECT_ROOT, env=env, capture_output=True)
    done = subprocess.run(offline([sys.executable, "-m", "jobs.run_nightly", "--warehouse", str(wh.root),
                                   "--run-date", RUN_DATE, "--top-n", str(TOP_N), "--epochs", "2"]),
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    counters = json.loads(done.stdout.strip().splitlines()[-1])
    assert counters["videos_decoded"] == len(CLIPS)
    assert counters["videos_quarantined"] == 0

    features = read_table(wh.video_features).to_pandas().set_index("video_id")
    assert set(features.index[features["has_video"]]) == set(CLIPS)
    for item in CLIPS:
        clip = clips / f"{item}{Path(CLIPS[item]).suffix}"
        assert features.at[item, "uri"] == f"microlens/{clip.name}"
        assert features.at[item, "content_sha256"] == hashlib.sha256(clip.read_bytes()).hexdigest()
        assert features.at[item, "duration_s"] > 0
    assert features["has_text"].all()

    users = N_USERS + len(CLIPS)
    assert counters["users_published"] == users and counters["rows_published"] == users * TOP_N
    check_serving_table(wh, RUN_DATE, TOP_N)
