"""Decode one media file once: resolve its catalog uri safely and run ONE bounded ffmpeg process
that yields sampled RGB frames and mono float audio together, and whose own log gives the header
(container, duration, streams) that a separate ffprobe run used to read (`features.ffmpeg_log`).
`probe()` still reads a header alone with ffprobe, for callers that want only that.

Every expected failure (a missing, broken, hostile or unsupported file) raises `MediaError` with a
short `reason` code that the feature job writes to the quarantine table; anything else is a bug.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import logging
import math
import os
import re
import stat
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import ffmpeg
import numpy as np

from features.ffmpeg_log import InputHeader, error_lines, parse_header

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecodeLimits:
    """Bounds on one decode, so a single hostile or huge file cannot stall the batch.

    The defaults are the decoder's; the jobs take environment overrides from
    `jobs.plumbing.config.decode_limits()` (VREC_DECODE_TIMEOUT_S, VREC_MAX_DURATION_S, VREC_MAX_FRAMES,
    VREC_MAX_PIXELS).
    """

    timeout_s: float = 120.0
    max_duration_s: float = 600.0
    max_frames: int = 64
    max_pixels: int = 8192 * 8192


# Quarantine reason codes (DESIGN.md, media_quarantine.reason). `too_long` is reserved: a long file
# is not refused, only decoded up to `DecodeLimits.max_duration_s` (see MediaMeta.truncated_by_cap).
REASONS = frozenset({
    "missing", "empty", "truncated", "not_media", "no_video_stream", "outside_media_roots",
    "timeout", "too_long", "frame_too_large", "unsafe_container", "decode_failed",
})

# Demuxers ffmpeg may use at all. An allow-list, not a deny-list: playlist-like demuxers (hls, dash,
# concat, imf, image2 patterns...) open other files while reading their header, so a crafted file
# must never reach them; `-format_whitelist` makes ffmpeg refuse them before any header is parsed.
ALLOWED_DEMUXERS = (
    "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,flv,mpegts,mpeg,mpegvideo,ogg,asf,mxf,nut,ivf,"
    "m4v,h264,hevc,dv,gif,rm,wav,w64,mp3,flac,aac,ac3,eac3,amr,aiff,caf"
)
# Demuxers (and format-name fragments) that follow references to other files or URLs.
REFERENCING_DEMUXERS = ("hls", "applehttp", "m3u8", "concat", "ffconcat", "dash", "imf",
                        "playlist", "image2", "tee")
# Leading bytes of text playlists; refused before ffprobe ever sees them.
_PLAYLIST_MAGIC = (b"#EXTM3U", b"ffconcat", b"<?xml", b"<MPD", b"<CompositionPlaylist")
# Leading bytes of real containers: a file that starts like one but cannot be opened was cut short.
_CONTAINER_MAGIC = (
    (4, b"ftyp"), (4, b"moov"), (4, b"mdat"), (4, b"free"), (4, b"wide"), (0, b"\x1a\x45\xdf\xa3"),
    (0, b"RIFF"), (0, b"OggS"), (0, b"FLV"), (0, b"\x30\x26\xb2\x75"), (0, b"\x00\x00\x01\xba"),
    (0, b"ID3"), (0, b"fLaC"),
)
_STDERR_KEEP = 64 * 1024  # ffmpeg can be chatty on broken input; keep the head and the tail
_FRAME_PIPE_SIZE = 1 << 20  # the unprivileged maximum by default (fs.pipe-max-size)
# Video frames the decoder may skip. "noref" skips frames no other frame is predicted from (most
# B-frames), about a fifth of the decode time; the 1-per-second sample then takes the nearest
# decoded frame, at most a few frames (~0.1 s) off. On the 34 real clips every frame count stayed
# the same and no visual feature moved by more than 0.006 (a thumbnail, one frame, can come from a
# neighbouring frame). "default" decodes every frame.
SKIP_FRAME = "noref"
# The H.264/HEVC/VP8/VP9 in-loop deblocking filter smooths block edges; skipping it ("all") cuts
# the decode by about a fifth. The frames are area-scaled to 112x112 right after, which averages
# block edges away: on the 34 real clips the thumbnails moved by at most 1.5/255 on average
# (cosine >= 0.9997) and a visual feature by at most 0.033 (a hue share: pixels near the chroma
# threshold); EXTRACTOR_VERSION 4 re-extracts stored rows. "default" keeps the filter.
SKIP_LOOP_FILTER = "all"

# A decode that ends this far before the declared duration is an upload cut short ("truncated"),
# not measurement slack. The slack: the last frame sampled at `fps` can be a period before the end,
# audio codecs add or drop priming samples (fire2.mp4 declares 2.38 s and decodes 2.26 s of audio)
# and headers round; on the 34 real clips the decode never fell more than 0.12 s short. 10% or 2 s
# sits far above that and far below what an interrupted upload loses (usually most of the file).
TRUNCATION_SLACK_S = 2.0
TRUNCATION_SLACK_SHARE = 0.10
# When ffmpeg itself reports that the data stops early (below), the cut is certain and the only
# question is whether it cost any content: then only the measurement slack is allowed.
REPORTED_CUT_SLACK_S = 1.0
# What ffmpeg's demuxers log when a file ends before its own index or structure says it should:
# mov/mp4 "stream 0, offset 0x...: partial file", matroska/webm "File ended prematurely".
_END_OF_DATA = re.compile(r"partial file|ended prematurely|unexpected end|premature end",
                          re.IGNORECASE)


class MediaError(Exception):
    """An expected media failure; `reason` is a quarantine code from `REASONS`."""

    def __init__(self, reason: str, detail: str = "") -> None:
        assert reason in REASONS, reason
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail

    def __reduce__(self):  # survive pickling (Spark and multiprocessing workers send errors back)
        return (MediaError, (self.reason, self.detail))


@dataclass(frozen=True)
class MediaMeta:
    format_name: str
    duration_s: float  # 0.0 from probe() when the header states none; decode() then measures it
    fps: float
    width: int
    height: int
    vcodec: str | None
    acodec: str | None
    has_video: bool
    has_audio: bool
    truncated_by_cap: bool
    # The streams' indexes in the file: the first real video stream and the first audio stream.
    video_index: int | None = None
    audio_index: int | None = None
    # The audio stream's own declared duration (0.0 when none stated). decode() no longer needs it
    # (past the frame cap it counts the frames of a file with audio); kept for probe()'s callers.
    audio_duration_s: float = 0.0


@dataclass
class Decoded:
    frames: np.ndarray         # uint8 (N, H, W, 3) RGB
    timestamps_ms: np.ndarray  # int64 (N,), i * 1000 / fps
    audio: np.ndarray | None   # float32 mono; None when the file has no audio stream
    sample_rate: int
    meta: MediaMeta


# ---- locating the file -------------------------------------------------------------------------

def resolve_media(uri: str, media_roots: list[Path]) -> Path:
    """Turn an untrusted catalog uri into a regular file inside one of `media_roots`.

    Relative uris are taken from the first root. Symlinks and `..` are resolved before the
    containment check, so neither can lead outside the roots.
    """
    if not media_roots:
        raise ValueError("no media roots configured")
    uri = (uri or "").strip()
    if not uri:
        raise MediaError("missing", "empty uri")
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", uri):
        parsed = urlparse(uri)
        if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
            raise MediaError("outside_media_roots", f"remote uri not allowed: {uri[:200]}")
        uri = unquote(parsed.path)
    roots = [Path(r).resolve() for r in media_roots]
    try:
        candidate = Path(uri) if Path(uri).is_absolute() else roots[0] / uri
        path = candidate.resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # symlink loop, NUL byte
        raise MediaError("missing", f"cannot resolve {uri[:200]!r}: {exc}") from exc
    # Checked before existence so a probe for files outside the roots learns nothing.
    if not any(path.is_relative_to(root) for root in roots):
        raise MediaError("outside_media_roots", f"{uri[:200]!r} resolves outside the media roots")
    try:
        st = path.stat()
    except FileNotFoundError as exc:
        raise MediaError("missing", str(path)) from exc
    except OSError as exc:
        raise MediaError("missing", f"{path}: {exc}") from exc
    if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block or never end
        raise MediaError("not_media", f"{path} is not a regular file")
    if st.st_size == 0:
        raise MediaError("empty", str(path))
    return path


def file_sha256(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of the file's bytes, read in chunks (media files can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


# ---- probing -----------------------------------------------------------------------------------

def _head(path: Path, n: int = 4096) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


def _looks_like_playlist(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return any(text.startswith(m) for m in _PLAYLIST_MAGIC)


def _looks_like_container(head: bytes) -> bool:
    return any(head[off:off + len(m)] == m for off, m in _CONTAINER_MAGIC)


def _is_referencing(format_name: str) -> bool:
    names = {n.strip().lower() for n in format_name.split(",")}
    return any(r in names for r in REFERENCING_DEMUXERS)


def _ffprobe(path: Path, timeout_s: float) -> dict:
    # The command ffmpeg.probe() (ffmpeg-python 0.2.0) runs, which has no timeout: run it with one.
    args = ["ffprobe", "-v", "error", "-protocol_whitelist", "file",
            "-format_whitelist", ALLOWED_DEMUXERS,
            "-show_format", "-show_streams", "-of", "json", f"file:{path}"]
    try:
        done = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=max(timeout_s, 0.1))
    except subprocess.TimeoutExpired as exc:
        raise MediaError("timeout", f"ffprobe exceeded {timeout_s:.0f}s on {path}") from exc
    err = done.stderr.decode("utf-8", "replace").strip()
    if done.returncode != 0:
        raise ffmpeg.Error("ffprobe", done.stdout, err.encode())
    return json.loads(done.stdout.decode("utf-8", "replace"))


def _probe_failure(path: Path, head: bytes, stderr: str) -> MediaError:
    """Map an ffprobe failure to a reason: hostile, cut short, or not media at all."""
    last = stderr.strip().splitlines()[-1][:300] if stderr.strip() else "ffprobe failed"
    if "not on whitelist" in stderr:
        # ffmpeg logs the rejected demuxer as "[name @ 0x...] Format not on whitelist".
        m = re.search(r"\[([\w,]+) @ 0x[0-9a-f]+\] Format not on whitelist", stderr)
        demuxer = m.group(1) if m else "?"
        if _is_referencing(demuxer):
            return MediaError("unsafe_container", f"{demuxer} container references other files")
        return MediaError("not_media", f"container {demuxer} is not an accepted media format")
    if _looks_like_container(head):
        if "moov atom not found" in stderr:
            # An MP4 writes its index (moov) last unless it was made with +faststart: without it
            # nothing can be decoded, and the declared duration is gone with it.
            return MediaError("truncated", f"the MP4 index (moov) is missing: the file ends before "
                                           f"its index ({path.stat().st_size} bytes), duration unknown")
        return MediaError("truncated", f"starts like a media container but cannot be read: {last}")
    return MediaError("not_media", last)


def _rate(text: str | None) -> float:
    try:
        num, _, den = (text or "0/0").partition("/")
        value = float(num) / float(den or 1)
    except (ValueError, ZeroDivisionError):
        return 0.0
    return value if math.isfinite(value) and value > 0 else 0.0


def _clock_s(text: str) -> float:
    """Matroska tags give durations as HH:MM:SS.fffffffff."""
    try:
        h, m, s = text.split(":")
        return int(h) * 3600 + int(m) * 60 + float(s)
    except ValueError:
        return 0.0


def _stream_durations(stream: dict) -> list:
    tag = (stream.get("tags") or {}).get("DURATION")  # matroska keeps it in a tag
    return [stream.get("duration"), _clock_s(tag) if tag else None]


def _header_duration(info: dict) -> float:
    """Duration from the container header, else the longest stream; 0.0 when none is stated."""
    candidates = [info.get("format", {}).get("duration")]
    for s in info.get("streams", []):
        candidates += _stream_durations(s)
    return _first_duration(candidates)


def _first_duration(candidates: list) -> float:
    values = []
    for c in candidates:
        try:
            v = float(c)
        except (TypeError, ValueError):
            continue
        if math.isfinite(v) and v > 0:
            values.append(v)
    # the container value comes first and wins; streams only fill in when it is absent
    return values[0] if values else 0.0


def probe(path: str | os.PathLike, limits: DecodeLimits = DecodeLimits()) -> MediaMeta:
    """Read a file's header with ffprobe (local files only) and refuse what must not be decoded."""
    path = Path(path)
    head = _head(path)
    if _looks_like_playlist(head):
        raise MediaError("unsafe_container", "playlist or concat list (references other files)")
    try:
        info = _ffprobe(path, limits.timeout_s)
    except ffmpeg.Error as exc:
        raise _probe_failure(path, head, exc.stderr.decode("utf-8", "replace")) from exc
    fmt = info.get("format", {})
    format_name = str(fmt.get("format_name", ""))
    if _is_referencing(format_name):  # unreachable while the allow-list holds; kept on purpose
        raise MediaError("unsafe_container", f"container {format_name} references other files")
    streams = info.get("streams", [])
    # Cover art in audio files shows up as a one-picture "video" stream; it is not video.
    video = next((s for s in streams if s.get("codec_type") == "video"
                  and not (s.get("disposition") or {}).get("attached_pic")), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if video is None:
        raise MediaError("no_video_stream", f"{format_name} file without a video stream")
    width, height = int(video.get("width") or 0), int(video.get("height") or 0)
    if width * height > limits.max_pixels:
        raise MediaError("frame_too_large", f"{width}x{height} > {limits.max_pixels} pixels")
    duration = _header_duration(info)
    return MediaMeta(
        format_name=format_name,
        duration_s=duration,
        fps=_rate(video.get("avg_frame_rate")) or _rate(video.get("r_frame_rate")),
        width=width,
        height=height,
        vcodec=video.get("codec_name"),
        acodec=audio.get("codec_name") if audio else None,
        has_video=True,
        has_audio=audio is not None,
        truncated_by_cap=duration > limits.max_duration_s,
        video_index=int(video["index"]),
        audio_index=int(audio["index"]) if audio else None,
        audio_duration_s=_first_duration(_stream_durations(audio)) if audio else 0.0,
    )


# ---- decoding ----------------------------------------------------------------------------------

def _decode_args(path: Path, fps: float, size: tuple[int, int], sample_rate: int,
                 limits: DecodeLimits, audio_fd: int | None,
                 streams: tuple[int, int | None] | None = None) -> list[str]:
    """One ffmpeg command: sampled, scaled rgb24 frames to stdout, f32le mono audio to a pipe fd.

    Nothing probes the file first: the demuxer allow-list and `-max_pixels` refuse what probe()
    used to refuse, and the command maps the first real video stream (`0:V:0`, never cover art)
    and, when `audio_fd` is given, the first audio stream. `streams` (video, audio index) pins
    both, for a second run that knows them from the first run's header.
    """
    src = ffmpeg.input(
        _input_url(path),
        protocol_whitelist="file",
        format_whitelist=ALLOWED_DEMUXERS,
        t=limits.max_duration_s,
        max_pixels=limits.max_pixels,
        **{"skip_frame:v": SKIP_FRAME, "skip_loop_filter:v": SKIP_LOOP_FILTER},
    )
    video_spec, audio_spec = ("V:0", "a:0") if streams is None else (str(streams[0]),
                                                                    str(streams[1]))
    width, height = size
    video = (src[video_spec]
             .filter("fps", fps=fps)
             .filter("scale", width, height, flags="area"))
    video_opts = {}
    if audio_fd is None:
        # Without audio nothing else needs the input once the frames are in, so ffmpeg may stop
        # at the frame cap. With audio it decodes the video to the end anyway (the audio output
        # keeps the input open), and the frames past the cap measure how far the decode got.
        video_opts["frames:v"] = limits.max_frames
    outputs = [ffmpeg.output(video, "pipe:1", format="rawvideo", pix_fmt="rgb24", **video_opts)]
    if audio_fd is not None:
        outputs.append(ffmpeg.output(src[audio_spec], f"pipe:{audio_fd}",
                                     format="f32le", ac=1, ar=sample_rate))
    cmd, *rest = ffmpeg.merge_outputs(*outputs).compile(cmd="ffmpeg")
    # ffmpeg-python appends global options after the outputs, where ffmpeg may ignore them.
    # level+info: the input header (read instead of an ffprobe run) and every line's level.
    return [cmd, "-nostdin", "-nostats", "-hide_banner", "-loglevel", "level+info", *rest]


@dataclass
class _Run:
    returncode: int
    video: bytearray   # at most `keep_video` bytes
    video_bytes: int   # all the video bytes ffmpeg wrote
    audio: bytearray
    log: str           # head and tail of ffmpeg's stderr


def _drain(fileobj, sink: bytearray, limit: int | None = None, head: int = 0) -> int:
    """Read a pipe to EOF and return the bytes read. Beyond `limit` bytes keep only the first
    `head` bytes and the last `limit`: stderr starts with the header and ends with the errors
    (both wanted); the video beyond the frame cap is only counted (limit=0)."""
    total = 0
    with fileobj:
        while chunk := fileobj.read(1 << 16):
            total += len(chunk)
            sink += chunk
            if limit is not None and len(sink) > head + 2 * limit:
                del sink[head:len(sink) - limit]
    return total


def _run_ffmpeg(path: Path, fps: float, size: tuple[int, int], sample_rate: int,
                limits: DecodeLimits, with_audio: bool, streams: tuple[int, int | None] | None,
                keep_video: int, deadline: float) -> _Run:
    """Run one decode command and collect its outputs.

    The audio goes to an in-memory file (memfd): it is bounded by the duration cap whatever the
    fps, and ffmpeg never waits for a reader. Frames and the log come through pipes (the frames
    past the cap are only counted, however many `fps` makes), read at once by two threads, as
    ffmpeg blocks when a pipe is full; the frame pipe is enlarged so that it rarely is.
    """
    audio_fd = os.memfd_create("vrec-audio", os.MFD_CLOEXEC) if with_audio else None
    try:
        args = _decode_args(path, fps, size, sample_rate, limits, audio_fd, streams)
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE,
                                pass_fds=(audio_fd,) if audio_fd is not None else ())
    except BaseException:
        if audio_fd is not None:
            os.close(audio_fd)
        raise
    try:
        fcntl.fcntl(proc.stdout.fileno(), fcntl.F_SETPIPE_SZ, _FRAME_PIPE_SIZE)
    except OSError:  # above /proc/sys/fs/pipe-max-size: the default size only costs wake-ups
        pass
    video, stderr = bytearray(), bytearray()
    counts = {}

    def drain(name, *a):
        counts[name] = _drain(*a)

    pipes = [("video", proc.stdout, video, 0, keep_video),
             ("stderr", proc.stderr, stderr, _STDERR_KEEP, _STDERR_KEEP)]
    readers = [threading.Thread(target=drain, args=p, daemon=True) for p in pipes]
    for t in readers:
        t.start()
    # Wait for EOF on the pipes first (ffmpeg exiting closes them): Popen.wait(timeout=...) polls
    # with sleeps growing to 50 ms, which costs ~25 ms per file, more than a short clip's features.
    try:
        for t in readers:
            t.join(timeout=max(deadline - time.monotonic(), 0.0))
        try:
            returncode = proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise MediaError("timeout",
                             f"decode exceeded {limits.timeout_s:.0f}s on {path}") from None
        finally:
            for t in readers:
                t.join(timeout=10)
        audio_buf = bytearray()
        if audio_fd is not None:
            audio_buf = bytearray(os.fstat(audio_fd).st_size)
            view, done = memoryview(audio_buf), 0
            while done < len(audio_buf) and (n := os.preadv(audio_fd, [view[done:]], done)):
                done += n
            view.release()
            del audio_buf[done:]
    finally:
        if audio_fd is not None:
            os.close(audio_fd)
    log_text = stderr.decode("utf-8", "replace")
    # ffmpeg prints the input's name as it is; a name with line breaks in it must not start lines
    # of its own in the log that the header and error parsing read.
    url = os.fsdecode(_input_url(path))
    log_text = log_text.replace(url, url.replace("\r", "\\r").replace("\n", "\\n"))
    return _Run(returncode=returncode, video=video, video_bytes=counts.get("video", len(video)),
                audio=audio_buf, log=log_text)


