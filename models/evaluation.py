"""Held-out evaluation: every method ranks the whole catalog for each user, and the rank of one
held-out video is measured. Two protocols choose it: leave-last-out (each user's most recent video;
full nights) and after-cutoff (each user's first new video after a time, nothing after it trained
on; incremental nights, where a warm-started model has already learnt most users' last videos).

A scorer is any callable `scorer(users) -> scores` returning a (len(users), n_items) array; the
videos a user already interacted with in training are excluded here, the same way for every method.
Ranks are exact over the full catalog, with ties counted at their expected position (half the tied
items ahead), so a method that gives many videos the same score gains nothing from the tie order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.topn import Scorer, ScoreBuffer, exclude_seen, select_top
from models.training import IndexedInteractions

CUTOFFS = (10, 50)


@dataclass
class Holdout:
    """Training interactions and, for each evaluated user, the held-out most recent video."""

    train: IndexedInteractions
    users: np.ndarray   # user index of each evaluated user
    items: np.ndarray   # the held-out video of that user
    cold: np.ndarray    # whether that video has no interaction in `train`


def leave_last_out(data: IndexedInteractions, n_items: int, max_users: int | None = None,
                   seed: int = 7) -> Holdout:
    """Hold out each user's last interaction (data is sorted by user, then time).

    Users with a single interaction stay in training whole and are not evaluated: with nothing
    left to learn from, their held-out video would measure only popularity. With `max_users`, a
    seeded random sample of that many users is evaluated (the others' last interactions stay in
    training): on a large platform a sample measures the same thing in a fraction of the time.
    """
    n = len(data)
    last = np.r_[data.user[1:] != data.user[:-1], True] if n else np.zeros(0, bool)
    first = np.r_[True, data.user[1:] != data.user[:-1]] if n else np.zeros(0, bool)
    held = last & ~first
    if max_users is not None and held.sum() > max_users:
        positions = np.flatnonzero(held)
        keep = np.random.default_rng(seed).choice(len(positions), max_users, replace=False)
        held = np.zeros(n, bool)
        held[positions[keep]] = True
    train = data.subset(~held)
    counts = np.bincount(train.item, minlength=n_items)
    items = data.item[held]
    return Holdout(train=train, users=data.user[held], items=items, cold=counts[items] == 0)


def after_cutoff(data: IndexedInteractions, n_items: int, cutoff: float, max_users: int | None = None,
                 seed: int = 7) -> Holdout:
    """Train on the interactions up to `cutoff` (Unix seconds); hold out, for each user with
    interactions on both sides of it, every video after it that the user had not watched before
    (one evaluated row each: a user with three new videos is measured three times, each time
    ranking one of them against the whole catalog but what the user watched before the cutoff).

    Nothing after the cutoff is trained on: every method sees the same past. Users with nothing
    before the cutoff are not evaluated (as in leave_last_out: with no history their videos would
    measure only popularity). `max_users`: a seeded sample of the users, with all their rows.
    """
    before = data.ts <= cutoff
    train = data.subset(before)
    pairs = data.user * n_items + data.item
    with_history = np.zeros(int(data.user.max(initial=-1)) + 1, bool)
    with_history[train.user] = True
    rows = np.flatnonzero(~before & with_history[data.user] & ~np.isin(pairs, pairs[before]))
    rows = rows[np.unique(pairs[rows], return_index=True)[1]]   # a video watched twice is one row
    rows.sort()
    users = np.unique(data.user[rows])
    if max_users is not None and len(users) > max_users:
        chosen = np.random.default_rng(seed).choice(users, max_users, replace=False)
        rows = rows[np.isin(data.user[rows], chosen)]
    counts = np.bincount(train.item, minlength=n_items)
    items = data.item[rows]
    return Holdout(train=train, users=data.user[rows], items=items, cold=counts[items] == 0)


def sample_users(holdout: Holdout, max_users: int | None, seed: int = 7) -> Holdout:
    """The same slice with at most `max_users` of its evaluated users (a seeded sample, in order);
    the training interactions stay as they are."""
    if max_users is None or len(holdout.users) <= max_users:
        return holdout
    keep = np.sort(np.random.default_rng(seed).choice(len(holdout.users), max_users, replace=False))
    return Holdout(holdout.train, holdout.users[keep], holdout.items[keep], holdout.cold[keep])


def seen_csr(data: IndexedInteractions, n_users: int) -> tuple[np.ndarray, np.ndarray]:
    """(indptr, items): user u's interacted videos are items[indptr[u]:indptr[u + 1]]."""
    order = np.argsort(data.user, kind="stable")
    indptr = np.r_[0, np.cumsum(np.bincount(data.user, minlength=n_users))]
    return indptr, data.item[order]


