"""Why each published video is in its user's list: the watched video behind it, a reason code, the
share of its score each modality carries, and the re-ranker's strongest features.

- **because**: of the user's history (their interactions other than skips), the video whose item
  vector is closest (cosine) to the recommended one's, under the model's own item vectors. When
  even the closest is below `MIN_SUPPORT`, nothing in the history supports the pick and
  `because` is empty (-1).
- **reason**: `similar_to_watched` (a `because`, and the video has a trained ID embedding),
  `new_video_like_watched` (a `because`, the video stands on content alone: new or never
  watched), else `popular_recently` (among the catalog's most watched of the last 30 days),
  `new_video` (content alone) or `matches_your_taste` (the user vector fits it, no single video does).
- **modality shares**, by ablation inside the item tower: the video's vector is encoded again with
  one modality's input removed (its feature blocks and presence flags zeroed: text, visual
  (the frame features and the thumbnail), audio; or, for `collaborative`, without its ID
  embedding), and the score `user . item` is taken again with the user vector fixed. Each
  modality's drop `max(score - ablated score, 0)` is its weight; the shares are the weights over
  their sum. A modality the video does not have gets exactly 0 (nothing to remove). When no
  removal lowers the score (every weight 0), the whole share goes to the modality the video has
  whose removal costs the most (the largest, least negative change; ties in the order of
  `MODALITIES`), or to `collaborative` when it has none. So the shares of every row are
  non-negative and sum to 1. The shares are of the tower's score, the ranker's main input.
- **ranker_top_features**: with a LightGBM re-ranker, its three largest SHAP contributions
  (`pred_contrib`) to the row's score, by absolute value, on the features it scored the row with.

Every step is row by row over blocks of users (`explain_lists`), like `models.candidate_lists`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from models.candidate_lists import ScoringModel, Users
from models.ranker import FEATURES, UserHistories, ranker_features
from models.topn import DEFAULT_BLOCK, exclude_seen, select_top
from models.tree_contributions import TreeContributions
from models.training import IndexedInteractions
from models.two_tower import TwoTower

MODALITIES = ("text", "visual", "audio", "collaborative")
SIMILAR_TO_WATCHED = "similar_to_watched"
NEW_VIDEO_LIKE_WATCHED = "new_video_like_watched"
POPULAR_RECENTLY = "popular_recently"
NEW_VIDEO = "new_video"
MATCHES_YOUR_TASTE = "matches_your_taste"
REASONS = (SIMILAR_TO_WATCHED, NEW_VIDEO_LIKE_WATCHED, POPULAR_RECENTLY, NEW_VIDEO, MATCHES_YOUR_TASTE)
# The least cosine between a history video's vector and the recommended one's that counts as support.
MIN_SUPPORT = 0.2
# "Popular recently": among this share of the catalog with the most interactions in the last RECENT_DAYS.
POPULAR_SHARE = 0.1
RECENT_DAYS = 30.0
# Interactions weighted below this (skips) never explain a pick.
MIN_SUPPORT_WEIGHT = 1.0
TOP_FEATURES = 3


@dataclass
class AblatedItems:
    """Item vectors with one modality removed, for the items that have it (the others are unchanged)."""

    position: np.ndarray   # (n_items,) row in `vectors`, -1 where the item lacks the modality
    vectors: np.ndarray    # (items with the modality, dim) unit vectors


def ablated_item_vectors(model: TwoTower, content: np.ndarray, model_item: np.ndarray, use_id: np.ndarray,
                         columns: dict[str, np.ndarray], present: dict[str, np.ndarray],
                         block_size: int = 8192) -> dict[str, AblatedItems]:
    """Modality -> the item tower's vectors without it. `columns`/`present`: each content modality's
    columns and which items have it (`ContentStats.modality_columns`/`modality_present`);
    `collaborative` removes the ID embedding of the items that use one (`use_id`)."""
    result = {}
    model.eval()
    for modality in MODALITIES:
        rows = np.flatnonzero(use_id if modality == "collaborative" else present[modality])
        vectors = np.zeros((len(rows), model.cfg.dim), np.float32)
        for begin in range(0, len(rows), block_size):
            take = rows[begin:begin + block_size]
            block = content[take].copy()
            ids = use_id[take].copy()
            if modality == "collaborative":
                ids[:] = False
            else:
                block[:, columns[modality]] = 0.0
            with torch.inference_mode():
                vectors[begin:begin + len(take)] = model.encode_items(
                    torch.from_numpy(block), torch.from_numpy(model_item[take]), torch.from_numpy(ids)).numpy()
        position = np.full(len(content), -1, np.int64)
        position[rows] = np.arange(len(rows))
        result[modality] = AblatedItems(position, vectors)
    return result


def popular_recently(data: IndexedInteractions, n_items: int, share: float = POPULAR_SHARE,
                     days: float = RECENT_DAYS) -> np.ndarray:
    """Which items are among the `share` of the catalog with the most interactions in the last
    `days` of `data` (at least one)."""
    if not len(data):
        return np.zeros(n_items, bool)
    recent = data.ts >= float(data.ts.max()) - days * 86400
    counts = np.bincount(data.item[recent], minlength=n_items)
    floor = np.sort(counts)[::-1][max(0, int(np.ceil(share * n_items)) - 1)]
    return counts >= max(floor, 1)


@dataclass
class Explainer:
    """What explaining reads for every user, built once."""

    items: np.ndarray                     # (n_items, dim) the model's unit item vectors
    ablated: dict[str, AblatedItems]      # modality -> vectors without it
    warm: np.ndarray                      # (n_items,) bool: the video has a trained ID embedding
    popular: np.ndarray                   # (n_items,) bool: popular_recently
    scoring: ScoringModel | None = None   # with a ranker: what the lists were re-ranked with


@dataclass
class Explanations:
    """One row per listed (user, rank), user-major, in the order of the valid entries of the lists."""

    because: np.ndarray             # int64 video index, -1: nothing in the history supports it
    because_similarity: np.ndarray  # float64, NaN where because is -1
    reason: np.ndarray              # object, codes of REASONS
    shares: np.ndarray              # (rows, len(MODALITIES)) float64, each row sums to 1
    top_features: np.ndarray | None = None         # (rows, TOP_FEATURES) feature index into FEATURES
    top_contributions: np.ndarray | None = None    # (rows, TOP_FEATURES) SHAP values


def modality_shares(explainer: Explainer, user_vectors: np.ndarray, videos: np.ndarray) -> np.ndarray:
    """(rows, len(MODALITIES)) shares of each (user row, video) pair's tower score; see the module
    docstring for the rule."""
    users = np.asarray(user_vectors, np.float64)
    full = np.einsum("rd,rd->r", users, explainer.items[videos].astype(np.float64))
    change = np.zeros((len(videos), len(MODALITIES)))
    present = np.zeros((len(videos), len(MODALITIES)), bool)
    for column, modality in enumerate(MODALITIES):
        ablated = explainer.ablated[modality]
        position = ablated.position[videos]
        present[:, column] = position >= 0
        rows = np.flatnonzero(present[:, column])
        without = np.einsum("rd,rd->r", users[rows], ablated.vectors[position[rows]].astype(np.float64))
        change[rows, column] = full[rows] - without
    weights = np.where(present, np.maximum(change, 0.0), 0.0)
    total = weights.sum(axis=1, keepdims=True)
    shares = np.divide(weights, total, out=np.zeros_like(weights), where=total > 0)
    fallback = np.flatnonzero(total[:, 0] <= 0)
    if len(fallback):
        candidates = np.where(present[fallback], change[fallback], -np.inf)
        chosen = np.where(present[fallback].any(axis=1), np.argmax(candidates, axis=1),
                          MODALITIES.index("collaborative"))
        shares[fallback] = 0.0
        shares[fallback, chosen] = 1.0
    return shares


def _because(items: np.ndarray, best: np.ndarray, indptr: np.ndarray, history: np.ndarray,
             min_support: float) -> tuple[np.ndarray, np.ndarray]:
    """(video index or -1, cosine) of the closest supporting history video of each listed video."""
    because = np.full(best.shape, -1, np.int64)
    similarity = np.full(best.shape, np.nan)
    for row in range(len(best)):
        watched = np.unique(history[indptr[row]:indptr[row + 1]])
        listed = np.flatnonzero(best[row] >= 0)
        if not len(watched) or not len(listed):
            continue
        cosines = items[best[row, listed]] @ items[watched].T   # unit vectors: cosines
        closest = np.argmax(cosines, axis=1)                     # ties: the lower video index
        value = cosines[np.arange(len(listed)), closest].astype(np.float64)
        supported = value >= min_support
        because[row, listed[supported]] = watched[closest[supported]]
        similarity[row, listed[supported]] = value[supported]
    return because, similarity


def listed_ranker_features(scoring: ScoringModel, block: Users, best: np.ndarray) -> np.ndarray:
    """(rows * n, len(FEATURES)) the features the ranker scored each listed video of `best` with,
    computed again from the tower: its score and its rank among the tower's candidates, as
    `models.candidate_lists` computed them."""
    tower = np.array(scoring.items.scores(block.vectors), np.float64)
    exclude_seen(tower, np.arange(len(block)), block.indptr, block.videos)
    candidates, _ = select_top(tower, scoring.candidates)
    listed = np.maximum(best, 0)
    tower_rank = np.argmax(candidates[:, None, :] == listed[:, :, None], axis=2)
    tower_scores = np.take_along_axis(tower, listed, axis=1)
    histories = UserHistories.from_seen(block.indptr, block.videos, len(scoring.items))
    features = ranker_features(scoring.catalog, histories, listed, tower_scores)
    features[:, FEATURES.index("tower_rank")] = tower_rank.reshape(-1)
    return features


def ranker_contributions(scoring: ScoringModel, block: Users, best: np.ndarray, threads: int | None = None) -> np.ndarray:
    """(rows * n, len(FEATURES) + 1) SHAP values of the ranker's score of each listed video (last
    column: the expected value), on the features it ranked that video with."""
    return TreeContributions(scoring.ranker)(listed_ranker_features(scoring, block, best), threads)


def explain_lists(explainer: Explainer, users: Users, supports: tuple[np.ndarray, np.ndarray], best: np.ndarray,
                  *, features: np.ndarray | None = None, min_support: float = MIN_SUPPORT,
                  block_size: int = DEFAULT_BLOCK, ranker_threads: int | None = None) -> Explanations:
    """Explanations of the lists `best` ((users, n) video indices, -1: none) of `users`.

    `supports`: CSR rows (indptr, videos) of the interactions that may explain a pick (not skips).
    `features`: with a ranker, the features each listed video was ranked with, (users, n,
    len(FEATURES)) as `candidate_lists(keep_features=True)` keeps them; None: computed again
    (`listed_ranker_features`), for lists that were not computed in this process.
    """
    parts, ranked_with = [], []
    support_indptr, support_videos = supports
    ranked = explainer.scoring is not None and explainer.scoring.ranker is not None
    for begin in range(0, len(users), block_size):
        end = min(begin + block_size, len(users))
        block, block_best = users.block(begin, end), best[begin:end]
        valid = block_best >= 0
        first, last = support_indptr[begin], support_indptr[end]
        because, similarity = _because(explainer.items, block_best, support_indptr[begin:end + 1] - first,
                                       support_videos[first:last], min_support)
        rows = np.repeat(np.arange(end - begin), block_best.shape[1])[valid.reshape(-1)]
        videos = block_best[valid]
        shares = modality_shares(explainer, block.vectors[rows], videos)
        part = {"because": because[valid], "similarity": similarity[valid], "shares": shares, "videos": videos}
        if ranked:
            ranked_with.append(features[begin:end][valid] if features is not None else
                               listed_ranker_features(explainer.scoring, block, block_best)[valid.reshape(-1)])
        parts.append(part)

    def joined(key: str, shape: tuple, dtype) -> np.ndarray:
        return np.concatenate([p[key] for p in parts]) if parts else np.zeros(shape, dtype)

    videos = joined("videos", (0,), np.int64)
    because = joined("because", (0,), np.int64)
    reason = _reasons(because >= 0, explainer.warm[videos], explainer.popular[videos])
    top_features = top_contributions = None
    if ranked:
        # Every row at once: each tree's values are computed once per way rows pass it, and a
        # block of users has nearly as many ways as the whole list.
        rows = np.concatenate(ranked_with) if ranked_with else np.zeros((0, len(FEATURES)), np.float32)
        contributions = TreeContributions(explainer.scoring.ranker)(rows, ranker_threads)[:, :len(FEATURES)]
        top_features = np.argsort(-np.abs(contributions), axis=1, kind="stable")[:, :TOP_FEATURES]
        top_contributions = np.take_along_axis(contributions, top_features, axis=1)
    return Explanations(because, joined("similarity", (0,), np.float64), reason,
                        joined("shares", (0, len(MODALITIES)), np.float64), top_features, top_contributions)


def _reasons(supported: np.ndarray, warm: np.ndarray, popular: np.ndarray) -> np.ndarray:
    return np.select(
        [supported & warm, supported, popular, ~warm],
        [SIMILAR_TO_WATCHED, NEW_VIDEO_LIKE_WATCHED, POPULAR_RECENTLY, NEW_VIDEO],
        default=MATCHES_YOUR_TASTE).astype(object)