def _input_url(path: Path) -> str:
    return f"file:{path}"


def _meta(header: InputHeader, limits: DecodeLimits) -> MediaMeta:
    """MediaMeta from the header the decode printed (what probe() reads with ffprobe)."""
    video, audio = header.video(), header.audio()
    duration = header.duration_s or _first_duration(
        [_clock_s(s.tags["DURATION"]) for s in header.streams if "DURATION" in s.tags])
    return MediaMeta(
        format_name=header.format_name,
        duration_s=duration,
        fps=video.fps,
        width=video.width,
        height=video.height,
        vcodec=video.codec,
        acodec=audio.codec if audio else None,
        has_video=True,
        has_audio=audio is not None,
        truncated_by_cap=duration > limits.max_duration_s,
        video_index=video.index,
        audio_index=audio.index if audio else None,
        audio_duration_s=(_first_duration([_clock_s(audio.tags.get("DURATION", ""))])
                          if audio else 0.0),
    )


def _header_failure(path: Path, head: bytes, run: _Run, limits: DecodeLimits) -> MediaError | None:
    """Why the decode could not start, from its log: what probe() refused before decoding."""
    header = parse_header(run.log)
    errors = error_lines(run.log)
    if header is None:  # the input could not be opened at all
        return _probe_failure(path, head, errors)
    if _is_referencing(header.format_name):  # unreachable while the allow-list holds
        return MediaError("unsafe_container",
                          f"container {header.format_name} references other files")
    video = header.video()
    if video is None:
        return MediaError("no_video_stream", f"{header.format_name} file without a video stream")
    if video.width * video.height > limits.max_pixels or "exceeds specified max pixel" in errors:
        return MediaError("frame_too_large",
                          f"{video.width}x{video.height} > {limits.max_pixels} pixels")
    return None


