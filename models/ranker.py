"""The LightGBM LambdaRank re-ranker over the two-tower model's top candidates.

For each user the tower proposes its best `candidates` unseen videos; the ranker orders them with
features the tower does not see directly: the tower's own score and rank, how popular and how
recently popular a video is, how long it has been around, how often it is co-watched with the
user's recent videos (item-item cosine) and with their whole history, how often it is watched
soon after the user's recent videos and after their very last one (the order the tower's pooled
history does not keep), how close its content is to their recent videos, and how active the user is. Videos outside the candidates keep the tower's order
below them, so a re-ranked scorer still ranks the whole catalog.

The features come in two halves: per video (`CatalogFeatures`: popularity, age, the item-item
similarities, content) and per user (`UserHistories`: recent videos, whole history, activity).
`ranker_features` joins them for any block of users; fitting, evaluation and both scoring engines
(`models.candidate_lists`) all go through it, so the ranker is scored on the features it learnt from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from models.evaluation import seen_csr
from models.topn import Scorer, ScoreBuffer, exclude_seen, select_top
from models.training import IndexedInteractions

FEATURES = ("tower_score", "tower_rank", "log_popularity", "log_recent_popularity", "age_days",
            "knn_recent", "knn_history", "content_similarity", "log_user_activity", "next_recent", "next_last")
RECENT_ITEMS = 5
RECENT_DAYS = 30.0
# "Watched next" counts a video as following each of the same user's NEXT_WINDOW previous videos.
NEXT_WINDOW = 3
# Candidates are lifted above every other video by this much; tower scores are cosines in [-1, 1].
CANDIDATE_OFFSET = 1e6


@dataclass
class CatalogFeatures:
    """The per-video half of the features, from the interactions of one night (or one split).

    One copy serves every user: the Spark scoring engine broadcasts it to its partitions.
    """

    similarity: sparse.csr_matrix      # (n_items, n_items) item-item cosine, K neighbours per row
    content: np.ndarray                # (n_items, d) unit content vectors (zero rows: no content)
    popularity: np.ndarray             # log(1 + interactions)
    recent_popularity: np.ndarray      # the same over the last RECENT_DAYS
    age_days: np.ndarray               # days since the first interaction (NaN: none yet)
    next_videos: sparse.csr_matrix     # (n_items, n_items) share of a video's followers that are each video

    @classmethod
    def from_interactions(cls, data: IndexedInteractions, similarity: sparse.csr_matrix,
                          content: np.ndarray) -> "CatalogFeatures":
        n_items = similarity.shape[0]
        now = float(data.ts.max()) if len(data) else 0.0
        popularity = np.log1p(np.bincount(data.item, minlength=n_items)).astype(np.float32)
        recent = data.ts >= now - RECENT_DAYS * 86400
        recent_popularity = np.log1p(np.bincount(data.item[recent], minlength=n_items)).astype(np.float32)
        first_seen = np.full(n_items, np.inf)
        np.minimum.at(first_seen, data.item, data.ts)
        age_days = np.where(np.isfinite(first_seen), (now - first_seen) / 86400, np.nan)
        return cls(similarity, content, popularity, recent_popularity, age_days, next_videos(data, n_items))

    @property
    def n_items(self) -> int:
        return self.similarity.shape[0]


def next_videos(data: IndexedInteractions, n_items: int) -> sparse.csr_matrix:
    """Row i: how the videos watched within NEXT_WINDOW steps after video i (by the same user) are
    shared out, a first-order sequence model that costs one pass over the log (rows sum to 1)."""
    pairs_from, pairs_to = [], []
    for lag in range(1, NEXT_WINDOW + 1):
        same_user = np.flatnonzero(data.user[lag:] == data.user[:-lag])
        pairs_from.append(data.item[same_user])
        pairs_to.append(data.item[same_user + lag])
    source, target = np.concatenate(pairs_from), np.concatenate(pairs_to)
    counts = sparse.csr_matrix((np.ones(len(source), np.float32), (source, target)), shape=(n_items, n_items))
    followers = np.asarray(counts.sum(axis=1)).ravel()
    return (sparse.diags(1.0 / np.maximum(followers, 1.0)).astype(np.float32) @ counts).tocsr()


@dataclass
class UserHistories:
    """The per-user half: each user's videos as the rows the features read.

    Built from CSR rows of the users' interactions in time order (repeats kept), for all users at
    once or for any block of them: a user's rows, and so their features, are the same either way,
    which is what lets the two scoring engines split users differently and agree.
    """

    recent: sparse.csr_matrix     # (users, n_items) the latest RECENT_ITEMS videos, the lag-th weighted 0.7 ** lag
    history: sparse.csr_matrix    # (users, n_items) one per interaction (a video watched twice counts 2)
    activity: np.ndarray          # (users,) log(1 + interactions)
    last: sparse.csr_matrix       # (users, n_items) the latest video alone

    @classmethod
    def from_seen(cls, indptr: np.ndarray, videos: np.ndarray, n_items: int) -> "UserHistories":
        """User r's interactions are videos[indptr[r]:indptr[r + 1]], oldest first."""
        n_users = len(indptr) - 1
        counts = np.diff(indptr)
        history = sparse.csr_matrix((np.ones(int(indptr[-1]), np.float32),
                                     (np.repeat(np.arange(n_users), counts), videos[:indptr[-1]])),
                                    shape=(n_users, n_items))
        rows, cols, weights = [], [], []
        last = None
        for lag in range(RECENT_ITEMS):
            users = np.flatnonzero(counts > lag)
            rows.append(users)
            cols.append(videos[indptr[users + 1] - 1 - lag])
            weights.append(np.full(len(users), 0.7 ** lag, np.float32))
            if lag == 0:
                last = sparse.csr_matrix((weights[0], (rows[0], cols[0])), shape=(n_users, n_items))
        recent = sparse.csr_matrix((np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))),
                                   shape=(n_users, n_items))
        return cls(recent, history, np.log1p(counts).astype(np.float32), last)

    def rows(self, users: np.ndarray) -> "UserHistories":
        return UserHistories(self.recent[users], self.history[users], self.activity[users], self.last[users])


