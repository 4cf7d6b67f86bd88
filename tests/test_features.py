"""Tests of features/: decoding (hostile and broken files included), visual, audio, text features.

Clips are generated with ffmpeg's lavfi sources into tmp dirs; the real clips in
../shared/data/media are decoded too when that directory exists. Run:
    .venv/bin/python -m pytest tests/test_features.py -q
"""

from __future__ import annotations

import hashlib
import math
import os
import pickle
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from features import decode as decode_module
from features.audio import (AUDIO_DIM, AUDIO_NAMES, MFCC_SEQUENCE_SLICE, audio_features,
                            mfcc_sequence)
from features.decode import DecodeLimits, MediaError, decode, file_sha256, probe, resolve_media
from features.extract import EXTRACTOR_VERSION, extract_media_features
from features.frame_embedding import FrameEncoderError, frame_embedding
from features.text import TEXT_DIM, TextEmbedder, video_text
from features.visual import VISUAL_DIM, VISUAL_NAMES, thumbnail, visual_features

SHARED_MEDIA = Path(__file__).resolve().parents[2] / "shared" / "data" / "media"
TESTSRC = "testsrc2=size=160x120:rate=25"
TONE = "sine=frequency=440:sample_rate=44100"


def make_clip(path: Path, video: str | None = TESTSRC, audio: str | None = TONE,
              seconds: float = 3.0, extra: tuple[str, ...] = ()) -> Path:
    """Encode lavfi sources into `path` (codec from the extension's default muxer settings)."""
    args = ["ffmpeg", "-nostdin", "-v", "error", "-y"]
    for source in (video, audio):
        if source:
            args += ["-f", "lavfi", "-i", source]
    args += ["-t", str(seconds)]
    if video:
        args += ["-pix_fmt", "yuv420p"]
    subprocess.run([*args, *extra, str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clips")
    return {
        "testsrc": make_clip(d / "testsrc.mp4"),
        "red": make_clip(d / "red.mp4", video="color=c=red:size=64x48:rate=25", audio=None),
        "black": make_clip(d / "black.mp4", video="color=c=black:size=64x48:rate=25", audio=None),
        "silent": make_clip(d / "silent.mp4", audio="anullsrc=r=44100:cl=mono"),
        "no_audio": make_clip(d / "no_audio.mp4", audio=None),
        "audio_only": make_clip(d / "audio_only.m4a", video=None),
        # 6 s with the index (moov) at the end, ffmpeg's default, and at the front (faststart)
        "long": make_clip(d / "long.mp4", seconds=6),
        "faststart": make_clip(d / "faststart.mp4", seconds=6, extra=("-movflags", "+faststart")),
    }


def cut_in_half(src: Path, dst: Path) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst


# ---- decode ------------------------------------------------------------------------------------

def test_decode_three_second_clip(clips):
    d = decode(clips["testsrc"], fps=1.0, size=(112, 112), sample_rate=22050)
    assert d.frames.shape == (3, 112, 112, 3) and d.frames.dtype == np.uint8
    assert d.timestamps_ms.tolist() == [0, 1000, 2000] and d.timestamps_ms.dtype == np.int64
    assert d.audio is not None and d.audio.dtype == np.float32 and d.sample_rate == 22050
    assert abs(len(d.audio) - 3 * 22050) < 0.03 * 3 * 22050  # AAC adds priming samples
    m = d.meta
    assert (m.width, m.height, m.fps, m.vcodec, m.acodec) == (160, 120, 25.0, "h264", "aac")
    assert m.has_video and m.has_audio and not m.truncated_by_cap
    assert m.duration_s == pytest.approx(3.0, abs=0.05)


def test_decode_size_is_width_height_and_fps_sets_timestamps(clips):
    d = decode(clips["testsrc"], fps=2.0, size=(64, 48))
    assert d.frames.shape == (6, 48, 64, 3)
    assert d.timestamps_ms.tolist() == [0, 500, 1000, 1500, 2000, 2500]


def test_no_audio_stream_gives_none(clips):
    d = decode(clips["no_audio"])
    assert d.audio is None and not d.meta.has_audio and d.meta.acodec is None
    features = extract_media_features(clips["no_audio"], DecodeLimits())
    assert features["audio"] is None and features["has_audio"] is False
    assert len(features["visual"]) == VISUAL_DIM


def test_audio_only_file_is_no_video_stream(clips):
    with pytest.raises(MediaError) as err:
        decode(clips["audio_only"])
    assert err.value.reason == "no_video_stream"


def test_cover_art_is_not_a_video_stream(tmp_path):
    cover = make_clip(tmp_path / "cover.png", audio=None, seconds=0.04, extra=("-frames:v", "1"))
    song = tmp_path / "song.mp3"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", TONE,
                    "-i", str(cover), "-t", "1", "-map", "0", "-map", "1", "-c:v", "mjpeg",
                    "-disposition:v", "attached_pic", str(song)], check=True)
    with pytest.raises(MediaError) as err:
        probe(song)
    assert err.value.reason == "no_video_stream"


