"""The feature job over one batch of good and broken media: each broken file ends as a quarantine
row with its reason code, every other video of the batch gets complete features, and a second run
decodes nothing."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from jobs import config
from jobs.extract_features import extract
from jobs.ingest import ingest
from jobs.tables import read_table
from tests.test_features import cut_in_half, make_clip

pytestmark = pytest.mark.spark
RUN_DATE = "2026-11-20"
SMALL = "testsrc2=size=64x48:rate=10"


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> tuple[config.Warehouse, dict[str, str]]:
    root = tmp_path_factory.mktemp("batch")
    wh = config.Warehouse.at(root / "wh")
    media = wh.landing_media
    media.mkdir(parents=True)
    outside = make_clip(root / "outside.mp4", video=SMALL, seconds=1)   # readable, but not in a media root
    uris = {
        "good_h264": make_clip(media / "good.mp4", video=SMALL, seconds=1).name,
        "good_webm": make_clip(media / "good.webm", video=SMALL, seconds=1).name,   # VP9 + Opus
        "good_hevc": make_clip(media / "good_hevc.mp4", video=SMALL, seconds=1,
                               extra=("-c:v", "libx265", "-x265-params", "log-level=error")).name,
        "long": make_clip(media / "long.mp4", video=SMALL, seconds=4).name,          # over the 2 s cap
        "missing": "nowhere.mp4",
        "empty": "empty.mp4",
        "truncated": "truncated.mp4",
        "not_media": "notes.mp4",
        "audio_only": make_clip(media / "audio.m4a", video=None, seconds=1).name,
        "huge_frame": make_clip(media / "huge.mp4", video="testsrc2=size=320x240:rate=10", seconds=1).name,
        "dotdot": "../../outside.mp4",
        "absolute_outside": str(outside),
        "symlink_outside": "link.mp4",
        "hls": "list.m3u8",
        "concat": "list.ffconcat",
        "no_uri": "",
    }
    (media / "empty.mp4").write_bytes(b"")
    cut_in_half(make_clip(root / "whole.mp4", video=SMALL, seconds=3), media / "truncated.mp4")
    (media / "notes.mp4").write_text("this is not a video\n" * 50)
    os.symlink(outside, media / "link.mp4")
    (media / "list.m3u8").write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\n{outside}\n#EXT-X-ENDLIST\n")
    (media / "list.ffconcat").write_text(f"ffconcat version 1.0\nfile '{outside}'\n")

    wh.landing_catalog.mkdir(parents=True)
    wh.landing_interactions.mkdir(parents=True)
    pd.DataFrame({"video_id": list(uris), "uri": list(uris.values()),
                  "title": [f"clip {name}" for name in uris]}).to_csv(wh.landing_catalog / "c.csv", index=False)
    pd.DataFrame({"user_id": "u1", "video_id": list(uris), "ts": "2026-11-01T00:00:00Z"}).to_csv(
        wh.landing_interactions / "i.csv", index=False)
    return wh, uris


LIMITS = replace(config.DecodeLimits(), max_duration_s=2.0, max_pixels=64 * 48 * 4)
EXPECTED_REASONS = {
    "missing": "missing", "empty": "empty", "truncated": "truncated", "not_media": "not_media",
    "audio_only": "no_video_stream", "huge_frame": "frame_too_large", "dotdot": "outside_media_roots",
    "absolute_outside": "outside_media_roots", "symlink_outside": "outside_media_roots",
    "hls": "unsafe_container", "concat": "unsafe_container",
}


def test_broken_media_is_quarantined_with_its_reason_and_the_rest_completes(spark, batch):
    wh, uris = batch
    ingest(spark, wh, RUN_DATE)
    counters = extract(spark, wh, RUN_DATE, limits=LIMITS)

    quarantine = read_table(wh.media_quarantine / RUN_DATE).to_pandas()
    assert dict(zip(quarantine["video_id"], quarantine["reason"])) == EXPECTED_REASONS
    assert quarantine["detail"].str.len().gt(0).all()
    assert (quarantine["run_date"].astype(str) == RUN_DATE).all()

    features = read_table(wh.video_features).to_pandas().set_index("video_id")
    assert features["has_text"].all()                       # quarantined videos keep their text
    complete = features.loc[["good_h264", "good_webm", "good_hevc", "long"]]
    assert complete["has_video"].all() and complete["has_audio"].all()
    assert complete["visual"].map(len).eq(24).all() and complete["audio"].map(len).eq(223).all()
    assert complete["content_sha256"].str.len().eq(64).all()
    assert features.loc["good_hevc", "vcodec"] == "hevc"
    assert features.loc["long", "truncated_by_cap"] and features.loc["long", "duration_s"] >= 3.5
    assert not features.loc["no_uri", "has_video"] and pd.isna(features.loc["no_uri", "content_sha256"])
    assert counters["videos_decoded"] == 4
    assert counters["videos_quarantined"] == len(EXPECTED_REASONS)


def test_second_run_decodes_nothing_and_repeats_the_verdicts(spark, batch):
    wh, _ = batch
    before = read_table(wh.video_features).to_pandas().set_index("video_id").sort_index()
    counters = extract(spark, wh, "2026-11-21", limits=LIMITS)
    assert counters["videos_decoded"] == 0
    # Every file inside the roots whose bytes could be hashed: the 4 good ones, and truncated,
    # not_media, audio_only, huge_frame, hls and concat, whose verdicts are carried over.
    assert counters["videos_skipped"] == 4 + 6
    quarantine = read_table(wh.media_quarantine / "2026-11-21").to_pandas()
    assert dict(zip(quarantine["video_id"], quarantine["reason"])) == EXPECTED_REASONS
    after = read_table(wh.video_features).to_pandas().set_index("video_id").sort_index()
    assert after["content_sha256"].equals(before["content_sha256"])
    as_lists = lambda column: column.map(lambda v: None if v is None else list(v))  # noqa: E731
    assert as_lists(after["visual"]).equals(as_lists(before["visual"]))


def test_media_size_bins_balance_bytes_across_partitions(tmp_path):
    from jobs.extract_features import media_size_bins

    sizes = {"a": 900, "b": 500, "c": 400, "d": 300, "e": 200, "f": 100}
    for name, nbytes in sizes.items():
        (tmp_path / f"{name}.mp4").write_bytes(b"x" * nbytes)
    videos = pd.DataFrame({"video_id": [*sizes, "nomedia"], "uri": [f"{n}.mp4" for n in sizes] + [None]})
    bins = media_size_bins(videos, [tmp_path], partitions=2)
    load = bins.assign(size=bins["video_id"].map(sizes).fillna(0)).groupby("media_bin")["size"].sum()
    assert sorted(load) == [1200, 1200]
    assert set(bins["video_id"]) == set(videos["video_id"])
