"""The LightGBM LambdaRank re-ranker over the two-tower model's top candidates.

For each user the tower proposes its best `candidates` unseen videos; the ranker orders them with
features the tower does not see directly: the tower's own score and rank, how popular and how
recently popular a video is, how long it has been around, how often it is co-watched with the
user's recent videos (item-item cosine) and with their whole history, how close its content is to
their recent videos, and how active the user is. Videos outside the candidates keep the tower's order
below them, so a re-ranked scorer still ranks the whole catalog.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from models.evaluation import seen_csr
from models.topn import Scorer, exclude_seen, select_top
from models.training import IndexedInteractions

FEATURES = ("tower_score", "tower_rank", "log_popularity", "log_recent_popularity", "age_days",
            "knn_recent", "knn_history", "content_similarity", "log_user_activity")
RECENT_ITEMS = 5
RECENT_DAYS = 30.0
# Candidates are lifted above every other video by this much; tower scores are cosines in [-1, 1].
CANDIDATE_OFFSET = 1e6


@dataclass
class RankerContext:
    """What the features are computed from: one night's (or one split's) training interactions."""

    data: IndexedInteractions
    similarity: sparse.csr_matrix      # (n_items, n_items) item-item cosine, K neighbours per row
    content: np.ndarray                # (n_items, d) unit content vectors (zero rows: no content)
    n_users: int

    def __post_init__(self) -> None:
        n_items = self.similarity.shape[0]
        now = float(self.data.ts.max()) if len(self.data) else 0.0
        self.popularity = np.log1p(np.bincount(self.data.item, minlength=n_items)).astype(np.float32)
        recent = self.data.ts >= now - RECENT_DAYS * 86400
        self.recent_popularity = np.log1p(
            np.bincount(self.data.item[recent], minlength=n_items)).astype(np.float32)
        first_seen = np.full(n_items, np.inf)
        np.minimum.at(first_seen, self.data.item, self.data.ts)
        self.age_days = np.where(np.isfinite(first_seen), (now - first_seen) / 86400, np.nan)
        self.user_activity = np.log1p(np.bincount(self.data.user, minlength=self.n_users)).astype(np.float32)
        self.indptr, self.seen = seen_csr(self.data, self.n_users)
        # Each user's history as a row of weights, and the last few videos with recency weights.
        self.history = sparse.csr_matrix((np.ones(len(self.data), np.float32), (self.data.user, self.data.item)),
                                         shape=(self.n_users, n_items))
        # The lag-th latest video of every user with more than `lag` videos, weighted 0.7 ** lag.
        counts = np.diff(self.indptr)
        rows, cols, weights = [], [], []
        for lag in range(RECENT_ITEMS):
            users = np.flatnonzero(counts > lag)
            rows.append(users)
            cols.append(self.seen[self.indptr[users + 1] - 1 - lag])
            weights.append(np.full(len(users), 0.7 ** lag, np.float32))
        self.recent = sparse.csr_matrix((np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))),
                                        shape=(self.n_users, n_items))

    def features(self, users: np.ndarray, candidates: np.ndarray, tower_scores: np.ndarray) -> np.ndarray:
        """(len(users) * C, len(FEATURES)) rows, user-major, for a (len(users), C) candidate block."""
        n_users, n_cand = candidates.shape
        recent = self.recent[users]
        knn_recent = _at(recent @ self.similarity, candidates)
        knn_history = _at(self.history[users] @ self.similarity, candidates)
        profile = np.asarray(recent @ self.content)
        profile /= np.maximum(np.linalg.norm(profile, axis=1, keepdims=True), 1e-9)
        content_similarity = np.einsum("ud,ucd->uc", profile, self.content[candidates])
        activity = self.user_activity[users][:, None]
        columns = [tower_scores, np.broadcast_to(np.arange(n_cand), (n_users, n_cand)),
                   self.popularity[candidates], self.recent_popularity[candidates], self.age_days[candidates],
                   knn_recent, knn_history / np.maximum(np.expm1(activity), 1.0), content_similarity,
                   np.broadcast_to(activity, (n_users, n_cand))]
        return np.stack([np.asarray(c, np.float32).reshape(-1) for c in columns], axis=1)


def _at(matrix: sparse.csr_matrix, candidates: np.ndarray) -> np.ndarray:
    """matrix[u, candidates[u, c]] for every row u, without densifying (users x catalog) at scale."""
    rows = np.broadcast_to(np.arange(candidates.shape[0])[:, None], candidates.shape)
    return np.asarray(matrix.tocsr()[rows.ravel(), candidates.ravel()]).reshape(candidates.shape)


def top_candidates(tower: Scorer, ctx: RankerContext, users: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tower scores with seen videos at -inf, best `n` unseen items sorted by score, their scores)
    for a block of users."""
    scores = np.array(tower(users), np.float64)   # a copy: the tower may hand out a reused buffer
    exclude_seen(scores, users, ctx.indptr, ctx.seen)
    best, best_scores = select_top(scores, n)
    return scores, best, best_scores


def fit_ranker(tower: Scorer, ctx: RankerContext, users: np.ndarray, targets: np.ndarray, *,
               candidates: int = 200, seed: int = 7):
    """Fit LambdaRank on the users whose held-out `targets` are among the tower's candidates.

    Returns (ranker or None when there is too little to learn from, fit statistics).
    """
    import lightgbm as lgb

    blocks, labels, groups = [], [], []
    for begin in range(0, len(users), 512):
        block_users, block_targets = users[begin:begin + 512], targets[begin:begin + 512]
        _, cand, cand_scores = top_candidates(tower, ctx, block_users, candidates)
        hit = cand == block_targets[:, None]
        keep = hit.any(axis=1) & np.isfinite(cand_scores).all(axis=1)
        if keep.any():
            blocks.append(ctx.features(block_users[keep], cand[keep], cand_scores[keep]))
            labels.append(hit[keep].reshape(-1).astype(np.int32))
            groups += [cand.shape[1]] * int(keep.sum())
    stats = {"ranker_groups": len(groups), "ranker_users": int(len(users))}
    if len(groups) < 20:
        return None, stats
    ranker = lgb.LGBMRanker(objective="lambdarank", n_estimators=150, learning_rate=0.05, num_leaves=15,
                            min_child_samples=20, subsample=0.8, subsample_freq=1, colsample_bytree=0.9,
                            lambdarank_truncation_level=20, random_state=seed, deterministic=True,
                            force_row_wise=True, n_jobs=1, verbose=-1)
    ranker.fit(np.concatenate(blocks), np.concatenate(labels), group=groups, feature_name=list(FEATURES))
    return ranker, stats


class Reranked:
    """A scorer: the ranker's order over the tower's candidates, the tower's order below them
    (seen videos come back at -inf; every consumer of a scorer excludes them anyway)."""

    def __init__(self, tower: Scorer, ranker, ctx: RankerContext, candidates: int = 200):
        self.tower, self.ranker, self.ctx, self.candidates = tower, ranker, ctx, candidates

    def __call__(self, users: np.ndarray) -> np.ndarray:
        scores, cand, cand_scores = top_candidates(self.tower, self.ctx, users, self.candidates)
        predicted = self.ranker.predict(self.ctx.features(users, cand, cand_scores)).reshape(cand.shape)
        rows = np.arange(len(users))[:, None]
        eligible = np.isfinite(cand_scores)
        scores[rows, cand] = np.where(eligible, CANDIDATE_OFFSET + predicted, scores[rows, cand])
        return scores