def rank_metrics(ranks: np.ndarray) -> dict[str, float]:
    """HR@k (= Recall@k with one held-out video), NDCG@k and MRR from 1-based ranks."""
    if not len(ranks):
        return {}
    out = {}
    for k in CUTOFFS:
        hit = ranks <= k
        out[f"hr@{k}"] = float(hit.mean())
        out[f"ndcg@{k}"] = float(ndcg_gains(ranks, k).mean())
    out["mrr"] = float((1.0 / ranks).mean())
    return out


def ndcg_gains(ranks: np.ndarray, k: int = 10) -> np.ndarray:
    """Each row's NDCG@k (one held-out video: 1 / log2(rank + 1) inside the top k, else 0)."""
    return np.where(ranks <= k, 1.0 / np.log2(ranks + 1.0), 0.0)


def paired_ratio_interval(gains: np.ndarray, reference: np.ndarray, groups: np.ndarray, level: float = 0.9,
                          rounds: int = 2000, seed: int = 7) -> tuple[float, float]:
    """A bootstrap interval of mean(gains) / mean(reference), two methods measured on the same rows.

    Whole groups (users: a user's rows are not independent) are drawn with replacement, and both
    methods are measured on the same draw, so what they share cancels out of the ratio.
    """
    _, group = np.unique(groups, return_inverse=True)
    per_group, reference_per_group = np.bincount(group, gains), np.bincount(group, reference)
    draws = np.random.default_rng(seed).integers(0, len(per_group), (rounds, len(per_group)))
    numerator, denominator = per_group[draws].sum(axis=1), reference_per_group[draws].sum(axis=1)
    ratios = numerator[denominator > 0] / denominator[denominator > 0]
    if not len(ratios):
        return float("nan"), float("nan")
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(ratios, [tail, 100 - tail])
    return float(low), float(high)


def held_out_ranks(scorer: Scorer, holdout: Holdout, n_users: int, n_items: int,
                   block_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """The 1-based rank of each held-out video among the videos its user had not seen, and which
    videos appeared in any top-10 list (n_items bools)."""
    indptr, seen = seen_csr(holdout.train, n_users)
    ranks = np.zeros(len(holdout.users), np.float64)
    shown = np.zeros(n_items, bool)
    buffer = ScoreBuffer()   # a copy: the scorer may hand out its own reused buffer, or shared state
    for begin in range(0, len(holdout.users), block_size):
        users = holdout.users[begin:begin + block_size]
        targets = holdout.items[begin:begin + block_size]
        scores = buffer.copy(scorer(users))
        exclude_seen(scores, users, indptr, seen)
        target = scores[np.arange(len(users)), targets][:, None]
        ahead = (scores > target).sum(axis=1)
        tied = (scores == target).sum(axis=1) - 1
        ranks[begin:begin + block_size] = 1.0 + ahead + tied / 2.0
        top, best = select_top(scores, 10)
        shown[top[np.isfinite(best)]] = True
    return ranks, shown


def evaluate(scorer: Scorer, holdout: Holdout, n_users: int, n_items: int,
             block_size: int = 1024) -> dict[str, float]:
    """Metrics of one method on the held-out videos, overall and on cold-start videos alone.

    `coverage@10` is the share of the catalog that appears in at least one top-10 list.
    """
    return summarise(*held_out_ranks(scorer, holdout, n_users, n_items, block_size), holdout)


def summarise(ranks: np.ndarray, shown: np.ndarray, holdout: Holdout) -> dict[str, float]:
    """`evaluate`'s metrics from `held_out_ranks`' result."""
    metrics = rank_metrics(ranks)
    metrics["coverage@10"] = float(shown.mean()) if len(shown) else 0.0
    metrics["users"] = int(len(ranks))
    cold = rank_metrics(ranks[holdout.cold])
    metrics.update({f"cold_{name}": value for name, value in cold.items()})
    metrics["cold_users"] = int(holdout.cold.sum())
    return metrics
