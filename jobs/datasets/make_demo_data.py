"""Generate a deterministic demo landing zone: synthetic clips, a catalog and simulated users.

The demo and the end-to-end tests run on this data, so it is built for a recommender to have
something real to learn: every genre has its own look (colour palette and motion, from ffmpeg's
lavfi sources) and its own sound (a frequency band, chirps, noise colour or a beat), titles and tags
come from per-genre vocabularies, and each simulated user mostly watches one or two favourite genres.

Run::

    python -m jobs.datasets.make_demo_data --warehouse ./warehouse [--seed 7] [--videos 240] [--users 150] \
        [--run-date 2026-11-20] [--clip-seconds 3] [--workers N]

It writes, under ``<warehouse>/landing/``:

- ``media/<genre>/<video_id>.mp4``: H.264 + AAC clips (160x120, 12 fps), byte-identical for a seed;
- ``catalog/catalog.jsonl``: one catalog row per line (DESIGN.md "Catalog rows"); about 3% of the
  videos have an empty ``uri`` (text only) and about 8% are published on the run date with no
  interactions (cold start);
- ``interactions/interactions.csv``: ``user_id,video_id,ts,event,watch_seconds`` over the 60 days
  before the run date, in time order per user, each video at most once per user;
- ``demo_truth.json``: each user's favourite genres and each video's genre, for tests that check
  whether recommendations match taste;
- ``demo_clips.json``: the ffmpeg parameters of each clip, so that a re-run re-encodes only clips
  whose parameters changed.

The same seed and options rewrite the same files. The catalog depends only on the seed, the number
of videos, the run date and the clip length, not on the number of users.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from jobs.plumbing.config import (
    DEFAULT_SEED,
    DESCRIPTION,
    EVENT,
    PUBLISHED_AT,
    TAGS,
    TITLE,
    TS,
    UPDATED_AT,
    URI,
    USER_ID,
    VIDEO_ID,
    WATCH_SECONDS,
    Warehouse,
)

DEFAULT_RUN_DATE = "2026-11-20"
WIDTH, HEIGHT, FPS, SAMPLE_RATE = 160, 120, 12, 22050
HISTORY_DAYS = 60
NEW_VIDEO_SHARE = 0.08
NO_MEDIA_SHARE = 0.03
FAVOURITE_SHARE = 0.85
ZIPF_EXPONENT = 1.1
CLIP_TIMEOUT_S = 120
INTERACTION_COLUMNS = (USER_ID, VIDEO_ID, TS, EVENT, WATCH_SECONDS)
CATALOG_FILE = "catalog.jsonl"
INTERACTIONS_FILE = "interactions.csv"
TRUTH_FILE = "demo_truth.json"
CLIPS_FILE = "demo_clips.json"

# Event mix for a video in one of the user's favourite genres, and for one outside their taste.
EVENTS = ("view", "like", "complete", "share", "skip")
IN_TASTE_EVENT_P = (0.38, 0.20, 0.27, 0.07, 0.08)
OUT_OF_TASTE_EVENT_P = (0.40, 0.04, 0.08, 0.01, 0.47)
SHARED_TAGS = ("hd", "short", "weekend", "trending", "2026", "must watch", "clip", "favourite")


@dataclass(frozen=True)
class Genre:
    """One genre: its vocabulary and how its clips look and sound (ffmpeg filtergraph templates).

    The templates are filled with the clip format (``size``, ``fps``, ``sr``) and a per-video jitter
    (``DemoVideo.style``): ``seed``, ``hue`` (degrees), ``speed`` (a motion factor around 1), ``freq``
    (Hz, drawn from ``band``) and a few genre-specific values.
    """

    name: str
    video: str
    audio: str
    band: tuple[float, float]
    adjectives: tuple[str, ...]
    nouns: tuple[str, ...]
    settings: tuple[str, ...]
    tags: tuple[str, ...]
    blurb: str


GENRES: tuple[Genre, ...] = (
    Genre(
        "ocean",
        "gradients=s={size}:r={fps}:c0=0x001a4d:c1=0x0066cc:c2=0x33ccff:c3=0x003366:n=4:seed={seed}"
        ":speed={speed_gradients},hue=h={hue}",
        "anoisesrc=c=pink:r={sr}:a=0.35:seed={seed},tremolo=f={speed_slow}:d=0.8,"
        "lowpass=f={freq}",
        (700, 1400),
        ("Blue", "Calm", "Stormy", "Turquoise", "Deep", "Rolling", "Quiet"),
        ("waves", "tides", "reef", "surf", "lagoon", "harbour", "swell"),
        ("at dawn", "at sunset", "off the coast", "in slow motion", "under the pier", "after the storm"),
        ("ocean", "sea", "waves", "beach", "surf", "coast", "water"),
        "Slow blue water and the hiss of the surf",
    ),
    Genre(
        "forest",
        "life=s={size}:r={fps}:seed={seed}:ratio=0.3:life_color=0x3cb371:death_color=0x0b2e13:mold=10"
        ":mold_color=0x556b2f,hue=h={hue}",
        "aevalsrc=exprs=0.3*sin(2*PI*({freq}+600*sin(2*PI*7*t))*t)*gt(sin(2*PI*{speed}*1.3*t)\\,0.4)"
        ":s={sr}",
        (2000, 3200),
        ("Green", "Misty", "Ancient", "Quiet", "Wild", "Mossy", "Sunlit"),
        ("forest", "pines", "woodland", "canopy", "fern valley", "birdsong", "clearing"),
        ("in spring", "after rain", "at first light", "deep in the valley", "on a windy day"),
        ("nature", "forest", "birds", "trees", "hiking", "wildlife", "green"),
        "Living green patterns and birds chirping",
    ),
    Genre(
        "space",
        "mandelbrot=s={size}:r={fps}:maxiter=200:start_x={x}:start_y={y}:start_scale={zoom_from}"
        ":end_scale={zoom_to}:end_pts={zoom_pts},hue=h={hue}",
        "aevalsrc=exprs=0.4*sin(2*PI*{freq}*t)+0.2*sin(2*PI*{freq}*1.5*t):s={sr}",
        (45, 95),
        ("Distant", "Spiral", "Cosmic", "Dark", "Infinite", "Silent", "Frozen"),
        ("galaxy", "nebula", "fractal", "star field", "orbit", "event horizon", "comet"),
        ("beyond the rim", "in deep time", "at the edge of the map", "zoomed in", "from orbit"),
        ("space", "astronomy", "cosmos", "fractal", "stars", "universe", "sci-fi"),
        "A zoom into a fractal sky over a low drone",
    ),
    Genre(
        "gaming",
        "testsrc2=s={size}:r={fps},hue=H=t*{speed}*2+{hue_rad}",
        "aevalsrc=exprs=0.25*sgn(sin(2*PI*{freq}*(1+mod(floor(t*8*{speed})\\,4)/4)*t)):s={sr}",
        (330, 660),
        ("Retro", "Pixel", "Turbo", "Arcade", "Neon", "Speedy", "Classic"),
        ("speedrun", "boss fight", "level", "combo", "high score", "dungeon", "race"),
        ("with no damage", "in one take", "on hard mode", "world record", "with friends"),
        ("gaming", "retro", "arcade", "speedrun", "pixel art", "chiptune", "esports"),
        "Flashing colour blocks and a square-wave arpeggio",
    ),
    Genre(
        "sports",
        "color=c=0x2a7a2a:s={size}:r={fps},drawgrid=w=40:h=120:t=3:c=white@0.8,"
        "noise=alls=12:allf=t+u:all_seed={seed},rotate=a={speed}*0.6*t:fillcolor=0x1f5f1f,hue=h={hue}",
        "anoisesrc=c=brown:r={sr}:a=0.5:seed={seed},highpass=f={freq}",
        (150, 400),
        ("Fast", "Last-minute", "Stunning", "Late", "Top", "Brave", "Record"),
        ("goal", "sprint", "match point", "comeback", "penalty", "relay", "header"),
        ("in the rain", "at the stadium", "from the stands", "in overtime", "in the final"),
        ("sports", "football", "match", "highlights", "stadium", "goal", "athletes"),
        "A spinning green pitch and a roaring crowd",
    ),
    Genre(
        "cooking",
        "color=c=0xd2691e:s={size}:r={fps},noise=alls=22:allf=t:all_seed={seed},"
        "hue=H=0.2*sin(6*{speed}*t)+{hue_rad}",
        "anoisesrc=c=white:r={sr}:a=0.35:seed={seed},highpass=f={freq},"
        "tremolo=f={speed_fast}:d=0.6",
        (2500, 4500),
        ("Crispy", "Spicy", "Golden", "Smoky", "Homemade", "Sweet", "Quick"),
        ("stir fry", "pancakes", "grilled peppers", "noodles", "flatbread", "curry", "dumplings"),
        ("in ten minutes", "over an open fire", "for two", "the easy way", "like grandma"),
        ("cooking", "recipe", "food", "kitchen", "dinner", "spicy", "grill"),
        "Warm flickering orange and a sizzling pan",
    ),
    Genre(
        "electronic",
        "cellauto=s={size}:r={fps}:rule={rule}:seed={seed}:ratio=0.5,format=rgb24,"
        "colorchannelmixer=rr=1:gg=0.15:bb=0.85,hue=h={hue}",
        "aevalsrc=exprs=0.8*sin(2*PI*55*t)*exp(-mod(t\\,{beat_s})*12)+0.15*sin(2*PI*{freq}*t)"
        ":s={sr}",
        (180, 300),
        ("Deep", "Pulsing", "Midnight", "Analog", "Hypnotic", "Warehouse", "Minimal"),
        ("techno set", "bassline", "synth loop", "house groove", "drum pattern", "acid line"),
        ("at 128 bpm", "live in the club", "till sunrise", "on a modular rig", "in one loop"),
        ("music", "electronic", "techno", "edm", "dj", "beats", "synth"),
        "Magenta cellular patterns on a four-on-the-floor kick",
    ),
    Genre(
        "lecture",
        "color=c=0xf0f0e8:s={size}:r={fps},drawgrid=w=20:h=20:t=1:c=0x606060@0.5,"
        "noise=alls=5:allf=t:all_seed={seed},hue=h={hue}:s=0.5",
        "aevalsrc=exprs=0.4*sin(2*PI*{freq}*t*(1+0.05*sin(2*PI*3*t)))*(0.5+0.5*sin(2*PI*4*{speed}*t))"
        ":s={sr}",
        (110, 220),
        ("Intro to", "Understanding", "A short guide to", "Notes on", "The basics of", "Revisiting"),
        ("linear algebra", "probability", "thermodynamics", "compilers", "microeconomics", "genetics"),
        ("part 1", "part 2", "for beginners", "explained", "in five minutes", "worked examples"),
        ("lecture", "education", "tutorial", "science", "math", "learning", "university"),
        "A still whiteboard and a single speaking voice",
    ),
)


@dataclass
class DemoVideo:
    video_id: str
    genre: str
    title: str
    description: str
    tags: list[str]
    published_at: datetime
    updated_at: datetime
    is_new: bool
    has_media: bool
    popularity: float
    style: dict = field(default_factory=dict)

    @property
    def uri(self) -> str:
        return f"{self.genre}/{self.video_id}.mp4" if self.has_media else ""


@dataclass
class DemoUser:
    user_id: str
    favourite_genres: list[str]
    weights: list[float]


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _pick_count(n: int, share: float, minimum_n: int) -> int:
    """round(share * n), but at least one once the catalog is big enough to spare it."""
    count = int(round(share * n))
    return max(count, 1) if n >= minimum_n else count


def _title(genre: Genre, rng: np.random.Generator) -> str:
    adjective, noun, setting = (str(rng.choice(words)) for words in (genre.adjectives, genre.nouns, genre.settings))
    if genre.name == "lecture":
        return f"{adjective} {noun}, {setting}"
    return f"{adjective} {noun} {setting}"


def plan_catalog(rng: np.random.Generator, n_videos: int, run_day: date) -> list[DemoVideo]:
    """Assign genres (balanced), text, publish times, the cold-start and no-media videos, and jitter."""
    run_start = datetime.combine(run_day, datetime.min.time(), tzinfo=timezone.utc)
    width = max(4, len(str(n_videos)))
    genre_order = rng.permutation(np.arange(n_videos) % len(GENRES))
    new_ids = set(rng.choice(n_videos, _pick_count(n_videos, NEW_VIDEO_SHARE, 8), replace=False).tolist())
    no_media_ids = set(rng.choice(n_videos, _pick_count(n_videos, NO_MEDIA_SHARE, 10), replace=False).tolist())
    videos = []
    for index in range(n_videos):
        genre = GENRES[int(genre_order[index])]
        title = _title(genre, rng)
        tags = list(rng.choice(genre.tags, int(rng.integers(3, 6)), replace=False))
        tags += list(rng.choice(SHARED_TAGS, int(rng.integers(0, 3)), replace=False))
        extra = ", ".join(rng.choice(genre.tags, 2, replace=False))
        description = f"{title}. {genre.blurb}; {extra}."
        is_new = index in new_ids
        if is_new:
            published = run_start + timedelta(seconds=int(rng.integers(0, 20 * 3600)))
            updated = published
        else:
            # Most warm videos predate the interaction window; some are published inside it.
            if rng.random() < 0.65:
                days_before = rng.uniform(HISTORY_DAYS, 180)
            else:
                days_before = rng.uniform(3, HISTORY_DAYS)
            published = run_start - timedelta(seconds=int(days_before * 86400))
            updated = published + timedelta(seconds=int(rng.uniform(0, 2) * 86400))
        speed = float(rng.uniform(0.7, 1.4))
        hue = float(rng.uniform(-20, 20))
        style = {
            "seed": int(rng.integers(1, 2**31 - 1)),
            "hue": round(hue, 2),
            "hue_rad": round(np.deg2rad(hue), 4),
            "speed": round(speed, 3),
            "speed_slow": round(0.3 * speed, 3),
            "speed_fast": round(9 * speed, 3),
            "speed_gradients": round(0.04 * speed, 4),
            "freq": round(float(rng.uniform(*genre.band)), 1),
            "x": round(float(rng.uniform(-0.76, -0.72)), 4),
            "y": round(float(rng.uniform(-0.15, -0.11)), 4),
            "zoom_from": round(float(rng.uniform(1.2, 3.0)), 3),
            "zoom_to": round(float(rng.uniform(0.1, 0.4)), 3),
            "zoom_pts": int(rng.integers(36, 90)),
            "rule": int(rng.choice([30, 90, 110, 150])),
            "beat_s": round(60 / rng.uniform(118, 134), 4),
        }
        videos.append(
            DemoVideo(
                video_id=f"v{index + 1:0{width}d}",
                genre=genre.name,
                title=title,
                description=description,
                tags=[str(tag) for tag in tags],
                published_at=published,
                updated_at=updated,
                is_new=is_new,
                has_media=index not in no_media_ids,
                popularity=0.0,
                style=style,
            )
        )
    # Zipf-like popularity inside each genre: a random rank order, weight 1 / rank^s.
    for genre in GENRES:
        members = [v for v in videos if v.genre == genre.name]
        for rank, position in enumerate(rng.permutation(len(members)), start=1):
            members[int(position)].popularity = 1.0 / rank**ZIPF_EXPONENT
    return videos


def _watch_seconds(event: str, clip_seconds: float, rng: np.random.Generator) -> float:
    fraction = {
        "skip": rng.uniform(0.05, 0.25),
        "view": rng.uniform(0.3, 0.9),
        "like": rng.uniform(0.7, 1.0),
        "complete": 1.0,
        "share": 1.0,
    }[event]
    return round(float(fraction * clip_seconds), 2)


def simulate_users(
    rng: np.random.Generator, videos: list[DemoVideo], n_users: int, run_day: date, clip_seconds: float
) -> tuple[list[DemoUser], list[dict]]:
    """Users with 1-2 favourite genres and their interactions in time order over the history window.

    ~85% of a user's events pick a favourite genre, the rest a genre outside their taste; inside the
    genre a video is drawn by popularity among those already published and not yet seen. A user's
    event count (15-40) is capped by what their favourite genres can supply, so that small catalogs
    keep the same taste concentration.
    """
    run_start = datetime.combine(run_day, datetime.min.time(), tzinfo=timezone.utc)
    window_start = run_start - timedelta(days=HISTORY_DAYS)
    window_s = HISTORY_DAYS * 86400
    genre_names = [g.name for g in GENRES]
    warm_by_genre = {name: [v for v in videos if v.genre == name and not v.is_new] for name in genre_names}
    width = max(3, len(str(n_users)))
    users, rows = [], []
    for index in range(n_users):
        n_favourites = 1 if rng.random() < 0.5 else 2
        favourites = [str(g) for g in rng.choice(genre_names, n_favourites, replace=False)]
        weights = [1.0] if n_favourites == 1 else sorted(np.round(rng.dirichlet([4, 4]), 3).tolist(), reverse=True)
        user = DemoUser(f"u{index + 1:0{width}d}", favourites, weights)
        users.append(user)
        others = [g for g in genre_names if g not in favourites]
        favourite_pool = sum(len(warm_by_genre[g]) for g in favourites)
        n_events = min(int(rng.integers(15, 41)), max(3, int(favourite_pool / FAVOURITE_SHARE)))
        offsets = np.sort(rng.choice(window_s, n_events, replace=False))
        seen: set[str] = set()
        for offset in offsets:
            moment = window_start + timedelta(seconds=int(offset))
            in_taste = rng.random() < FAVOURITE_SHARE
            if in_taste:
                first = str(rng.choice(favourites, p=np.array(weights) / sum(weights)))
                order = [first] + [g for g in favourites if g != first] + list(rng.permutation(others))
            else:
                order = list(rng.permutation(others)) + favourites
            video = None
            for genre in order:
                candidates = [v for v in warm_by_genre[genre] if v.video_id not in seen and v.published_at < moment]
                if candidates:
                    p = np.array([v.popularity for v in candidates])
                    video = candidates[int(rng.choice(len(candidates), p=p / p.sum()))]
                    break
            if video is None:
                continue
            seen.add(video.video_id)
            event_p = IN_TASTE_EVENT_P if video.genre in favourites else OUT_OF_TASTE_EVENT_P
            event = str(rng.choice(EVENTS, p=event_p))
            rows.append(
                {
                    USER_ID: user.user_id,
                    VIDEO_ID: video.video_id,
                    TS: iso_utc(moment),
                    EVENT: event,
                    WATCH_SECONDS: _watch_seconds(event, clip_seconds, rng),
                }
            )
    return users, rows


def clip_command(video: DemoVideo, out_path: Path, clip_seconds: float, ffmpeg: str = "ffmpeg") -> list[str]:
    """The ffmpeg argument list that renders one clip; never goes through a shell."""
    genre = next(g for g in GENRES if g.name == video.genre)
    values = {"size": f"{WIDTH}x{HEIGHT}", "fps": FPS, "sr": SAMPLE_RATE, **video.style}
    video_graph = genre.video.format(**values) + ",format=yuv420p"
    audio_graph = genre.audio.format(**values)
    return [
        ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        "-filter_complex", f"{video_graph}[v];{audio_graph}[a]",
        "-map", "[v]", "-map", "[a]", "-t", f"{clip_seconds:g}",
        "-c:v", "libx264", "-preset", "ultrafast", "-crf", "28", "-pix_fmt", "yuv420p", "-g", str(2 * FPS),
        "-threads", "1", "-filter_threads", "1",
        "-c:a", "aac", "-b:a", "48k", "-ac", "1", "-ar", str(SAMPLE_RATE),
        # Same seed, same bytes: no encoder/muxer version strings, dates or metadata.
        "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact", "-map_metadata", "-1",
        "-f", "mp4", str(out_path),
    ]  # fmt: skip


def _clip_key(command: list[str]) -> str:
    # The output path and the ffmpeg binary do not change what is rendered.
    return hashlib.sha256("\0".join(command[1:-1]).encode()).hexdigest()


def render_clips(
    videos: list[DemoVideo], media_root: Path, clip_seconds: float, workers: int, manifest_path: Path, ffmpeg: str
) -> tuple[int, int]:
    """Render every clip in a thread pool (ffmpeg does the work in subprocesses).

    Skips a clip whose file exists and whose recorded parameters are unchanged; removes clips that an
    earlier run made and this one no longer has. Returns (rendered, reused).
    """
    previous = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    wanted = {}
    jobs = []
    for video in videos:
        if not video.has_media:
            continue
        out_path = media_root / video.uri
        key = _clip_key(clip_command(video, out_path, clip_seconds, ffmpeg))
        wanted[video.uri] = key
        if previous.get(video.uri) != key or not out_path.is_file():
            jobs.append((video, out_path))
    for stale in set(previous) - set(wanted):
        (media_root / stale).unlink(missing_ok=True)

    def render(job: tuple[DemoVideo, Path]) -> None:
        video, out_path = job
        out_path.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = out_path.with_name(f".{out_path.stem}.tmp.mp4")
        command = clip_command(video, tmp_path, clip_seconds, ffmpeg)
        result = subprocess.run(command, capture_output=True, text=True, timeout=CLIP_TIMEOUT_S, check=False)
        if result.returncode != 0:
            tmp_path.unlink(missing_ok=True)
            detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"ffmpeg failed on {video.video_id} ({video.genre}): {detail}")
        os.replace(tmp_path, out_path)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for _ in pool.map(render, jobs):
            pass
    _write_atomic(manifest_path, json.dumps(wanted, indent=1, sort_keys=True) + "\n")
    return len(jobs), len(wanted) - len(jobs)


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    os.replace(tmp, path)


def catalog_jsonl(videos: list[DemoVideo]) -> str:
    lines = []
    for v in videos:
        row = {
            VIDEO_ID: v.video_id,
            URI: v.uri,
            TITLE: v.title,
            DESCRIPTION: v.description,
            TAGS: v.tags,
            PUBLISHED_AT: iso_utc(v.published_at),
            UPDATED_AT: iso_utc(v.updated_at),
        }
        lines.append(json.dumps(row, ensure_ascii=False))
    return "\n".join(lines) + "\n"


def interactions_csv(rows: list[dict]) -> str:
    class _Buffer(list):
        def write(self, text: str) -> None:
            self.append(text)

    buffer = _Buffer()
    writer = csv.DictWriter(buffer, fieldnames=INTERACTION_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, WATCH_SECONDS: f"{row[WATCH_SECONDS]:.2f}"})
    return "".join(buffer)


def truth_json(seed: int, run_day: date, videos: list[DemoVideo], users: list[DemoUser]) -> str:
    truth = {
        "seed": seed,
        "run_date": run_day.isoformat(),
        "genres": [g.name for g in GENRES],
        "users": {u.user_id: {"favourite_genres": u.favourite_genres, "weights": u.weights} for u in users},
        "videos": {
            v.video_id: {"genre": v.genre, "cold_start": v.is_new, "has_media": v.has_media} for v in videos
        },
    }
    return json.dumps(truth, indent=1) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.datasets.make_demo_data", description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", default=None, help="warehouse root (default: $VREC_WAREHOUSE or ./warehouse)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--videos", type=int, default=240)
    parser.add_argument("--users", type=int, default=150)
    parser.add_argument("--run-date", default=DEFAULT_RUN_DATE, help="YYYY-MM-DD; history is the 60 days before it")
    parser.add_argument("--clip-seconds", type=float, default=3.0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="parallel ffmpeg processes")
    parser.add_argument("--ffmpeg", default=os.environ.get("VREC_FFMPEG", "ffmpeg"), help="ffmpeg binary")
    args = parser.parse_args(argv)
    try:
        args.run_day = date.fromisoformat(args.run_date)
    except ValueError:
        parser.error(f"--run-date must be YYYY-MM-DD, got {args.run_date!r}")
    if args.videos < 1 or args.users < 0 or args.clip_seconds <= 0:
        parser.error("--videos must be >= 1, --users >= 0 and --clip-seconds > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    if shutil.which(args.ffmpeg) is None:
        print(f"make_demo_data: ffmpeg not found ({args.ffmpeg!r}); install it or pass --ffmpeg", file=sys.stderr)
        return 2
    warehouse = Warehouse.at(args.warehouse)
    landing = warehouse.root / "landing"
    # Independent streams: the catalog does not change when only the number of users does.
    catalog_seq, users_seq = np.random.SeedSequence(args.seed).spawn(2)
    videos = plan_catalog(np.random.default_rng(catalog_seq), args.videos, args.run_day)
    users, rows = simulate_users(np.random.default_rng(users_seq), videos, args.users, args.run_day, args.clip_seconds)
    try:
        rendered, reused = render_clips(
            videos, warehouse.landing_media, args.clip_seconds, args.workers, landing / CLIPS_FILE, args.ffmpeg
        )
    except (RuntimeError, subprocess.TimeoutExpired) as error:
        print(f"make_demo_data: rendering clips failed: {error}", file=sys.stderr)
        return 1
    _write_atomic(warehouse.landing_catalog / CATALOG_FILE, catalog_jsonl(videos))
    _write_atomic(warehouse.landing_interactions / INTERACTIONS_FILE, interactions_csv(rows))
    _write_atomic(landing / TRUTH_FILE, truth_json(args.seed, args.run_day, videos, users))
    print(
        f"make_demo_data: videos={len(videos)} cold_start={sum(v.is_new for v in videos)} "
        f"no_media={sum(not v.has_media for v in videos)} clips_rendered={rendered} clips_reused={reused} "
        f"users={len(users)} interactions={len(rows)} seconds={time.monotonic() - started:.1f} -> {landing}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