def test_duration_cap_decodes_only_the_cap(clips):
    d = decode(clips["long"], fps=1.0, limits=DecodeLimits(max_duration_s=2.5))
    assert d.meta.truncated_by_cap is True
    assert d.meta.duration_s == pytest.approx(6.0, abs=0.05)  # the file's duration, not the cap's
    assert len(d.frames) == 3 and d.timestamps_ms.max() < 2500
    assert len(d.audio) <= 2.5 * 22050


def test_frame_cap(clips):
    d = decode(clips["long"], fps=4.0, limits=DecodeLimits(max_frames=5))
    assert len(d.frames) == 5 and d.timestamps_ms.tolist() == [0, 250, 500, 750, 1000]


def test_frame_size_cap(clips):
    with pytest.raises(MediaError) as err:
        decode(clips["testsrc"], limits=DecodeLimits(max_pixels=160 * 120 - 1))
    assert err.value.reason == "frame_too_large"


def test_timeout_kills_ffmpeg(clips, monkeypatch):
    # A stand-in for an ffmpeg that hangs on a hostile file: the decode must give up on time.
    hang = [sys.executable, "-c", "import time; time.sleep(60)"]
    monkeypatch.setattr(decode_module, "_decode_args", lambda *a, **k: hang)
    with pytest.raises(MediaError) as err:
        decode(clips["testsrc"], limits=DecodeLimits(timeout_s=1.0))
    assert err.value.reason == "timeout"


def test_index_at_end_cut_in_half_is_truncated(clips, tmp_path):
    # Without its moov box (written last) nothing can be decoded at all.
    half = cut_in_half(clips["long"], tmp_path / "half.mp4")
    with pytest.raises(MediaError) as err:
        decode(half)
    assert err.value.reason == "truncated"


def test_index_first_cut_in_half_is_truncated(clips, tmp_path):
    # The index survives and the first 3 s decode, but the header promises 6 s.
    half = cut_in_half(clips["faststart"], tmp_path / "half.mp4")
    with pytest.raises(MediaError) as err:
        decode(half, fps=1.0)
    assert err.value.reason == "truncated"
    assert re.match(r"decoded \d\.\d\d s of a declared 6\.00 s", err.value.detail)


def has_encoder(name: str) -> bool:
    listing = subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True,
                             text=True).stdout
    return any(line.split()[1:2] == [name] for line in listing.splitlines())


UPLOAD_CODECS = {
    "h264": ("-c:v", "libx264", "-preset", "ultrafast"),
    "hevc": ("-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error"),
}
MP4_LAYOUTS = {"index_first": ("-movflags", "+faststart"), "index_last": ()}  # last: the default


