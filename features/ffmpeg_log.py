"""Read what the decoding ffmpeg itself logs, so that no separate ffprobe process is needed.

The decode runs with `-loglevel level+info`: every line carries its level ("[info]", "[error]"...).
From the `info` lines comes the input header that ffmpeg prints before it decodes anything
(container, duration, streams: `parse_header`); the `error`/`fatal` lines are exactly what
`-v error` printed before (`error_lines`), which the truncation checks read.

The header is text meant for people, so only its fixed-layout lines are read: "Input #0, <format>,
from", "  Duration: HH:MM:SS.cc" (ffmpeg rounds it to the centisecond), "  Stream #0:<i>...: Video:
<codec>..., <w>x<h>..., <r> fps" and the streams' metadata (matroska keeps a stream's length in a
DURATION tag). A tag value cannot forge such a line: ffmpeg indents every line of a value, and the
continuation of a multi-line value, deeper than the stream lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# "[ctx @ 0x...] [ctx2 @ 0x...] [level] message": contexts first, then the level (-loglevel level+).
_LINE = re.compile(r"^(?P<ctx>(?:\[[^\]\n]* @ 0x[0-9a-f]+\] )*)\[(?P<level>quiet|panic|fatal|error|"
                   r"warning|info|verbose|debug|trace)\] (?P<msg>.*)$")
ERROR_LEVELS = frozenset({"panic", "fatal", "error"})

_INPUT = re.compile(r"^Input #0, (?P<format>.+?), from '")
_DURATION = re.compile(r"^  Duration: (?:N/A|(?P<h>\d+):(?P<m>\d\d):(?P<s>\d\d(?:\.\d+)?))")
_STREAM = re.compile(r"^  Stream #0:(?P<index>\d+)[^:]*: (?P<kind>Video|Audio|Subtitle|Data|"
                     r"Attachment): (?P<codec>[^\s,]+)(?P<rest>.*)$")
_TAG = re.compile(r"^      (?P<key>\S[^:]*?)\s*: (?P<value>.*)$")
_SIZE = re.compile(r", (?P<w>\d{1,6})x(?P<h>\d{1,6})(?=[\s,\[]|$)")
_RATE = r", (?P<value>\d+(?:\.\d+)?)(?P<k>k?) {unit}(?=[\s,]|$)"


@dataclass(frozen=True)
class StreamInfo:
    index: int
    kind: str            # "video", "audio", ...
    codec: str           # ffprobe's codec_name
    width: int = 0
    height: int = 0
    fps: float = 0.0     # the average frame rate as ffmpeg prints it (2 decimals), else tbr
    attached_pic: bool = False  # cover art: a one-picture "video" stream that is not video
    tags: dict = field(default_factory=dict)


@dataclass(frozen=True)
class InputHeader:
    format_name: str
    duration_s: float    # 0.0 when the header states none ("Duration: N/A")
    streams: tuple[StreamInfo, ...]

    def video(self) -> StreamInfo | None:
        """The first real video stream (what `-map 0:V:0` selects), not cover art."""
        return next((s for s in self.streams if s.kind == "video" and not s.attached_pic), None)

    def audio(self) -> StreamInfo | None:
        """The first audio stream (what `-map 0:a:0` selects)."""
        return next((s for s in self.streams if s.kind == "audio"), None)


def split_levels(log: str) -> list[tuple[str, str]]:
    """(level, line without its level tag) for each line; a line without a tag continues the
    previous message and keeps its level."""
    out, level = [], "info"
    for line in log.splitlines():
        m = _LINE.match(line)
        if m:
            level = m["level"]
            line = m["ctx"] + m["msg"]
        out.append((level, line))
    return out


def error_lines(log: str) -> str:
    """The error, fatal and panic lines: what ffmpeg prints under `-v error`."""
    return "\n".join(line for level, line in split_levels(log) if level in ERROR_LEVELS).strip()


def _rate(rest: str, unit: str) -> float:
    m = re.search(_RATE.format(unit=unit), rest)
    if not m:
        return 0.0
    return float(m["value"]) * (1000.0 if m["k"] else 1.0)


def _stream(m: re.Match) -> StreamInfo:
    rest = m["rest"]
    size = _SIZE.search(rest) if m["kind"] == "Video" else None
    return StreamInfo(
        index=int(m["index"]), kind=m["kind"].lower(), codec=m["codec"],
        width=int(size["w"]) if size else 0, height=int(size["h"]) if size else 0,
        fps=_rate(rest, "fps") or _rate(rest, "tbr"),
        attached_pic="(attached pic)" in rest,
    )


def parse_header(log: str) -> InputHeader | None:
    """The input header from a `-loglevel level+info` log; None when ffmpeg printed none (the
    input could not be opened)."""
    lines = [line for level, line in split_levels(log) if level == "info"]
    start = next((i for i, line in enumerate(lines) if _INPUT.match(line)), None)
    if start is None:
        return None
    format_name = _INPUT.match(lines[start])["format"]
    duration, streams, tags = 0.0, [], None
    for line in lines[start + 1:]:
        if not line.startswith("  "):
            break  # "Stream mapping:", "Output #0", ...: the header is over
        if m := _DURATION.match(line):
            if m["h"] is not None:
                duration = int(m["h"]) * 3600 + int(m["m"]) * 60 + float(m["s"])
        elif m := _STREAM.match(line):
            tags = {}
            streams.append((_stream(m), tags))
        elif tags is not None and (m := _TAG.match(line)):
            tags.setdefault(m["key"], m["value"].strip())
    return InputHeader(
        format_name=format_name, duration_s=duration,
        streams=tuple(StreamInfo(**{**s.__dict__, "tags": t}) for s, t in streams),
    )