def ranker_features(catalog: CatalogFeatures, histories: UserHistories, candidates: np.ndarray,
                    tower_scores: np.ndarray) -> np.ndarray:
    """(rows * C, len(FEATURES)) rows, user-major, for a (rows, C) block of candidates of the users
    of `histories` (one row each, in the same order)."""
    n_users, n_cand = candidates.shape
    recent = histories.recent
    knn_recent = _at(recent @ catalog.similarity, candidates)
    knn_history = _at(histories.history @ catalog.similarity, candidates)
    profile = np.asarray(recent @ catalog.content, np.float32)
    profile /= np.maximum(np.linalg.norm(profile, axis=1, keepdims=True), 1e-9)
    # Row by row in float32: gathering every row's candidates at once copies (rows, C, content width)
    # floats, and a float64 profile made that copy twice as wide (20x slower at 50,000 videos).
    content_similarity = np.empty((n_users, n_cand), np.float32)
    for row in range(n_users):
        content_similarity[row] = catalog.content[candidates[row]] @ profile[row]
    next_recent = _at(recent @ catalog.next_videos, candidates)
    next_last = _at(histories.last @ catalog.next_videos, candidates)
    activity = histories.activity[:, None]
    columns = [tower_scores, np.broadcast_to(np.arange(n_cand), (n_users, n_cand)),
               catalog.popularity[candidates], catalog.recent_popularity[candidates], catalog.age_days[candidates],
               knn_recent, knn_history / np.maximum(np.expm1(activity), 1.0), content_similarity,
               np.broadcast_to(activity, (n_users, n_cand)), next_recent, next_last]
    return np.stack([np.asarray(c, np.float32).reshape(-1) for c in columns], axis=1)


def candidate_scores(ranker, catalog: CatalogFeatures, histories: UserHistories, candidates: np.ndarray,
                     tower_scores: np.ndarray, threads: int | None = None) -> np.ndarray:
    """The ranker's score of each of a (rows, C) block of candidates; -inf where a row has no
    candidate there (tower score -inf: fewer unseen videos than C). `threads`: LightGBM's threads
    (None: every CPU this process may use)."""
    return ranker_predictions(ranker, ranker_features(catalog, histories, candidates, tower_scores),
                              tower_scores, threads)


def ranker_predictions(ranker, features: np.ndarray, tower_scores: np.ndarray,
                       threads: int | None = None) -> np.ndarray:
    """The ranker's scores of `features` (`ranker_features` of a (rows, C) candidate block whose
    tower scores are `tower_scores`), shaped (rows, C); -inf where the block has no candidate."""
    predicted = ranker.predict(features, num_threads=threads or usable_cpus()).reshape(tower_scores.shape)
    return np.where(np.isfinite(tower_scores), predicted, -np.inf)