@pytest.mark.parametrize("layout", MP4_LAYOUTS)
@pytest.mark.parametrize("codec", UPLOAD_CODECS)
def test_upload_cut_to_its_first_third_is_truncated(tmp_path, codec, layout):
    """An interrupted upload: a 15 s MP4 of which only the first third arrived."""
    encoder = UPLOAD_CODECS[codec][1]
    if not has_encoder(encoder):
        pytest.skip(f"this ffmpeg has no {encoder}")
    whole = make_clip(tmp_path / "whole.mp4", seconds=15,
                      extra=(*UPLOAD_CODECS[codec], *MP4_LAYOUTS[layout]))
    d = decode(whole)  # the whole file is complete
    assert d.meta.vcodec == codec and d.meta.duration_s == pytest.approx(15.0, abs=0.05)
    assert len(d.frames) == 15 and abs(len(d.audio) - 15 * 22050) < 0.01 * 15 * 22050

    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(MediaError) as err:
        decode(cut)
    assert err.value.reason == "truncated"
    if layout == "index_last":
        # The index was still to come: nothing decodes, and no duration is left to name.
        assert err.value.detail.startswith("the MP4 index (moov) is missing")
        assert "duration unknown" in err.value.detail
        return
    m = re.fullmatch(r"decoded (\d+\.\d\d) s of a declared (\d+\.\d\d) s; ffmpeg: .*partial file",
                     err.value.detail)
    assert m, err.value.detail
    assert 3.5 <= float(m[1]) <= 6.0 and float(m[2]) == 15.0
    # Past the frame cap the audio alone measures how far the decode got: still a cut.
    with pytest.raises(MediaError) as err:
        decode(cut, limits=DecodeLimits(max_frames=3))
    assert err.value.reason == "truncated"
    # A cut before the duration cap is a cut; the detail says what was expected of the file.
    with pytest.raises(MediaError) as err:
        decode(cut, limits=DecodeLimits(max_duration_s=10.0))
    assert re.fullmatch(r"decoded \d\.\d\d s of the first 10\.00 s \(the duration cap\) of a "
                        r"declared 15\.00 s; ffmpeg: .*partial file", err.value.detail)


@pytest.mark.parametrize("video_s, audio_s", [(12, 4), (4, 12)])
def test_streams_of_different_lengths_are_not_a_cut(tmp_path, video_s, audio_s):
    # The header declares the longer stream; the decode reaches it through that stream.
    clip = tmp_path / "uneven.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i",
                    f"testsrc2=size=64x48:rate=10:duration={video_s}", "-f", "lavfi", "-i",
                    f"sine=sample_rate=22050:duration={audio_s}", "-pix_fmt", "yuv420p",
                    str(clip)], check=True)
    d = decode(clip)
    assert d.meta.duration_s == pytest.approx(12.0, abs=0.1)
    assert len(d.frames) == video_s
    assert len(d.audio) / 22050 == pytest.approx(audio_s, abs=0.1)
    # The frame cap stops the video at 3 s: the audio's own declared length is what it must reach.
    assert len(decode(clip, limits=DecodeLimits(max_frames=3)).frames) == 3


