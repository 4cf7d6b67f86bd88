"""Blocked top-N against a brute-force reference."""

import subprocess
import sys

import numpy as np

from models.topn import select_top, top_n
from tests.conftest import PROJECT_ROOT, project_env


def _csr(seen: list[list[int]]):
    indptr = np.r_[0, np.cumsum([len(s) for s in seen])]
    return indptr, np.array([i for s in seen for i in s], np.int64)


def test_blocked_top_n_matches_brute_force_and_excludes_seen():
    rng = np.random.default_rng(0)
    users, items = rng.normal(size=(37, 8)).astype(np.float32), rng.normal(size=(50, 8)).astype(np.float32)
    seen = [list(rng.choice(50, size=rng.integers(0, 10), replace=False)) for _ in range(37)]
    indptr, seen_items = _csr(seen)
    got_items, got_scores = top_n(lambda u: users[u] @ items.T, 37, indptr, seen_items, n=5, block_size=8)
    scores = users @ items.T
    for u in range(37):
        scores[u, seen[u]] = -np.inf
        expected = np.argsort(-scores[u], kind="stable")[:5]
        assert np.allclose(got_scores[u], scores[u, expected], atol=1e-5)
        assert not set(got_items[u]) & set(seen[u])


def test_fewer_eligible_videos_than_n_leaves_an_empty_tail():
    users, items = np.ones((1, 2), np.float32), np.array([[1, 0], [0, 1], [2, 2]], np.float32)
    got_items, got_scores = top_n(lambda u: users[u] @ items.T, 1, np.array([0, 1]), np.array([2]), n=5)
    assert list(got_items[0]) == [0, 1, -1, -1, -1] or list(got_items[0]) == [1, 0, -1, -1, -1]
    assert np.isneginf(got_scores[0, 2:]).all()


def _reference(row: np.ndarray, k: int) -> np.ndarray:
    """Best k columns, equal scores by column, NaN never chosen, -inf only when nothing else is left."""
    order = np.argsort(-np.nan_to_num(row, nan=-np.inf), kind="stable")
    return order[~np.isnan(row[order])][:k]


def test_select_top_is_exact_on_ties_nan_and_every_catalog_size():
    rng = np.random.default_rng(1)
    for n_items, k, dtype in [(50_000, 100, np.float32), (3_001, 100, np.float64), (1_700, 100, np.float32),
                              (99, 100, np.float32), (16, 3, np.float64), (1, 5, np.float32)]:
        scores = rng.normal(size=(6, n_items)).astype(dtype)
        scores[1] = np.round(scores[1])   # a few distinct values: ties at the cut-off
        scores[2, ::3] = np.nan
        scores[3, 5:] = -np.inf           # fewer finite scores than k
        scores[4] = 0.0                   # nothing but ties
        items, best = select_top(scores, k)
        assert items.shape == best.shape == (6, min(k, n_items)) and best.dtype == dtype
        for r in range(6):
            expected = _reference(scores[r], k)
            finite = np.isfinite(scores[r, expected])
            assert list(items[r, :len(expected)][finite]) == list(expected[finite]), (n_items, k, r)
            assert (items[r, len(expected):] == -1).all() and np.isneginf(best[r, len(expected):]).all()
            assert np.array_equal(best[r, :len(expected)][finite], scores[r, expected][finite])


def test_selection_leaves_torch_the_thread_count_it_was_given():
    """numba's threads share torch's OpenMP runtime; their start must not raise the count of a torch
    that has already worked to every core (a fresh process: numba starts its threads once)."""
    code = ("import numpy as np, torch; torch.set_num_threads(1); torch.ones(100_000).add_(1); "
            "from models.topn import select_top; select_top(np.random.default_rng(0).random((8, 50)), 3); "
            "print(torch.get_num_threads())")
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, env=project_env(),
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "1"
