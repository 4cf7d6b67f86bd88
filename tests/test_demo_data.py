"""The demo landing zone: real decodable clips, consistent catalog and interactions, taste, determinism."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from jobs.datasets import make_demo_data

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
                                reason="ffmpeg/ffprobe not installed")  # fmt: skip

RUN_DATE = "2026-11-20"
SMALL = ["--videos", "40", "--users", "12", "--clip-seconds", "1", "--run-date", RUN_DATE, "--workers", "4"]
EVENTS = {"view", "like", "complete", "share", "skip"}


def _generate(warehouse: Path, seed: int) -> Path:
    assert make_demo_data.main(["--warehouse", str(warehouse), "--seed", str(seed), *SMALL]) == 0
    return warehouse / "landing"


def _utc(text: str) -> datetime:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", text), text
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def _read(landing: Path) -> tuple[list[dict], list[dict], dict]:
    catalog = [json.loads(line) for line in (landing / "catalog" / "catalog.jsonl").read_text().splitlines()]
    with open(landing / "interactions" / "interactions.csv", newline="") as handle:
        interactions = list(csv.DictReader(handle))
    truth = json.loads((landing / "demo_truth.json").read_text())
    return catalog, interactions, truth


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _generate(tmp_path_factory.mktemp("demo") / "warehouse", seed=7)


def test_clips_exist_and_decode_as_h264_and_aac(landing: Path) -> None:
    catalog, _, truth = _read(landing)
    with_media = [row for row in catalog if row["uri"]]
    assert 0 < len(with_media) < len(catalog)  # some videos are text-only on purpose
    for row in with_media:
        path = landing / "media" / row["uri"]
        assert row["uri"] == f"{truth['videos'][row['video_id']]['genre']}/{row['video_id']}.mp4"
        probe = subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,codec_type,width,height:format=duration",
             "-of", "json", str(path)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        info = json.loads(probe.stdout)
        codecs = {s["codec_type"]: s["codec_name"] for s in info["streams"]}
        assert codecs == {"video": "h264", "audio": "aac"}
        assert abs(float(info["format"]["duration"]) - 1.0) < 0.2
    # Decoding one clip completely must not raise a single error.
    decode = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(landing / "media" / with_media[0]["uri"]), "-f", "null", "-"],
        capture_output=True, text=True, check=False,
    )
    assert decode.returncode == 0 and decode.stderr == ""


def test_catalog_rows_follow_the_contract(landing: Path) -> None:
    catalog, _, truth = _read(landing)
    ids = [row["video_id"] for row in catalog]
    assert len(ids) == 40 and len(set(ids)) == 40
    assert all(re.fullmatch(r"v\d{4}", video_id) for video_id in ids)
    assert set(truth["videos"]) == set(ids)
    assert 6 <= len({v["genre"] for v in truth["videos"].values()}) <= 8
    for row in catalog:
        assert set(row) == {"video_id", "uri", "title", "description", "tags", "published_at", "updated_at"}
        assert row["title"] and row["description"]
        assert isinstance(row["tags"], list) and all(isinstance(tag, str) for tag in row["tags"]) and row["tags"]
        assert _utc(row["updated_at"]) >= _utc(row["published_at"])


def test_cold_start_videos_are_new_and_have_no_interactions(landing: Path) -> None:
    catalog, interactions, truth = _read(landing)
    run_day = datetime.fromisoformat(RUN_DATE).date()
    new = {row["video_id"] for row in catalog if _utc(row["published_at"]).date() == run_day}
    assert new and new == {v for v, info in truth["videos"].items() if info["cold_start"]}
    assert not new & {row["video_id"] for row in interactions}


def test_interactions_are_consistent(landing: Path) -> None:
    catalog, interactions, _ = _read(landing)
    header = (landing / "interactions" / "interactions.csv").read_text().splitlines()[0]
    assert header == "user_id,video_id,ts,event,watch_seconds"
    published = {row["video_id"]: _utc(row["published_at"]) for row in catalog}
    run_start = datetime(2026, 11, 20, tzinfo=timezone.utc)
    by_user: dict[str, list[dict]] = defaultdict(list)
    for row in interactions:
        by_user[row["user_id"]].append(row)
        assert row["video_id"] in published
        ts = _utc(row["ts"])
        assert run_start - timedelta(days=60) <= ts < run_start
        assert ts > published[row["video_id"]]
        assert row["event"] in EVENTS
        watched = float(row["watch_seconds"])
        assert 0 < watched <= 1.0
        if row["event"] in {"complete", "share"}:
            assert watched == 1.0
        if row["event"] == "skip":
            assert watched <= 0.25
    assert sorted(by_user) == [f"u{i:03d}" for i in range(1, 13)]
    for rows in by_user.values():
        times = [_utc(row["ts"]) for row in rows]
        assert all(a < b for a, b in zip(times, times[1:]))
        videos = [row["video_id"] for row in rows]
        assert len(videos) == len(set(videos))


def test_users_concentrate_on_their_favourite_genres(landing: Path) -> None:
    _, interactions, truth = _read(landing)
    in_taste = [truth["videos"][r["video_id"]]["genre"] in truth["users"][r["user_id"]]["favourite_genres"]
                for r in interactions]  # fmt: skip
    assert sum(in_taste) / len(in_taste) > 0.6
    # Random choice of genre would put about 1.5 of 8 genres in taste: < 0.25.
    skips = [r["event"] == "skip" for r in interactions]
    skip_in = sum(s for s, t in zip(skips, in_taste) if t) / max(1, sum(in_taste))
    skip_out = sum(s for s, t in zip(skips, in_taste) if not t) / max(1, len(in_taste) - sum(in_taste))
    assert skip_out > skip_in
    for user in truth["users"].values():
        assert 1 <= len(user["favourite_genres"]) <= 2


def test_same_seed_gives_the_same_bytes_and_another_seed_differs(landing: Path, tmp_path: Path) -> None:
    again = _generate(tmp_path / "again", seed=7)
    for name in ("catalog/catalog.jsonl", "interactions/interactions.csv", "demo_truth.json"):
        assert (again / name).read_bytes() == (landing / name).read_bytes(), name
    clips = sorted(p.relative_to(landing) for p in (landing / "media").rglob("*.mp4"))
    assert clips == sorted(p.relative_to(again) for p in (again / "media").rglob("*.mp4"))
    assert all((again / clip).read_bytes() == (landing / clip).read_bytes() for clip in clips)

    other = _generate(tmp_path / "other", seed=8)
    for name in ("catalog/catalog.jsonl", "interactions/interactions.csv"):
        assert (other / name).read_bytes() != (landing / name).read_bytes(), name


def test_rerun_reuses_clips_and_rewrites_the_same_files(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["--warehouse", str(tmp_path), "--videos", "10", "--users", "3", "--clip-seconds", "1"]
    assert make_demo_data.main(args) == 0
    landing = tmp_path / "landing"
    first = {p: p.read_bytes() for p in landing.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert make_demo_data.main(args) == 0
    summary = capsys.readouterr().out.strip().splitlines()
    assert len(summary) == 1 and "clips_rendered=0" in summary[0]
    assert {p: p.read_bytes() for p in landing.rglob("*") if p.is_file()} == first


def test_the_ffmpeg_binary_is_the_one_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["--warehouse", str(tmp_path), "--videos", "6", "--users", "2", "--clip-seconds", "1"]
    assert make_demo_data.main([*args, "--ffmpeg", str(tmp_path / "no-such-ffmpeg")]) == 2
    assert "ffmpeg not found" in capsys.readouterr().err
    assert not (tmp_path / "landing").exists()
    assert make_demo_data.main([*args, "--ffmpeg", shutil.which("ffmpeg")]) == 0
    assert list((tmp_path / "landing" / "media").rglob("*.mp4"))
