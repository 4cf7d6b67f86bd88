"""Generate a platform-sized landing zone for the load benchmark (`jobs.bench.bench_load`).

    python -m jobs.datasets.make_load_data --warehouse DIR [--videos 50000] [--users 200000] \
        [--interactions 1000000 | --per-user LOW HIGH] [--media 300] [--seed 7] [--run-date 2026-11-20]

The catalog comes from the demo generator's genres (`jobs.datasets.make_demo_data.plan_catalog`: text,
publish times, cold-start videos), but only `--media` videos get a rendered clip; the rest are
text-only, as on a platform where media features exist for a small share of the catalog. Users
are drawn in bulk with NumPy (the demo's per-event simulation would take hours at this size): each
user has a favourite genre, an activity drawn from a heavy-tailed distribution, and picks videos
by popularity, 85% of them inside the favourite genre, each at most once, after it was published.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pandas as pd

from jobs.plumbing.config import EVENT, TS, USER_ID, VIDEO_ID, WATCH_SECONDS, Warehouse
from jobs.datasets.make_demo_data import (
    CATALOG_FILE,
    CLIPS_FILE,
    DEFAULT_RUN_DATE,
    EVENTS,
    FAVOURITE_SHARE,
    GENRES,
    HISTORY_DAYS,
    IN_TASTE_EVENT_P,
    INTERACTIONS_FILE,
    OUT_OF_TASTE_EVENT_P,
    _write_atomic,
    catalog_jsonl,
    plan_catalog,
    render_clips,
)

CLIP_SECONDS = 3.0
DEFAULT_SEED = 7
WATCH_FRACTION = {"skip": (0.05, 0.25), "view": (0.3, 0.9), "like": (0.7, 1.0), "complete": (1.0, 1.0),
                  "share": (1.0, 1.0)}


def simulate_interactions(rng: np.random.Generator, videos, n_users: int, n_interactions: int,
                          run_day: date, per_user: tuple[int, int] | None = None) -> pd.DataFrame:
    """About `n_interactions` rows (duplicates of a user and video are dropped) for `n_users` users.

    With `per_user` (low, high), each user instead draws between low and high interactions, uniformly
    (a short-video platform's sparse log: every user has a handful, nobody has hundreds).
    """
    run_start = datetime.combine(run_day, datetime.min.time(), tzinfo=timezone.utc).timestamp()
    window_start = run_start - HISTORY_DAYS * 86400
    genre_of = np.array([GENRES.index(next(g for g in GENRES if g.name == v.genre)) for v in videos])
    published = np.array([v.published_at.timestamp() for v in videos])
    warm = np.array([not v.is_new for v in videos])
    popularity = np.array([v.popularity for v in videos]) * warm

    if per_user is not None:
        counts = rng.integers(per_user[0], per_user[1] + 1, n_users)
    else:   # heavy-tailed activity: most users have a handful of events, a few have hundreds
        activity = rng.lognormal(0.0, 1.0, n_users)
        counts = np.maximum(1, np.round(activity / activity.sum() * n_interactions)).astype(np.int64)
    user = np.repeat(np.arange(n_users), counts)
    favourite = rng.integers(0, len(GENRES), n_users)[user]
    in_taste = rng.random(len(user)) < FAVOURITE_SHARE
    genre = np.where(in_taste, favourite, rng.integers(0, len(GENRES), len(user)))

    video = np.empty(len(user), np.int64)
    for g in range(len(GENRES)):   # popularity-weighted draws inside each genre
        members = np.flatnonzero((genre_of == g) & warm)
        rows = np.flatnonzero(genre == g)
        weights = popularity[members] / popularity[members].sum()
        video[rows] = members[rng.choice(len(members), len(rows), p=weights)]

    earliest = np.maximum(window_start, published[video])
    ts = earliest + rng.random(len(user)) * np.maximum(run_start - 60 - earliest, 0)
    frame = pd.DataFrame({"user": user, "video": video, "ts": ts, "in_taste": genre_of[video] == favourite})
    frame = frame.drop_duplicates(["user", "video"]).sort_values(["user", "ts"], kind="stable")

    taste = frame["in_taste"].to_numpy()
    draws = rng.random(len(frame))
    events = np.where(taste, _draw(draws, IN_TASTE_EVENT_P), _draw(draws, OUT_OF_TASTE_EVENT_P))
    low = np.array([WATCH_FRACTION[EVENTS[e]][0] for e in events])
    high = np.array([WATCH_FRACTION[EVENTS[e]][1] for e in events])
    width = max(3, len(str(n_users)))
    return pd.DataFrame({
        USER_ID: [f"u{u + 1:0{width}d}" for u in frame["user"].to_numpy()],
        VIDEO_ID: [videos[v].video_id for v in frame["video"].to_numpy()],
        TS: pd.to_datetime(frame["ts"].to_numpy(), unit="s", utc=True).strftime("%Y-%m-%dT%H:%M:%SZ"),
        EVENT: np.array(EVENTS)[events],
        WATCH_SECONDS: np.round((low + rng.random(len(frame)) * (high - low)) * CLIP_SECONDS, 2),
    })


def _draw(uniform: np.ndarray, probabilities) -> np.ndarray:
    return np.searchsorted(np.cumsum(probabilities), uniform * sum(probabilities), side="right").clip(
        0, len(probabilities) - 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.datasets.make_load_data", description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", required=True)
    parser.add_argument("--videos", type=int, default=50_000)
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--interactions", type=int, default=1_000_000)
    parser.add_argument("--media", type=int, default=300, help="videos with a rendered clip")
    parser.add_argument("--per-user", type=int, nargs=2, metavar=("LOW", "HIGH"),
                        help="each user draws LOW to HIGH interactions (uniform) instead of --interactions "
                             "spread over a heavy-tailed activity")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--run-date", default=DEFAULT_RUN_DATE)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    if min(args.videos, args.users, args.interactions) < 1 or not 0 <= args.media <= args.videos:
        parser.error("--videos, --users and --interactions must be >= 1, and --media between 0 and --videos")
    if args.per_user and not 1 <= args.per_user[0] <= args.per_user[1]:
        parser.error("--per-user needs 1 <= LOW <= HIGH")
    started = time.monotonic()
    wh = Warehouse.at(args.warehouse)
    catalog_rng, users_rng, media_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(args.seed).spawn(3))
    run_day = date.fromisoformat(args.run_date)
    videos = plan_catalog(catalog_rng, args.videos, run_day)
    with_media = set(media_rng.choice(args.videos, args.media, replace=False).tolist())
    for index, video in enumerate(videos):
        video.has_media = index in with_media
    rendered, reused = render_clips(videos, wh.landing_media, CLIP_SECONDS, args.workers,
                                    wh.root / "landing" / CLIPS_FILE, "ffmpeg")
    interactions = simulate_interactions(users_rng, videos, args.users, args.interactions, run_day, args.per_user)
    _write_atomic(wh.landing_catalog / CATALOG_FILE, catalog_jsonl(videos))
    _write_atomic(wh.landing_interactions / INTERACTIONS_FILE, interactions.to_csv(index=False))
    print(f"make_load_data: videos={len(videos)} media={len(with_media)} clips_rendered={rendered} "
          f"clips_reused={reused} users={interactions[USER_ID].nunique()} interactions={len(interactions)} "
          f"seconds={time.monotonic() - started:.1f} -> {wh.root / 'landing'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