def test_text_file_named_mp4_is_not_media(tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("these are meeting notes, not a video\n" * 20)
    with pytest.raises(MediaError) as err:
        decode(fake)
    assert err.value.reason == "not_media"


def test_hls_playlist_is_refused_before_ffmpeg_runs(clips, tmp_path, monkeypatch):
    root = tmp_path / "media"
    root.mkdir()
    playlist = root / "trap.m3u8"
    # Points at a real, decodable video outside the media root.
    playlist.write_text("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:6\n"
                        f"#EXTINF:6.0,\n{clips['long']}\n#EXT-X-ENDLIST\n")
    path = resolve_media("trap.m3u8", [root])

    def no_subprocess(*args, **kwargs):
        raise AssertionError(f"ffmpeg/ffprobe must not run on a playlist: {args}")

    monkeypatch.setattr(decode_module.subprocess, "run", no_subprocess)
    monkeypatch.setattr(decode_module.subprocess, "Popen", no_subprocess)
    with pytest.raises(MediaError) as err:
        decode(path)
    assert err.value.reason == "unsafe_container"


@pytest.mark.parametrize("body", [
    "#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:6.0,\n{target}\n#EXT-X-ENDLIST\n",
    "ffconcat version 1.0\nfile '{target}'\n",
])
def test_demuxer_allow_list_refuses_playlists_even_unsniffed(clips, tmp_path, monkeypatch, body):
    # Second line of defence: with the byte sniffing switched off, ffprobe's -format_whitelist
    # must still refuse the hls/concat demuxers.
    disguised = tmp_path / "video.mp4"
    disguised.write_text(body.format(target=clips["long"]))
    monkeypatch.setattr(decode_module, "_looks_like_playlist", lambda head: False)
    with pytest.raises(MediaError) as err:
        probe(disguised)
    assert err.value.reason == "unsafe_container"


def test_decode_command_is_restricted(clips):
    limits = DecodeLimits()
    args = decode_module._decode_args(clips["testsrc"], 1.0, (112, 112), 22050, limits, 5)
    joined = " ".join(args)
    assert "-protocol_whitelist file" in joined
    assert f"-format_whitelist {decode_module.ALLOWED_DEMUXERS}" in joined
    assert f"-max_pixels {limits.max_pixels}" in joined
    assert "-t 600" in joined and "pipe:5" in joined and "[0:V:0]" in joined
    assert all(isinstance(a, str) for a in args)  # an argument list, never a shell line
    # Without audio ffmpeg stops at the frame cap; with audio the frames past it are counted.
    silent = " ".join(decode_module._decode_args(clips["testsrc"], 1.0, (112, 112), 22050,
                                                 limits, None))
    assert "-frames:v 64" in silent and "-frames:v" not in joined


def test_header_comes_from_the_decode_not_ffprobe(clips, monkeypatch):
    # One process per file: the decode's own log gives the header that ffprobe used to read.
    started = []
    real_popen = decode_module.subprocess.Popen

    def popen(args, *a, **k):
        started.append(args[0])
        return real_popen(args, *a, **k)

    monkeypatch.setattr(decode_module.subprocess, "Popen", popen)
    monkeypatch.setattr(decode_module.subprocess, "run", None)  # ffprobe ran through run()
    d = decode(clips["testsrc"])
    assert started == ["ffmpeg"]
    m = d.meta
    assert (m.format_name, m.width, m.height, m.fps) == ("mov,mp4,m4a,3gp,3g2,mj2", 160, 120, 25.0)
    assert (m.vcodec, m.acodec, m.video_index, m.audio_index) == ("h264", "aac", 0, 1)
    # A file without audio needs a second start: the first one's audio output had no stream.
    started.clear()
    assert decode(clips["no_audio"]).audio is None and started == ["ffmpeg", "ffmpeg"]


# ---- resolving catalog uris --------------------------------------------------------------------

def test_resolve_media_inside_roots(clips, tmp_path):
    root, other = tmp_path / "landing", tmp_path / "archive"
    (root / "sub").mkdir(parents=True)
    other.mkdir()
    (root / "a.mp4").write_bytes(clips["testsrc"].read_bytes())
    (other / "b.mp4").write_bytes(b"x")
    assert resolve_media("a.mp4", [root, other]) == (root / "a.mp4").resolve()
    assert resolve_media("sub/../a.mp4", [root, other]) == (root / "a.mp4").resolve()
    assert resolve_media(str(other / "b.mp4"), [root, other]) == (other / "b.mp4").resolve()
    assert resolve_media(f"file://{root / 'a.mp4'}", [root]) == (root / "a.mp4").resolve()


@pytest.mark.parametrize("uri", ["../../etc/passwd", "/etc/passwd", "sub/../../secret.mp4",
                                 "http://example.com/v.mp4", "file://host/etc/passwd"])
def test_resolve_media_refuses_outside(tmp_path, uri):
    root = tmp_path / "media"
    (root / "sub").mkdir(parents=True)
    (tmp_path / "secret.mp4").write_bytes(b"x")
    with pytest.raises(MediaError) as err:
        resolve_media(uri, [root])
    assert err.value.reason == "outside_media_roots"


def test_resolve_media_refuses_symlink_leading_outside(clips, tmp_path):
    root = tmp_path / "media"
    root.mkdir()
    (root / "innocent.mp4").symlink_to(clips["testsrc"])  # a real video, but outside the root
    with pytest.raises(MediaError) as err:
        resolve_media("innocent.mp4", [root])
    assert err.value.reason == "outside_media_roots"


def test_resolve_media_missing_empty_and_not_a_file(tmp_path):
    root = tmp_path / "media"
    (root / "dir.mp4").mkdir(parents=True)
    (root / "zero.mp4").touch()
    cases = {"nothing.mp4": "missing", "": "missing", "zero.mp4": "empty", "dir.mp4": "not_media"}
    for uri, reason in cases.items():
        with pytest.raises(MediaError) as err:
            resolve_media(uri, [root])
        assert err.value.reason == reason, uri


def test_media_error_survives_pickling():
    err = pickle.loads(pickle.dumps(MediaError("truncated", "cut at 50%")))
    assert (err.reason, err.detail) == ("truncated", "cut at 50%")
    assert str(err) == "truncated: cut at 50%"


def test_file_sha256_known_value(tmp_path):
    f = tmp_path / "abc.bin"
    f.write_bytes(b"abc")
    assert file_sha256(f) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * (1 << 20) + 7))  # several read chunks
    assert file_sha256(big) == hashlib.sha256(big.read_bytes()).hexdigest()


