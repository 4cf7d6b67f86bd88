"""The methods a team would otherwise use, as evaluation scorers: most popular, item-kNN, ALS, BPR,
each lightly tuned on a validation slice the way a team would tune it before comparing.

Item-kNN, ALS and BPR come from the `implicit` package, on CPU, fit on the same weighted user x
video matrix the two-tower model trains on. `tune_baselines` holds out each user's last training
interaction again (the validation slice, as models/fit.py builds the re-ranker's slice), fits every
point of a small grid (`BASELINE_GRIDS`: item-kNN's neighbours, ALS's factors and regularization,
BPR's learning rate and regularization) on the rest, and keeps the point with the best validation
NDCG@10; `fit_baselines` then fits the chosen settings on all the training data. The held-out slice
the methods are compared on is never seen by the tuning. Without tuning, `DEFAULT_SETTINGS` are used.
"""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
from scipy import sparse
from threadpoolctl import threadpool_limits

from models.training import IndexedInteractions

T = TypeVar("T")

# The grids a nightly run tunes on, kept small: 15 fits, about 10 s at MovieLens-100k size and
# minutes at platform size (docs/benchmarks.md). Iterations are fixed: ALS 15, BPR 100. Each grid holds the
# default setting, so tuning can only move away from it on the validation slice's evidence.
BASELINE_GRIDS: dict[str, list[dict]] = {
    "item_knn": [{"neighbours": k} for k in (50, 100, 200)],
    "als": [{"factors": f, "regularization": r} for f in (64, 128) for r in (0.05, 1.0, 10.0)],
    "bpr": [{"learning_rate": lr, "regularization": r} for lr in (0.01, 0.02) for r in (0.003, 0.01, 0.03)],
}
# Before (and without) tuning: implicit's usual settings.
DEFAULT_SETTINGS: dict[str, dict] = {
    "item_knn": {"neighbours": 100},
    "als": {"factors": 64, "regularization": 0.05},
    "bpr": {"factors": 64, "learning_rate": 0.01, "regularization": 0.01},
}


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
    """ALS (Hu, Koren and Volinsky's implicit-feedback ALS) or BPR, as `implicit` implements them.

    `settings` go to implicit's constructor (factors, regularization, learning_rate, alpha,
    iterations); ALS runs 15 iterations and BPR 100 unless they say otherwise."""

    def __init__(self, kind: str, matrix: sparse.csr_matrix, factors: int = 64, seed: int = 7, **settings):
        from implicit.cpu.als import AlternatingLeastSquares
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        # BLAS on one thread (implicit's ALS warns when BLAS runs threads of its own beside it).
        # ALS solves each user's and each video's factors on their own, so its threads (every
        # core) give the same factors as one thread; BPR's threads update shared factors at once
        # (Hogwild), which would make its result depend on the core count: one thread.
        with threadpool_limits(limits=1):
            if kind == "als":
                self.model = AlternatingLeastSquares(**{"factors": factors, "regularization": 0.05,
                                                        "iterations": 15, **settings},
                                                     random_state=seed, num_threads=0)
            elif kind == "bpr":
                self.model = BayesianPersonalizedRanking(**{"factors": factors, "learning_rate": 0.01,
                                                            "regularization": 0.01, "iterations": 100,
                                                            **settings},
                                                         random_state=seed, num_threads=1)
            else:
                raise ValueError(f"unknown matrix factorisation {kind!r}")
            self.model.fit(matrix, show_progress=False)

    def __call__(self, users: np.ndarray) -> np.ndarray:
        return self.model.user_factors[users] @ self.model.item_factors.T


def make_baseline(name: str, matrix: sparse.csr_matrix, seed: int = 7, **settings):
    """One tunable baseline (item_knn, als, bpr) with the given settings, fit on `matrix`."""
    if name == "item_knn":
        return ItemKNN(matrix, **settings)
    if name in ("als", "bpr"):
        return MatrixFactorisation(name, matrix, seed=seed, **settings)
    raise ValueError(f"unknown baseline {name!r}")


