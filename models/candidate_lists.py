"""The published lists' computation for any block of users: what both scoring engines run.

The local engine (`jobs.score --engine local`) passes every user at once; the Spark engine
(`--engine spark`) passes each partition's batches of users, with the `ScoringModel` broadcast.
Either way `candidate_lists` cuts its users into blocks of `DEFAULT_BLOCK` and, for each block:

1. scores every video with the tower (one reused buffer per block) and rules out seen videos;
2. without a re-ranker, keeps the best `n`;
3. with one, takes the tower's best `candidates`, scores them with the ranker on the features of
   `models.ranker` (the code it was fitted and evaluated with) and keeps the best `n` by the
   ranker's score, equal scores by video index: the order of the evaluated `Reranked` scorer.

Every step is row by row, so a user's list does not depend on which users share the block.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.ranker import FEATURES, CatalogFeatures, UserHistories, ranker_features, ranker_predictions
from models.scoring import ItemVectors
from models.topn import DEFAULT_BLOCK, exclude_seen, select_top


@dataclass
class ScoringModel:
    """What scoring reads for every user, built once (the Spark engine broadcasts it)."""

    items: ItemVectors
    ranker: object | None = None             # a LightGBM Booster (or LGBMRanker); None: the tower alone
    catalog: CatalogFeatures | None = None   # the ranker's per-video features (needed with a ranker)
    candidates: int = 200                    # how many of the tower's best the ranker re-orders

    def __post_init__(self) -> None:
        if self.ranker is not None and self.catalog is None:
            raise ValueError("a re-ranker needs the catalog features its features are computed from")


@dataclass
class Users:
    """A block of users: their vectors and their interactions in time order (the seen videos,
    and what the ranker's per-user features read), as CSR rows over `videos`."""

    vectors: np.ndarray   # (users, dim) float32 unit vectors
    indptr: np.ndarray    # user r's videos are videos[indptr[r]:indptr[r + 1]], oldest first
    videos: np.ndarray    # int64 video indices, repeats kept

    def __len__(self) -> int:
        return len(self.vectors)

    @classmethod
    def from_lists(cls, vectors: np.ndarray, videos: list[np.ndarray]) -> "Users":
        """From one array of videos per user (a Spark batch's `seen` column)."""
        indptr = np.r_[0, np.cumsum([len(v) for v in videos])].astype(np.int64)
        flat = np.concatenate(videos).astype(np.int64) if indptr[-1] else np.zeros(0, np.int64)
        return cls(np.ascontiguousarray(vectors, np.float32), indptr, flat)

    def block(self, begin: int, end: int) -> "Users":
        first, last = self.indptr[begin], self.indptr[end]
        return Users(self.vectors[begin:end], self.indptr[begin:end + 1] - first, self.videos[first:last])


@dataclass
class CandidateLists:
    """Each user's best `n` unseen videos, best first."""

    videos: np.ndarray                  # (users, n) int64 video indices, -1: none (fewer unseen videos)
    scores: np.ndarray                  # (users, n) float64, -inf where videos is -1
    features: np.ndarray | None = None  # (users, n, len(FEATURES)) float32: what the ranker scored each with


def candidate_lists(model: ScoringModel, users: Users, n: int, block_size: int = DEFAULT_BLOCK,
                    ranker_threads: int | None = None, keep_features: bool = False) -> CandidateLists:
    """Best `n` unseen videos per user, best first.

    Scores are the tower's cosines, or with a re-ranker the ranker's scores. `ranker_threads`:
    LightGBM's threads (None: every CPU this process may use). `keep_features`, with a re-ranker: also
    the features each listed video was ranked with, which its explanation reads (computing them
    again would mean scoring the whole catalog for every user once more).
    """
    videos = np.full((len(users), n), -1, np.int64)
    scores = np.full((len(users), n), -np.inf)
    kept = np.zeros((len(users), n, len(FEATURES)), np.float32) \
        if keep_features and model.ranker is not None else None
    for begin in range(0, len(users), block_size):
        end = min(begin + block_size, len(users))
        best, best_scores, features = _block_lists(model, users.block(begin, end), n, ranker_threads)
        videos[begin:end, :best.shape[1]] = best
        scores[begin:end, :best.shape[1]] = best_scores
        if kept is not None:
            kept[begin:end, :best.shape[1]] = features
    videos[~np.isfinite(scores)] = -1
    return CandidateLists(videos, scores, kept)


def _block_lists(model: ScoringModel, block: Users, n: int,
                 ranker_threads: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    scores = model.items.scores(block.vectors)    # a reused buffer: seen videos are set in place
    exclude_seen(scores, np.arange(len(block)), block.indptr, block.videos)
    if model.ranker is None:
        return (*select_top(scores, n), None)
    candidates, tower_scores = select_top(scores, model.candidates)
    histories = UserHistories.from_seen(block.indptr, block.videos, len(model.items))
    features = ranker_features(model.catalog, histories, candidates, tower_scores)
    ranked = ranker_predictions(model.ranker, features, tower_scores, ranker_threads)
    # Best ranker score first, equal scores by video index; no candidate (-inf) last.
    order = np.lexsort((candidates, -ranked), axis=1)[:, :n]
    listed_features = features.reshape(*candidates.shape, -1)[np.arange(len(block))[:, None], order]
    return (np.take_along_axis(candidates, order, axis=1), np.take_along_axis(ranked, order, axis=1),
            listed_features)
