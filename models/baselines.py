"""The methods a team would otherwise use, as evaluation scorers: most popular, item-kNN, ALS, BPR.

Item-kNN, ALS and BPR come from the `implicit` package, on CPU, with its usual settings rather
than settings tuned to one dataset, so the comparison means the same on any dataset. Each is fit
on the same weighted user x video matrix the two-tower model trains on.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import sparse
from threadpoolctl import threadpool_limits

from models.training import IndexedInteractions


def user_item_matrix(data: IndexedInteractions, n_users: int, n_items: int) -> sparse.csr_matrix:
    """Summed event weights per (user, video)."""
    matrix = sparse.csr_matrix((data.weight.astype(np.float32), (data.user, data.item)),
                               shape=(n_users, n_items))
    matrix.sum_duplicates()
    return matrix


class MostPopular:
    def __init__(self, data: IndexedInteractions, n_items: int):
        self.counts = np.bincount(data.item, minlength=n_items).astype(np.float32)

    def __call__(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.counts, (len(users), len(self.counts)))


class ItemKNN:
    """Cosine item-item neighbours (K per item); a user's score sums the neighbours of their videos."""

    def __init__(self, matrix: sparse.csr_matrix, neighbours: int = 100):
        from implicit.nearest_neighbours import CosineRecommender

        self.matrix = matrix
        self.model = CosineRecommender(K=neighbours, num_threads=1)
        with threadpool_limits(limits=1), warnings.catch_warnings():
            # implicit normalises the matrix into COO form itself, then warns that it is not CSR.
            warnings.filterwarnings("ignore", message="Method expects CSR input")
            self.model.fit(matrix, show_progress=False)

    @property
    def similarity(self) -> sparse.csr_matrix:
        return self.model.similarity.tocsr()

    def __call__(self, users: np.ndarray) -> np.ndarray:
        return np.asarray((self.matrix[users] @ self.similarity).todense(), np.float32)


class MatrixFactorisation:
    """ALS (Hu, Koren and Volinsky's implicit-feedback ALS) or BPR, as `implicit` implements them."""

    def __init__(self, kind: str, matrix: sparse.csr_matrix, factors: int = 64, seed: int = 7):
        from implicit.cpu.als import AlternatingLeastSquares
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        # One thread: implicit's results then do not depend on the machine's core count (and its
        # ALS warns when BLAS runs threads of its own beside it).
        with threadpool_limits(limits=1):
            if kind == "als":
                self.model = AlternatingLeastSquares(factors=factors, regularization=0.05, iterations=15,
                                                     random_state=seed, num_threads=1)
            elif kind == "bpr":
                self.model = BayesianPersonalizedRanking(factors=factors, learning_rate=0.01,
                                                         regularization=0.01, iterations=100,
                                                         random_state=seed, num_threads=1)
            else:
                raise ValueError(f"unknown matrix factorisation {kind!r}")
            self.model.fit(matrix, show_progress=False)

    def __call__(self, users: np.ndarray) -> np.ndarray:
        return self.model.user_factors[users] @ self.model.item_factors.T


def fit_baselines(data: IndexedInteractions, n_users: int, n_items: int, seed: int = 7) -> dict:
    """Every baseline, fit on `data`: name -> scorer."""
    matrix = user_item_matrix(data, n_users, n_items)
    return {"most_popular": MostPopular(data, n_items), "item_knn": ItemKNN(matrix),
            "als": MatrixFactorisation("als", matrix, seed=seed),
            "bpr": MatrixFactorisation("bpr", matrix, seed=seed)}
