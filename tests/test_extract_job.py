"""The feature job over one batch of good and broken media: each broken file ends as a quarantine
row with its reason code, every other video of the batch gets complete features, and a second run
decodes nothing. Then the optional frame encoder: rows written before it existed stay valid, a new
or changed encoder file extracts again and fills `frame_embedding`, a bad file is one StageError."""

from __future__ import annotations

import hashlib
import os
from collections import namedtuple

import numpy as np
import pandas as pd
import pytest

from jobs.plumbing import config
from features.decode import decode
from features.extract import DEFAULT_SAMPLING, EXTRACTOR_VERSION, FRAME_SIZE, sampling
from jobs.extract_features import _media_row, extract
from jobs.plumbing.frame_encoder import check_frame_encoder
from jobs.ingest import ingest
from jobs.plumbing.stage import StageError
from jobs.plumbing.tables import read_table, write_arrow_table
from tests.test_features import channel_mean_encoder, cut_in_half, make_clip, script

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


LIMITS = config.decode_limits(max_duration_s=2.0, max_pixels=64 * 48 * 4)
# A catalog row as `_media_row` reads it: the previous table's verdict beside the video.
Row = namedtuple("Row", "video_id uri prev_content_sha256 prev_extractor_version prev_sampling "
                        "prev_frame_encoder_sha256 prev_quarantine_reason")
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


# ---- the optional frame encoder ----------------------------------------------------------------

GOOD = ["good_h264", "good_webm", "good_hevc", "long"]


def test_rows_from_before_the_frame_encoder_stay_valid(spark, batch):
    wh, _ = batch
    old = read_table(wh.video_features)
    write_arrow_table(old.drop_columns(["frame_embedding", "frame_encoder_sha256"]), wh.video_features,
                      "2026-11-22")
    counters = extract(spark, wh, "2026-11-22", limits=LIMITS, frame_encoder=None)
    assert counters["videos_decoded"] == 0 and counters["videos_skipped"] == 4 + 6
    assert counters["frame_encoder"] is None
    features = read_table(wh.video_features).to_pandas()
    assert features["frame_embedding"].isna().all() and features["frame_encoder_sha256"].isna().all()


def test_a_new_or_changed_frame_encoder_extracts_again(spark, batch, tmp_path):
    wh, uris = batch
    encoder_file = tmp_path / "encoder.pt"
    channel_mean_encoder().save(str(encoder_file))
    sha = hashlib.sha256(encoder_file.read_bytes()).hexdigest()

    counters = extract(spark, wh, "2026-11-23", limits=LIMITS, frame_encoder=str(encoder_file))
    assert counters["videos_decoded"] == 4 and counters["videos_skipped"] == 0
    assert counters["frame_encoder"] == {"path": str(encoder_file), "sha256": sha, "dim": 3}
    features = read_table(wh.video_features).to_pandas().set_index("video_id")
    for video_id in GOOD:
        frames = decode(wh.landing_media / uris[video_id], size=FRAME_SIZE, limits=LIMITS).frames
        expected = frames.reshape(-1, 3).mean(axis=0) / 255.0  # channel means of the sampled frames
        assert np.allclose(features.loc[video_id, "frame_embedding"], expected, rtol=0, atol=1e-6), video_id
    others = features.drop(index=GOOD)
    assert others["frame_embedding"].isna().all()          # quarantined or without media
    hashed = features["content_sha256"].notna()
    assert (features.loc[hashed, "frame_encoder_sha256"] == sha).all()
    quarantine = read_table(wh.media_quarantine / "2026-11-23").to_pandas()
    assert dict(zip(quarantine["video_id"], quarantine["reason"])) == EXPECTED_REASONS

    assert extract(spark, wh, "2026-11-24", limits=LIMITS,
                   frame_encoder=str(encoder_file))["videos_decoded"] == 0

    # Another module at the same path: the file's hash, not its name, decides.
    import torch

    class ChannelMax(torch.nn.Module):
        def forward(self, frames: torch.Tensor) -> torch.Tensor:
            return frames.amax(dim=(2, 3))

    script(ChannelMax()).save(str(encoder_file))
    counters = extract(spark, wh, "2026-11-25", limits=LIMITS, frame_encoder=str(encoder_file))
    assert counters["videos_decoded"] == 4
    features = read_table(wh.video_features).to_pandas().set_index("video_id")
    assert np.allclose(features.loc["good_h264", "frame_embedding"],
                       decode(wh.landing_media / uris["good_h264"], size=FRAME_SIZE, limits=LIMITS)
                       .frames.reshape(-1, 3).max(axis=0) / 255.0, rtol=0, atol=1e-6)


