"""The best held-out quality any method can expect on a generated log: the Bayes-optimal ranking.

    python -m jobs.bench.ceiling --warehouse DIR --videos N [--run-date 2026-11-20] [--seed 7] \
        [--max-eval-users 20000] [--out FILE]

`jobs.datasets.make_load_data` draws each interaction independently: the user's favourite genre
with probability FAVOURITE_SHARE (else a uniform genre), a video of that genre by its Zipf
popularity, an event whose odds depend on whether the video is in the favourite genre, and a time
uniform between the video's publication (or the window's start) and the end of the window. Its
log has no order beyond that. Knowing those parameters, the probability that a video is a user's
held-out (most recent) one, given the training interactions, is

    P(favourite | history) x P(video | favourite) x P(its time comes after the user's newest)

and ranking the catalog by it maximises the expected hit rate; no learnt model can beat it on
average. It ignores only the generator's dropping of a user's repeated draws of one video.

This scores the warehouse's own leave-last-out slice (the evaluate stage's: the same users, the
same seen videos excluded, `models.evaluation.evaluate`), with the catalog's hidden parameters
regenerated from the generator's seed, so it puts a ceiling beside the night's table.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np

from jobs.datasets.make_demo_data import (DEFAULT_RUN_DATE, EVENTS, FAVOURITE_SHARE, GENRES, HISTORY_DAYS,
                                          IN_TASTE_EVENT_P, OUT_OF_TASTE_EVENT_P, DemoVideo, plan_catalog)
from jobs.datasets.make_load_data import DEFAULT_SEED
from jobs.plumbing import config
from jobs.plumbing.stage import write_json
from models.evaluation import Holdout, evaluate, leave_last_out
from models.training import IndexedInteractions


def generator_catalog(n_videos: int, run_day: date, seed: int) -> list[DemoVideo]:
    """The catalog `make_load_data --videos n_videos --seed seed` planned, hidden genres and
    popularity included (its first random stream)."""
    catalog_rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(3)[0])
    return plan_catalog(catalog_rng, n_videos, run_day)


class BayesOptimalScorer:
    """Scores each video by the probability that it is the user's next (most recent) interaction
    under the generator's own model, given the user's training interactions and their events."""

    def __init__(self, videos: list[DemoVideo], run_day: date, train: IndexedInteractions,
                 events: np.ndarray, n_users: int):
        n_genres = len(GENRES)
        index = {genre.name: g for g, genre in enumerate(GENRES)}
        self.genre = np.array([index[v.genre] for v in videos])
        popularity = np.array([0.0 if v.is_new else v.popularity for v in videos])
        self.in_genre = popularity / np.bincount(self.genre, popularity, n_genres)[self.genre]
        self.background = (1 - FAVOURITE_SHARE) / n_genres
        run_start = datetime.combine(run_day, datetime.min.time(), tzinfo=timezone.utc).timestamp()
        self.window_end = run_start - 60   # the generator's last possible time
        self.earliest = np.maximum(run_start - HISTORY_DAYS * 86400,
                                   np.array([v.published_at.timestamp() for v in videos]))
        self.span = np.maximum(self.window_end - self.earliest, 1.0)

        # Log-likelihood of every training interaction under each favourite genre.
        in_taste_event = np.log(np.asarray(IN_TASTE_EVENT_P) / sum(IN_TASTE_EVENT_P))[events]
        out_of_taste_event = np.log(np.asarray(OUT_OF_TASTE_EVENT_P) / sum(OUT_OF_TASTE_EVENT_P))[events]
        row_genre = self.genre[train.item]
        log_likelihood = np.zeros((n_users, n_genres))
        for favourite in range(n_genres):
            in_taste = row_genre == favourite
            row = np.log(np.where(in_taste, FAVOURITE_SHARE + self.background, self.background)) + \
                np.where(in_taste, in_taste_event, out_of_taste_event)
            log_likelihood[:, favourite] = np.bincount(train.user, row, n_users)
        posterior = np.exp(log_likelihood - log_likelihood.max(axis=1, keepdims=True))
        self.posterior = posterior / posterior.sum(axis=1, keepdims=True)
        self.newest = np.full(n_users, -np.inf)
        np.maximum.at(self.newest, train.user, train.ts)

    def __call__(self, users: np.ndarray) -> np.ndarray:
        taste = FAVOURITE_SHARE * self.posterior[users][:, self.genre] + self.background
        after_newest = np.clip((self.window_end - np.maximum(self.newest[users, None], self.earliest)) / self.span,
                               0, 1)
        return self.in_genre * taste * after_newest


def event_codes(names) -> np.ndarray:
    code = {name: i for i, name in enumerate(EVENTS)}
    return np.array([code[name] for name in names], np.int64)


def warehouse_ceiling(wh: config.Warehouse, n_videos: int, run_day: date, seed: int,
                      max_eval_users: int | None, eval_seed: int = config.DEFAULT_SEED) -> dict[str, float]:
    """The ceiling on the evaluate stage's leave-last-out slice of a generated warehouse."""
    from jobs.plumbing.model_inputs import index_interactions, load_items, load_interactions

    videos = generator_catalog(n_videos, run_day, seed)
    items = load_items(wh)
    if list(zip(items[config.VIDEO_ID], items[config.TITLE])) != [(v.video_id, v.title) for v in videos]:
        raise ValueError(f"the warehouse's catalog is not the one make_load_data plans for --videos {n_videos} "
                         f"--seed {seed} --run-date {run_day}")
    interactions = load_interactions(wh)
    user_ids = np.sort(interactions[config.USER_ID].unique()).astype(object)
    data = index_interactions(interactions, items[config.VIDEO_ID].to_numpy(object), user_ids)
    if len(data) != len(interactions):
        raise ValueError("interactions outside the catalog: not a make_load_data log")
    # load_interactions orders rows by user id and time, as index_interactions keeps them.
    holdout = leave_last_out(data, len(videos), max_eval_users, eval_seed)
    trained = np.ones(len(data), bool)
    trained[_held_rows(data, holdout)] = False
    events = event_codes(interactions[config.EVENT].to_numpy()[trained])
    scorer = BayesOptimalScorer(videos, run_day, holdout.train, events, len(user_ids))
    return evaluate(scorer, holdout, len(user_ids), len(videos))


def _held_rows(data: IndexedInteractions, holdout: Holdout) -> np.ndarray:
    """Row numbers in `data` of the held-out interactions (each evaluated user's last row)."""
    last_row = np.r_[np.flatnonzero(data.user[1:] != data.user[:-1]), len(data) - 1]
    return last_row[np.searchsorted(data.user[last_row], holdout.users)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.bench.ceiling", description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", required=True)
    parser.add_argument("--videos", type=int, required=True, help="make_load_data's --videos")
    parser.add_argument("--run-date", default=DEFAULT_RUN_DATE, help="make_load_data's --run-date")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="make_load_data's --seed")
    parser.add_argument("--max-eval-users", type=int, default=config.DEFAULT_MAX_EVAL_USERS)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    metrics = warehouse_ceiling(config.Warehouse.at(args.warehouse), args.videos,
                                date.fromisoformat(args.run_date), args.seed, args.max_eval_users)
    print(f"Bayes-optimal: NDCG@10 {metrics['ndcg@10']:.4f}, HR@10 {metrics['hr@10']:.4f}")
    if args.out:
        write_json(args.out, metrics)
    return 0


if __name__ == "__main__":
    sys.exit(main())