# ---- visual ------------------------------------------------------------------------------------

def named(vector: np.ndarray, names: tuple[str, ...]) -> dict[str, float]:
    return dict(zip(names, vector.tolist()))


def test_red_video_fills_the_red_hue_bin(clips):
    d = decode(clips["red"])
    assert d.frames[..., 0].mean() > 240 and d.frames[..., 1:].mean() < 15
    v = named(visual_features(d.frames), VISUAL_NAMES)
    hues = [v[f"hue_{i}"] for i in range(8)]
    assert int(np.argmax(hues)) == 0 and hues[0] > 0.95
    assert v["motion_mean"] == pytest.approx(0.0, abs=1e-3) and v["shot_change_rate"] == 0.0


def test_black_video_has_no_hue(clips):
    v = named(visual_features(decode(clips["black"]).frames), VISUAL_NAMES)
    assert sum(v[f"hue_{i}"] for i in range(8)) == 0.0
    assert v["value_0"] == pytest.approx(1.0) and v["brightness_mean"] < 0.1
    assert v["edge_density"] == 0.0 and v["colourfulness"] == pytest.approx(0.0, abs=1e-3)


def test_visual_features_exact_on_synthetic_frames():
    frames = np.zeros((8, 32, 32, 3), np.uint8)
    frames[:4, ..., 0] = 255  # 4 red frames, then 4 blue: exactly one cut in 8 s at 1 fps
    frames[4:, ..., 2] = 255
    v = named(visual_features(frames, fps=1.0), VISUAL_NAMES)
    assert v["shot_change_rate"] == pytest.approx(1 / 8)
    assert v["hue_0"] == pytest.approx(0.5)  # red
    assert v["hue_5"] == pytest.approx(0.5)  # blue: OpenCV hue 120, shifted 131.25 -> bin 5
    assert v["saturation_3"] == pytest.approx(1.0) and v["value_3"] == pytest.approx(1.0)
    assert v["motion_mean"] == pytest.approx((0.299 - 0.114) / 7, abs=2e-3)  # one grey jump
    assert visual_features(frames, fps=2.0)[VISUAL_NAMES.index("shot_change_rate")] == \
        pytest.approx(2 / 8)


def test_visual_features_on_moving_clip(clips):
    d = decode(clips["testsrc"])
    vector = visual_features(d.frames)
    assert vector.shape == (VISUAL_DIM,) == (len(VISUAL_NAMES),) and vector.dtype == np.float32
    v = named(vector, VISUAL_NAMES)
    assert v["motion_mean"] > 0.01 and v["edge_density"] > 0.01 and v["colourfulness"] > 0.1
    assert sum(v[f"saturation_{i}"] for i in range(4)) == pytest.approx(1.0, abs=1e-5)


def test_thumbnail_is_the_middle_frame():
    frames = np.stack([np.full((20, 30, 3), 10 * i, np.uint8) for i in range(5)])
    thumb = thumbnail(frames, side=16)
    assert thumb.shape == (16 * 16 * 3,) and thumb.dtype == np.float32
    assert np.allclose(thumb, 20 / 255)


