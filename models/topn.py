"""Blocked top-N: users in blocks against the whole catalog, seen videos excluded.

Memory is one block of scores (block_size x n_items) at a time, never users x items.
"""

from __future__ import annotations

import numpy as np
import torch

from models.evaluation import Scorer, exclude_seen


def top_n(scorer: Scorer, n_users: int, seen_indptr: np.ndarray, seen_items: np.ndarray, n: int,
          block_size: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Best `n` items per user by `scorer(users)`, excluding each user's seen items.

    `seen_indptr`/`seen_items` are CSR rows: user u has seen items seen_items[indptr[u]:indptr[u+1]].
    Returns (items, scores), both (n_users, n); where a user has fewer than `n` eligible items the
    tail is item -1 with score -inf.
    """
    items = np.full((n_users, n), -1, np.int64)
    scores = None
    for begin in range(0, n_users, block_size):
        users = np.arange(begin, min(begin + block_size, n_users))
        block = np.asarray(scorer(users))
        if not block.flags.writeable:
            block = block.copy()
        if scores is None:  # the scorer's precision: float32 for vectors, float64 for re-ranked
            scores = np.full((n_users, n), -np.inf, block.dtype)
        exclude_seen(block, users, seen_indptr, seen_items)
        k = min(n, block.shape[1])
        best_scores, best_items = torch.topk(torch.from_numpy(block), k, dim=1, sorted=True)
        items[users, :k] = best_items.numpy()
        scores[users, :k] = best_scores.numpy()
    if scores is None:
        scores = np.full((n_users, n), -np.inf, np.float32)
    items[~np.isfinite(scores)] = -1
    return items, scores