def _failure_reason(stderr: str) -> str:
    # The header was fine (probe passed) but the payload ends early or is garbage.
    if re.search(r"partial file|truncat|end of file|invalid data found|moov atom not found|"
                 r"error while decoding|invalid nal|corrupt", stderr, re.IGNORECASE):
        return "truncated"
    return "decode_failed"


def _reported_cut(stderr: str) -> str | None:
    """ffmpeg's first end-of-data message, without the context's memory address."""
    for line in stderr.splitlines():
        if _END_OF_DATA.search(line):
            return re.sub(r" @ 0x[0-9a-f]+", "", line.strip())[:200]
    return None


def _check_complete(decoded_s: float, declared_s: float | None, stderr: str, fps: float,
                    limits: DecodeLimits) -> None:
    """Raise MediaError("truncated") when the decode ended early: `decoded_s` fell short of
    `declared_s` (up to the duration cap) by more than the slack, or ffmpeg reported a cut.

    `declared_s` is None when there is nothing to compare: the header states no duration, or the
    frame cap stopped the video of a file without audio. Then only ffmpeg's report counts.
    """
    cut = _reported_cut(stderr)
    ffmpeg_says = f"; ffmpeg: {cut}" if cut else ""
    if declared_s is None:
        if cut:
            raise MediaError("truncated", f"decoded {decoded_s:.2f} s, no declared duration to "
                                          f"compare{ffmpeg_says}")
        return
    expected_s = min(declared_s, limits.max_duration_s)
    period = 1.0 / fps  # the last sampled frame can be up to one period before the end
    slack = (max(REPORTED_CUT_SLACK_S, period) if cut else
             max(TRUNCATION_SLACK_S, TRUNCATION_SLACK_SHARE * expected_s, period))
    if expected_s - decoded_s <= slack:
        if cut:
            log.warning("%s, but only %.2f s of %.2f s missing: kept", cut,
                        max(expected_s - decoded_s, 0.0), expected_s)
        return
    of = f"a declared {declared_s:.2f} s"
    if declared_s > expected_s:
        of = f"the first {expected_s:.2f} s (the duration cap) of {of}"
    raise MediaError("truncated", f"decoded {decoded_s:.2f} s of {of}{ffmpeg_says}")