def test_visual_refuses_zero_frames():
    empty = np.zeros((0, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError):
        visual_features(empty)
    with pytest.raises(ValueError):
        thumbnail(empty)


# ---- audio -------------------------------------------------------------------------------------

def tone(seconds: float, sr: int = 22050, amplitude: float = 0.125) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amplitude * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def test_tone_and_silence_from_decoded_clips(clips):
    loud = named(audio_features(decode(clips["testsrc"]).audio, 22050), AUDIO_NAMES)
    quiet = named(audio_features(decode(clips["silent"]).audio, 22050), AUDIO_NAMES)
    assert loud["silence_ratio"] < 0.1
    assert quiet["silence_ratio"] == 1.0
    # lavfi's sine has amplitude 1/8: RMS 0.125/sqrt(2) = -21.1 dBFS
    assert loud["loudness_db_mean"] == pytest.approx(-21.1, abs=1.5)
    assert quiet["loudness_db_mean"] < -90


def test_audio_features_on_known_signal():
    v = named(audio_features(tone(2.0), 22050), AUDIO_NAMES)
    assert v["loudness_db_mean"] == pytest.approx(20 * math.log10(0.125 / math.sqrt(2)), abs=0.5)
    assert v["silence_ratio"] == 0.0
    # the same tone switched on and off every 0.25 s makes the MFCCs move far more than steady
    pulsed = tone(2.0) * (np.arange(2 * 22050) // (22050 // 4) % 2 == 0)
    p = named(audio_features(pulsed.astype(np.float32), 22050), AUDIO_NAMES)
    assert p["mfcc_delta_std_0"] > 3 * v["mfcc_delta_std_0"]
    # half the time is silent, less the 2048-sample windows across an edge: (5512-2048)/5512/2
    assert p["silence_ratio"] == pytest.approx(0.31, abs=0.05)


@pytest.mark.parametrize("n_samples", [0, 1, 500, 2205])
def test_very_short_audio_still_gives_finite_features(n_samples):
    vector = audio_features(tone(1.0)[:n_samples], 22050)
    assert vector.shape == (AUDIO_DIM,) and vector.dtype == np.float32
    assert np.isfinite(vector).all()


def test_mfcc_sequence_shape_and_place_in_vector():
    audio = tone(3.0)
    audio[len(audio) // 2:] = 0  # loud first half, silent second half
    seq = mfcc_sequence(audio, 22050, steps=8)
    assert seq.shape == (8, 20) and seq.dtype == np.float32
    assert seq[0, 0] > seq[-1, 0] + 30  # energy (c0) falls where the sound stops
    vector = audio_features(audio, 22050)
    assert np.allclose(vector[MFCC_SEQUENCE_SLICE].reshape(8, 20), seq)
    assert AUDIO_NAMES[MFCC_SEQUENCE_SLICE.start] == "mfcc_sequence_0_0"


# ---- extract -----------------------------------------------------------------------------------

def test_extract_media_features_row(clips):
    row = extract_media_features(clips["testsrc"], DecodeLimits(), fps=1.0)
    assert set(row) == {"duration_s", "fps", "width", "height", "vcodec", "acodec", "has_video",
                        "has_audio", "truncated_by_cap", "visual", "thumbnail", "audio",
                        "frame_embedding"}
    assert (row["width"], row["height"], row["vcodec"], row["acodec"]) == (160, 120, "h264", "aac")
    assert row["has_video"] is True and row["has_audio"] is True
    assert len(row["visual"]) == VISUAL_DIM and len(row["thumbnail"]) == 16 * 16 * 3
    assert len(row["audio"]) == AUDIO_DIM and all(isinstance(x, float) for x in row["audio"])
    assert isinstance(EXTRACTOR_VERSION, str) and EXTRACTOR_VERSION
    assert row["frame_embedding"] is None  # no encoder given


def test_real_media_clips():
    manifest = SHARED_MEDIA / "MANIFEST.tsv"
    if not manifest.is_file():
        pytest.skip(f"no shared media at {SHARED_MEDIA}")
    lines = manifest.read_text().splitlines()
    header = lines[0].split("\t")
    rows = [dict(zip(header, line.split("\t"))) for line in lines[1:] if line.strip()]
    assert rows
    for row in rows:
        path = resolve_media(row["file"], [SHARED_MEDIA])
        f = extract_media_features(path, DecodeLimits())
        label = row["file"]
        assert f["has_video"] and f["has_audio"] and f["audio"] is not None, label
        assert (f["width"], f["height"]) == (int(row["width"]), int(row["height"])), label
        assert (f["vcodec"], f["acodec"]) == (row["vcodec"], row["acodec"]), label
        assert np.isfinite(f["visual"]).all() and np.isfinite(f["audio"]).all(), label
        assert np.isfinite(f["thumbnail"]).all(), label
        assert len(f["visual"]) == VISUAL_DIM and len(f["audio"]) == AUDIO_DIM, label
        expected = float(row["duration_s"]) if row["duration_s"] else None
        if expected:
            assert f["duration_s"] == pytest.approx(expected, abs=0.05), label
        else:  # no duration in the header (moviepy/no_duration.webm): measured from the decode
            assert f["duration_s"] > 0, label


# ---- frame encoder ---------------------------------------------------------------------------

def channel_mean_encoder():
    """A tiny TorchScript frame encoder: each frame's mean R, G and B, so (n, 3, H, W) -> (n, 3)."""
    import torch

    class ChannelMean(torch.nn.Module):
        def forward(self, frames: torch.Tensor) -> torch.Tensor:
            return frames.mean(dim=(2, 3))

    return script(ChannelMean())


def script(module):
    """torch.jit.script, quietly: torch 2.13 deprecates it, but TorchScript files are what
    deployments hand the feature job (and what torch.jit.load reads)."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.script(module)


def white_then_black_clip(path: Path) -> Path:
    """5 s: white for 2.5 s, then black; sampled at 1 fps that is 3 white and 2 black frames."""
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "color=c=white:size=64x48:rate=25:d=2.5[a];color=c=black:size=64x48:rate=25:d=2.5[b];"
                    "[a][b]concat=n=2:v=1:a=0", "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


def test_frame_encoder_pools_channel_means_exactly():
    frames = np.zeros((2, 4, 6, 3), dtype=np.uint8)
    frames[0] = (255, 0, 51)
    frames[1] = (0, 255, 102)
    frames.setflags(write=False)  # decoded frames can be read-only; the encoder must cope
    embedding = frame_embedding(frames, channel_mean_encoder())
    assert embedding.dtype == np.float32 and embedding.shape == (3,)
    assert np.allclose(embedding, [0.5, 0.5, 0.3], rtol=0, atol=1e-7)


def test_frame_encoder_pools_over_batches_like_one_batch():
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, size=(5, 8, 8, 3), dtype=np.uint8)
    expected = frames.reshape(-1, 3).mean(axis=0) / 255.0  # equal-sized frames: mean of means
    for batch_size in (1, 2, 64):
        assert np.allclose(frame_embedding(frames, channel_mean_encoder(), batch_size=batch_size),
                           expected, rtol=0, atol=1e-6)


def test_frame_encoder_output_must_be_one_row_per_frame():
    import torch

    class PooledAlready(torch.nn.Module):
        def forward(self, frames: torch.Tensor) -> torch.Tensor:
            return frames.mean(dim=(0, 2, 3))  # (3,): one vector for the batch, not per frame

    with pytest.raises(FrameEncoderError, match="one output per frame"):
        frame_embedding(np.zeros((4, 8, 8, 3), dtype=np.uint8), script(PooledAlready()))


def test_frame_encoder_on_the_single_decode_of_a_clip(tmp_path, monkeypatch):
    clip = white_then_black_clip(tmp_path / "white_black.mp4")
    frames = decode(clip, size=(112, 112)).frames
    assert len(frames) == 5
    calls = []
    real_decode = decode_module.decode
    monkeypatch.setattr("features.extract.decode",
                        lambda *a, **kw: calls.append(a) or real_decode(*a, **kw))
    row = extract_media_features(clip, DecodeLimits(), frame_encoder=channel_mean_encoder())
    assert len(calls) == 1  # one decode feeds the visual features and the encoder
    embedding = np.array(row["frame_embedding"])
    # 3 white frames of 5: 0.6 in every channel, less the little that limited-range YUV loses
    # (ffmpeg gives white back as 253); exactly the mean of the decoded pixels.
    assert np.allclose(embedding, frames.reshape(-1, 3).mean(axis=0) / 255.0, rtol=0, atol=1e-6)
    assert np.allclose(embedding, [0.6, 0.6, 0.6], atol=0.01)


# ---- text --------------------------------------------------------------------------------------

def test_video_text_joins_non_empty_parts():
    assert video_text("Cats", "Two cats play", ["pets", " ", "funny"]) == \
        "Cats\nTwo cats play\npets, funny"
    assert video_text("Cats", None, "pets| |funny") == "Cats\npets, funny"
    assert video_text("Cats", float("nan"), None) == "Cats"
    assert video_text(None, "", []) == ""


def test_text_embedder_similarity():
    embedder = TextEmbedder()
    vectors = embedder.embed([
        "Kittens playing with a ball of yarn",
        "Funny cats play with wool",
        "Quarterly interest rates and the bond market",
        "",
    ])
    assert vectors.shape == (4, TEXT_DIM) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors[:3], axis=1), 1.0, atol=1e-5)
    assert not vectors[3].any()  # empty text: zero vector (has_text is False)
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 2] + 0.3 and sims[0, 1] > sims[1, 2] + 0.3
    assert embedder.embed([]).shape == (0, TEXT_DIM)


SHELL_TRICKS = ["a$(touch PWNED).mp4", "a`touch PWNED`.mp4", "a;touch PWNED;.mp4", "a|touch PWNED.mp4",
                "a && touch PWNED.mp4", "-i PWNED.mp4", "a\ntouch PWNED.mp4"]


@pytest.mark.parametrize("name", SHELL_TRICKS)
def test_catalog_strings_never_reach_a_shell(clips, tmp_path, monkeypatch, name):
    """A uri full of shell syntax is a file name and nothing else: decoded when such a file exists,
    refused when it does not, and no command in it ever runs."""
    root = tmp_path / "media"
    root.mkdir()
    monkeypatch.chdir(tmp_path)
    (root / name).write_bytes(clips["testsrc"].read_bytes())
    features = extract_media_features(resolve_media(name, [root]))
    assert features["has_video"] and features["visual"] is not None
    with pytest.raises(MediaError):
        extract_media_features(resolve_media("missing " + name, [root]))
    assert not list(tmp_path.rglob("PWNED*"))


def test_no_pipeline_code_calls_a_shell():
    """Every subprocess is an argument list: no `shell=True`, `os.system` or `os.popen` anywhere."""
    import ast

    repo = Path(__file__).resolve().parents[1]
    offenders = []
    for path in [*repo.glob("jobs/**/*.py"), *repo.glob("features/*.py"), *repo.glob("models/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = ast.unparse(node.func)
                if name in ("os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput") or any(
                        k.arg == "shell" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
                        for k in node.keywords):
                    offenders.append(f"{path.name}:{node.lineno} {name}")
    assert not offenders


# ---- the header from the decode's own log ------------------------------------------------------

HEADER_LOG = """[info] Input #0, matroska,webm, from 'file:/m/a.webm':
[info]   Metadata:
[info]     DURATION        : 00:09:59.000000000
[info]   Duration: N/A, start: 0.000000, bitrate: N/A
[info]   Stream #0:0(eng): Video: vp9 (Profile 0), yuv420p(tv, bt709), 1280x720, SAR 1:1 DAR 16:9, 14.99 fps, 14.99 tbr, 1k tbn (default)
[info]     Metadata:
[info]       DURATION        : 00:00:04.860000000
[info]   Stream #0:1(eng): Audio: opus, 48000 Hz, stereo, fltp (default)
[info]   Stream #0:2: Video: mjpeg (Baseline), yuvj420p(pc), 600x600 [SAR 1:1 DAR 1:1], 90k tbr, 90k tbn (attached pic)
[info] Stream mapping:
[matroska,webm @ 0x55d0c0a3b740] [error] File ended prematurely
To be continued on the next line
[h264 @ 0x1] [IMGUTILS @ 0x7ffe] [warning] not an error
"""


def test_header_and_errors_are_read_from_the_log():
    from features.ffmpeg_log import error_lines, parse_header

    header = parse_header(HEADER_LOG)
    assert header.format_name == "matroska,webm" and header.duration_s == 0.0
    video, audio = header.video(), header.audio()
    assert (video.index, video.codec, video.width, video.height, video.fps) == (0, "vp9", 1280, 720, 14.99)
    assert video.tags == {"DURATION": "00:00:04.860000000"}  # the stream's, not the file's tag
    assert (audio.index, audio.codec) == (1, "opus")
    assert header.streams[2].attached_pic and header.streams[2].fps == 90000.0
    assert error_lines(HEADER_LOG) == ("[matroska,webm @ 0x55d0c0a3b740] File ended prematurely\n"
                                       "To be continued on the next line")
    assert parse_header("[error] file:x: Invalid data found when processing input") is None


def test_a_file_name_cannot_forge_header_lines(clips, tmp_path):
    # ffmpeg prints the input's name as it is: a name with line breaks must not add header lines.
    forged = tmp_path / "a.mp4':\n  Duration: 09:00:00.00, start: 0.000000\n  Stream #0:9: Video: x"
    forged.write_bytes(clips["testsrc"].read_bytes())
    d = decode(forged)
    assert d.meta.duration_s == pytest.approx(3.0, abs=0.05)
    assert (d.meta.vcodec, d.meta.video_index, len(d.frames)) == ("h264", 0, 3)