@dataclass
class Tuning:
    """One baseline's grid search: every setting tried with its validation NDCG@10, and the choice."""

    grid: list[dict]
    validation_ndcg: list[float]
    seconds: float
    validation_users: int
    usual: dict = field(default_factory=dict)   # the untuned setting (DEFAULT_SETTINGS)
    chosen: dict = field(init=False)

    def __post_init__(self) -> None:
        # The first best point: on a tie the earlier (smaller, cheaper) setting.
        self.chosen = self.grid[int(np.argmax(self.validation_ndcg))]

    def as_record(self) -> dict:
        return {"chosen": self.chosen, "usual": self.usual, "validation_users": self.validation_users,
                "seconds": round(self.seconds, 2),
                "grid": [{"setting": s, "validation_ndcg@10": round(v, 5)}
                         for s, v in zip(self.grid, self.validation_ndcg)]}


def beside_bpr(work: dict[str, Callable[[], T]]) -> dict[str, T]:
    """Each baseline's `work` (name -> what to run), BPR's on a thread of its own beside the others
    in turn: BPR takes longest and runs on one core (above), so the others use the second core in
    the meantime. Every piece's result is what it gives alone; BLAS runs one thread meanwhile."""
    background = {name: job for name, job in work.items() if name == "bpr"}
    with threadpool_limits(limits=1), ThreadPoolExecutor(max_workers=1) as pool:
        pending = {name: pool.submit(job) for name, job in background.items()}
        done = {name: job() for name, job in work.items() if name not in background}
        done.update({name: future.result() for name, future in pending.items()})
    return {name: done[name] for name in work}


def tune_baselines(validation, n_users: int, n_items: int, *, seed: int = 7,
                   grids: dict[str, list[dict]] | None = None, log=print) -> dict[str, Tuning]:
    """Grid search: every setting fit on `validation.train` and scored by NDCG@10 on its held-out
    videos (a models.evaluation.Holdout of the training data): name -> Tuning."""
    from models.evaluation import evaluate

    matrix = user_item_matrix(validation.train, n_users, n_items)

    def tune(name: str, grid: list[dict]) -> Tuning:
        started, scores = time.perf_counter(), []
        for setting in grid:
            scorer = make_baseline(name, matrix, seed=seed, **setting)
            scores.append(evaluate(scorer, validation, n_users, n_items).get("ndcg@10", 0.0))
        tuning = Tuning(grid, scores, time.perf_counter() - started, len(validation.users),
                        DEFAULT_SETTINGS.get(name, {}))
        log(f"tuned {name}: {tuning.chosen} (validation NDCG@10 {max(scores):.4f}; "
            f"{len(grid)} settings in {tuning.seconds:.1f}s)")
        return tuning

    grids = BASELINE_GRIDS if grids is None else grids
    return beside_bpr({name: functools.partial(tune, name, grid) for name, grid in grids.items()})


def fit_baselines(data: IndexedInteractions, n_users: int, n_items: int, seed: int = 7,
                  settings: dict[str, dict] | None = None, measure: Callable | None = None) -> dict:
    """Every baseline, fit on `data`: name -> scorer, or with `measure` name -> measure(scorer),
    each measured as soon as it is fit (BPR's beside the others: `beside_bpr`). `settings` (name ->
    constructor settings, e.g. the tuning's choices) replace DEFAULT_SETTINGS for the baselines
    they name."""
    settings = {**DEFAULT_SETTINGS, **(settings or {})}
    matrix = user_item_matrix(data, n_users, n_items)
    measure = measure or (lambda scorer: scorer)

    def fit(name: str):
        if name == "most_popular":
            return measure(MostPopular(data, n_items))
        return measure(make_baseline(name, matrix, seed=seed, **settings[name]))

    return beside_bpr({name: functools.partial(fit, name) for name in ("most_popular", "item_knn", "als", "bpr")})