def usable_cpus() -> int:
    """LightGBM's threads where a caller sets none (a Spark task passes its share): every CPU this
    process may run on. `deterministic` makes the fit's trees the same for any thread count; one
    thread left a core of the local stages idle through the fit, the re-ranking and the SHAP
    values."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass
class RankerContext:
    """What the features of every user are computed from: one night's (or one split's) training
    interactions, for fitting and evaluating the ranker over all users."""

    data: IndexedInteractions
    catalog: CatalogFeatures
    n_users: int

    def __post_init__(self) -> None:
        self.indptr, self.seen = seen_csr(self.data, self.n_users)
        self.histories = UserHistories.from_seen(self.indptr, self.seen, self.catalog.n_items)

    def features(self, users: np.ndarray, candidates: np.ndarray, tower_scores: np.ndarray) -> np.ndarray:
        """(len(users) * C, len(FEATURES)) rows, user-major, for a (len(users), C) candidate block."""
        return ranker_features(self.catalog, self.histories.rows(users), candidates, tower_scores)


def _at(matrix: sparse.csr_matrix, candidates: np.ndarray) -> np.ndarray:
    """matrix[u, candidates[u, c]] for every row u, without densifying (users x catalog) at scale.

    One binary search of every (row, column) key among the stored entries' keys, which a
    canonical CSR matrix holds in order: scipy's fancy indexing took a fifth of a night's training.
    """
    matrix = matrix.tocsr(copy=True)
    matrix.sum_duplicates()   # sorted column indices within each row, no repeats
    n_rows, n_cols = matrix.shape
    stored = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(matrix.indptr)) * n_cols + matrix.indices
    wanted = (np.arange(candidates.shape[0], dtype=np.int64)[:, None] * n_cols + candidates).ravel()
    at = np.minimum(np.searchsorted(stored, wanted), max(len(stored) - 1, 0))
    found = (candidates.ravel() >= 0) & (stored[at] == wanted) if len(stored) else np.zeros(len(wanted), bool)
    values = np.zeros(len(wanted), matrix.dtype)
    values[found] = matrix.data[at[found]]
    return values.reshape(candidates.shape)


def top_candidates(tower: Scorer, ctx: RankerContext, users: np.ndarray, n: int,
                   buffer: ScoreBuffer | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tower scores with seen videos at -inf, best `n` unseen items sorted by score, their scores)
    for a block of users; the scores are written into `buffer` when given (a fresh array otherwise)."""
    # A copy: the tower may hand out a reused buffer.
    scores = (buffer or ScoreBuffer()).copy(tower(users))
    exclude_seen(scores, users, ctx.indptr, ctx.seen)
    best, best_scores = select_top(scores, n)
    return scores, best, best_scores


def fit_ranker(tower: Scorer, ctx: RankerContext, users: np.ndarray, targets: np.ndarray, *,
               candidates: int = 200, seed: int = 7):
    """Fit LambdaRank on the users whose held-out `targets` are among the tower's candidates.

    Returns (ranker or None when there is too little to learn from, fit statistics).
    """

    blocks, labels, groups, buffer = [], [], [], ScoreBuffer()
    for begin in range(0, len(users), 512):
        block_users, block_targets = users[begin:begin + 512], targets[begin:begin + 512]
        _, cand, cand_scores = top_candidates(tower, ctx, block_users, candidates, buffer)
        hit = cand == block_targets[:, None]
        keep = hit.any(axis=1) & np.isfinite(cand_scores).all(axis=1)
        if keep.any():
            blocks.append(ctx.features(block_users[keep], cand[keep], cand_scores[keep]))
            labels.append(hit[keep].reshape(-1).astype(np.int32))
            groups += [cand.shape[1]] * int(keep.sum())
    stats = {"ranker_groups": len(groups), "ranker_users": int(len(users))}
    if len(groups) < 20:
        return None, stats
    ranker = ranker_estimator(seed)
    ranker.fit(np.concatenate(blocks), np.concatenate(labels), group=groups, feature_name=list(FEATURES))
    return ranker, stats


def ranker_estimator(seed: int, threads: int | None = None):
    """The re-ranker, unfitted: LambdaRank over the candidates' features. `deterministic` (with
    row-wise histograms) makes its trees the same for any thread count, so it may use every CPU."""
    import lightgbm as lgb

    return lgb.LGBMRanker(objective="lambdarank", n_estimators=150, learning_rate=0.05, num_leaves=15,
                          min_child_samples=20, subsample=0.8, subsample_freq=1, colsample_bytree=0.9,
                          lambdarank_truncation_level=20, random_state=seed, deterministic=True,
                          force_row_wise=True, n_jobs=threads or usable_cpus(), verbose=-1)


def feature_gain(ranker) -> dict[str, float]:
    """Feature -> total gain of a fitted LGBMRanker or a loaded Booster (empty without a ranker)."""
    booster = getattr(ranker, "booster_", ranker)
    if booster is None:
        return {}
    return dict(zip(booster.feature_name(), map(float, booster.feature_importance("gain"))))


class Reranked:
    """A scorer: the ranker's order over the tower's candidates, the tower's order below them
    (seen videos come back at -inf; every consumer of a scorer excludes them anyway). Like the
    tower's, its scores are a buffer reused by the next call."""

    def __init__(self, tower: Scorer, ranker, ctx: RankerContext, candidates: int = 200):
        self.tower, self.ranker, self.ctx, self.candidates = tower, ranker, ctx, candidates
        self._buffer = ScoreBuffer()

    def __call__(self, users: np.ndarray) -> np.ndarray:
        scores, cand, cand_scores = top_candidates(self.tower, self.ctx, users, self.candidates, self._buffer)
        predicted = candidate_scores(self.ranker, self.ctx.catalog, self.ctx.histories.rows(users), cand, cand_scores)
        rows = np.arange(len(users))[:, None]
        eligible = np.isfinite(cand_scores)
        scores[rows, cand] = np.where(eligible, CANDIDATE_OFFSET + predicted, scores[rows, cand])
        return scores