def test_frame_encoder_problems_stop_the_stage_naming_the_file(spark, batch, tmp_path):
    wh, _ = batch
    missing = tmp_path / "nowhere.pt"
    with pytest.raises(StageError, match=f"frame encoder {missing} does not exist"):
        extract(spark, wh, "2026-11-26", limits=LIMITS, frame_encoder=str(missing))

    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a TorchScript archive" * 10)
    with pytest.raises(StageError, match=f"frame encoder {garbage} cannot be loaded"):
        check_frame_encoder(garbage, "extract_features")

    import torch

    class PooledAlready(torch.nn.Module):
        def forward(self, frames: torch.Tensor) -> torch.Tensor:
            return frames.mean(dim=(0, 2, 3))

    pooled = tmp_path / "pooled.pt"
    script(PooledAlready()).save(str(pooled))
    with pytest.raises(StageError, match=f"frame encoder {pooled} fails on float"):
        check_frame_encoder(pooled, "extract_features")


def test_reuse_decision_takes_the_frame_encoder_into_account(tmp_path):
    from features.decode import file_sha256

    clip = make_clip(tmp_path / "clip.mp4", video=SMALL, seconds=1)
    encoder_file = tmp_path / "encoder.pt"
    channel_mean_encoder().save(str(encoder_file))
    spec = check_frame_encoder(encoder_file, "extract_features")

    def status(prev_encoder, encoder) -> str:
        row = Row("v", clip.name, file_sha256(clip), EXTRACTOR_VERSION, sampling(1.0, LIMITS), prev_encoder, None)
        return _media_row(row, [tmp_path], LIMITS, 1.0, False, encoder)["media_status"]

    assert status(None, None) == "reused"
    assert status(float("nan"), None) == "reused"    # a table from before the encoder (pandas NaN)
    assert status(spec.sha256, spec) == "reused"
    assert status(None, spec) == "decoded"           # an encoder is added
    assert status(spec.sha256, None) == "decoded"    # ... or removed
    assert status("0" * 64, spec) == "decoded"       # ... or changed


def test_reuse_decision_takes_the_sampling_into_account(tmp_path):
    from features.decode import file_sha256

    clip = make_clip(tmp_path / "clip.mp4", video=SMALL, seconds=1)
    defaults = config.decode_limits(max_duration_s=600.0, max_frames=64)

    def status(prev_sampling, fps: float, limits) -> str:
        row = Row("v", clip.name, file_sha256(clip), EXTRACTOR_VERSION, prev_sampling, None, None)
        return _media_row(row, [tmp_path], limits, fps, False)["media_status"]

    assert status(sampling(1.0, defaults), 1.0, defaults) == "reused"
    assert DEFAULT_SAMPLING == sampling(1.0, defaults)
    assert status(None, 1.0, defaults) == "reused"        # a table from before: sampled with the defaults
    assert status(float("nan"), 1.0, defaults) == "reused"
    assert status(None, 2.0, defaults) == "decoded"       # more frames a second
    assert status(sampling(1.0, defaults), 0.5, defaults) == "decoded"
    assert status(sampling(1.0, defaults), 1.0, config.decode_limits(max_duration_s=30.0, max_frames=64)) == "decoded"
    assert status(sampling(1.0, defaults), 1.0, config.decode_limits(max_duration_s=600.0, max_frames=16)) == "decoded"
    # The timeout decides only whether a decode finishes, not what it samples.
    assert status(sampling(1.0, defaults), 1.0, config.decode_limits(max_duration_s=600.0, max_frames=64,
                                                                     timeout_s=5.0)) == "reused"


def test_an_upload_cut_short_becomes_a_truncated_quarantine_row(tmp_path):
    # The index is at the front, so the first third decodes: only the decode can tell it is cut.
    whole = make_clip(tmp_path / "whole.mp4", video=SMALL, seconds=12, extra=("-movflags", "+faststart"))
    data = whole.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 3])
    row = _media_row(Row("v", "cut.mp4", None, None, None, None, None), [tmp_path], config.decode_limits(),
                     1.0, False)
    assert (row["media_status"], row["quarantine_reason"]) == ("quarantined", "truncated")
    assert " of a declared 12.00 s" in row["quarantine_detail"]  # "decoded 4.00 s of a declared ..."
    assert row["content_sha256"] == hashlib.sha256(data[: len(data) // 3]).hexdigest()
    assert not row["has_video"] and "visual" not in row


def test_media_size_bins_balance_media_bytes_then_videos_across_partitions(tmp_path):
    from jobs.extract_features import media_size_bins

    sizes = {"a": 900, "b": 500, "c": 400, "d": 300, "e": 200, "f": 100}
    for name, nbytes in sizes.items():
        (tmp_path / f"{name}.mp4").write_bytes(b"x" * nbytes)
    videos = pd.DataFrame({"video_id": [*sizes, "nomedia"], "uri": [f"{n}.mp4" for n in sizes] + [None]})
    text_only = [f"t{n}" for n in range(11)]   # text to embed, no media (or media the driver cannot see)
    videos = pd.concat([videos, pd.DataFrame({"video_id": text_only, "uri": ["gone.mp4"] + [None] * 10})])
    bins = media_size_bins(videos, [tmp_path], partitions=2)
    load = bins.assign(size=bins["video_id"].map(sizes).fillna(0)).groupby("media_bin")["size"].sum()
    assert sorted(load) == [1200, 1200]
    assert sorted(bins.groupby("media_bin").size()) == [9, 9]   # the text-only videos even out the counts
    assert sorted(bins["video_id"]) == sorted(videos["video_id"])