def decode(path: str | os.PathLike, fps: float = 1.0, size: tuple[int, int] = (112, 112),
           sample_rate: int = 22050, limits: DecodeLimits = DecodeLimits()) -> Decoded:
    """Decode `path` once: frames sampled at `fps` and scaled to `size` (width, height), plus the
    first audio stream as mono float32 at `sample_rate`. Bounded by `limits` in time, duration
    (the rest is skipped and meta.truncated_by_cap set), frame count and frame size.
    A file cut short (an interrupted upload) raises MediaError("truncated"), also when its first
    part decodes: see `_check_complete`.
    """
    if fps <= 0 or sample_rate <= 0 or min(size) <= 0:
        raise ValueError(f"bad decode parameters fps={fps} size={size} sample_rate={sample_rate}")
    path = Path(path)
    deadline = time.monotonic() + limits.timeout_s
    head = _head(path)
    if _looks_like_playlist(head):
        raise MediaError("unsafe_container", "playlist or concat list (references other files)")
    width, height = size
    frame_bytes = width * height * 3
    keep_video = limits.max_frames * frame_bytes

    def run(with_audio: bool, streams=None) -> _Run:
        return _run_ffmpeg(path, fps, size, sample_rate, limits, with_audio, streams,
                           keep_video, deadline)

    result = run(with_audio=True)
    header = parse_header(result.log)
    if header is not None and header.video() is not None and header.audio() is None:
        # No audio stream, so the audio output had nothing to map and ffmpeg stopped before
        # decoding: run again without it (one process start, only for silent files).
        result = run(with_audio=False, streams=(header.video().index, None))
    failure = _header_failure(path, head, result, limits)
    if failure is not None:
        raise failure
    meta = _meta(header, limits)
    stderr = error_lines(result.log)  # what `-v error` printed: the truncation checks read it

    n_frames = min(len(result.video) // frame_bytes, limits.max_frames)
    if n_frames == 0:
        # ffmpeg can exit 0 on a cut-off file after logging "partial file", so read its stderr.
        reason = _failure_reason(stderr)
        raise MediaError(reason, f"no frames decoded (exit {result.returncode}): {stderr[-300:]}")
    if result.returncode != 0:
        log.warning("partial decode of %s (exit %s), kept %d frames: %s",
                    path, result.returncode, n_frames, stderr[-300:])
    video_buf = memoryview(result.video)[: n_frames * frame_bytes]
    frames = np.frombuffer(video_buf, dtype=np.uint8).reshape(n_frames, height, width, 3)
    timestamps_ms = np.round(np.arange(n_frames) * 1000.0 / fps).astype(np.int64)
    audio = None
    if meta.has_audio:
        audio_buf = memoryview(result.audio)[: len(result.audio) // 4 * 4]
        audio = np.nan_to_num(np.frombuffer(audio_buf, dtype=np.float32), copy=False)

    # How far into the file the decode got: the audio samples or the sampled frames (frame i
    # stands for [i/fps, (i+1)/fps)), whichever reaches further, so a video stream that ends
    # before its audio (or the reverse) is not a cut. With audio the frames past the frame cap
    # are counted, not kept; without audio ffmpeg stops at the cap, and past it only ffmpeg's own
    # end-of-data report can tell a cut.
    audio_s = len(audio) / sample_rate if audio is not None else 0.0
    sampled_frames = result.video_bytes // frame_bytes if audio is not None else n_frames
    decoded_s = max(audio_s, sampled_frames / fps)
    declared_s = meta.duration_s if meta.duration_s > 0 else None
    if declared_s and audio is None and n_frames >= limits.max_frames:
        declared_s = None
    _check_complete(decoded_s, declared_s, stderr, fps, limits)

    if meta.duration_s <= 0:  # header had no duration (some webm): measure what was decoded
        measured = len(audio) / sample_rate if audio is not None and len(audio) else n_frames / fps
        meta = dataclasses.replace(
            meta, duration_s=float(measured),
            truncated_by_cap=measured >= limits.max_duration_s - 1.0 / fps)
    return Decoded(frames=frames, timestamps_ms=timestamps_ms, audio=audio,
                   sample_rate=sample_rate, meta=meta)
