"""Blocked top-N: users in blocks against all item vectors, seen videos excluded.

Memory is one block of scores (block_size x n_items) at a time, never users x items.
"""

from __future__ import annotations

import numpy as np
import torch


def top_n(user_vectors: np.ndarray, item_vectors: np.ndarray, seen_indptr: np.ndarray, seen_items: np.ndarray,
          n: int, block_size: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Best `n` items per user by dot product, excluding each user's seen items.

    `seen_indptr`/`seen_items` are CSR rows: user u has seen items seen_items[indptr[u]:indptr[u+1]].
    Returns (items, scores), both (n_users, n); where a user has fewer than `n` eligible items the
    tail is item -1 with score -inf.
    """
    n_users, n_items = user_vectors.shape[0], item_vectors.shape[0]
    k = min(n, n_items)
    items = np.full((n_users, n), -1, np.int64)
    scores = np.full((n_users, n), -np.inf, np.float32)
    item_t = torch.from_numpy(np.ascontiguousarray(item_vectors, np.float32)).T.contiguous()
    with torch.inference_mode():
        for begin in range(0, n_users, block_size):
            end = min(begin + block_size, n_users)
            block = torch.from_numpy(np.ascontiguousarray(user_vectors[begin:end], np.float32)) @ item_t
            lo, hi = seen_indptr[begin], seen_indptr[end]
            rows = np.repeat(np.arange(end - begin), np.diff(seen_indptr[begin:end + 1]))
            block[torch.from_numpy(rows), torch.from_numpy(seen_items[lo:hi])] = -torch.inf
            best_scores, best_items = torch.topk(block, k, dim=1, sorted=True)
            items[begin:end, :k] = best_items.numpy()
            scores[begin:end, :k] = best_scores.numpy()
    items[~np.isfinite(scores)] = -1
    return items, scores
