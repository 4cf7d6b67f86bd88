"""LightGBM's SHAP values (`pred_contrib`) of many rows, computed once per way a row passes a tree.

Path-dependent TreeSHAP of one tree depends on a row only through the side it takes at each of the
tree's splits: the features in a coalition follow the row's side, the others average both children
by cover. Rows that take the same side at every split of a tree therefore have the same values in
that tree. The published lists hold hundreds of thousands of users times the list's length, and a
15-leaf tree sorts them into a few hundred such ways: LightGBM computes each tree's values
(`pred_contrib` of that tree alone) for one row per way, and every row adds its way's values.
SHAP values add up over trees, so the sum is what `pred_contrib` returns for the whole model, to
floating-point rounding (`tests/test_explanations.py` compares them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.ranker import usable_cpus

# LightGBM treats |x| <= 1e-35 as zero where a split sends zeros the missing values' way.
ZERO_THRESHOLD = 1e-35
CHUNK_ROWS = 1_000_000


@dataclass(frozen=True)
class _Split:
    feature: int
    threshold: float
    default_left: bool
    missing: str   # "None", "Zero" or "NaN", as LightGBM dumps it


def _splits(node: dict) -> list[_Split]:
    if "split_feature" not in node:
        return []
    split = _Split(node["split_feature"], float(node["threshold"]), bool(node["default_left"]), node["missing_type"])
    return [split, *_splits(node["left_child"]), *_splits(node["right_child"])]


def _numerical(tree: dict) -> bool:
    def walk(node: dict) -> bool:
        if "split_feature" not in node:
            return True
        return node["decision_type"] == "<=" and walk(node["left_child"]) and walk(node["right_child"])
    return walk(tree["tree_structure"])


@dataclass
class _Columns:
    """A chunk's feature columns as LightGBM's numerical decision (tree.h, NumericalDecision) reads
    them, computed once per chunk rather than once per split (the re-ranker has 2,100 splits over
    11 features): each contiguous, NaN as zero, and where NaN and (near) zero are."""

    filled: np.ndarray
    nan: np.ndarray
    zero: np.ndarray

    @classmethod
    def of(cls, features: np.ndarray) -> "_Columns":
        columns = np.ascontiguousarray(features.T)
        nan = np.isnan(columns)
        filled = np.where(nan, 0.0, columns)
        return cls(filled, nan, np.abs(filled) <= ZERO_THRESHOLD)

    def goes_left(self, split: _Split) -> np.ndarray:
        # A split whose missing type is NaN compares NaN as false, but then sends it its own way.
        left = self.filled[split.feature] <= split.threshold
        if split.missing == "Zero":
            return np.where(self.zero[split.feature], split.default_left, left)
        if split.missing == "NaN":
            return np.where(self.nan[split.feature], split.default_left, left)
        return left


class TreeContributions:
    """`booster.predict(features, pred_contrib=True)`, shared across rows that pass each tree alike."""

    def __init__(self, booster) -> None:
        self.booster = getattr(booster, "booster_", booster)   # an LGBMRanker or its Booster
        trees = self.booster.dump_model()["tree_info"]
        splits = [_splits(tree["tree_structure"]) for tree in trees]
        # Otherwise LightGBM's own path for every row: categorical or linear trees, several trees an
        # iteration (multiclass), more splits than a way's 63 bits (the re-ranker has 14 a tree).
        self.shared = (self.booster.num_model_per_iteration() == 1 and all(len(s) < 64 for s in splits)
                       and all(_numerical(tree) and not tree.get("is_linear") for tree in trees))
        self.trees = splits if self.shared else []

    def __call__(self, features: np.ndarray, threads: int | None = None) -> np.ndarray:
        options = {"num_threads": threads or usable_cpus()}
        if not self.shared or not len(features):
            return np.asarray(self.booster.predict(np.asarray(features, np.float64), pred_contrib=True, **options))
        # Chunks of rows bound the memory; each costs one LightGBM call per tree, whatever its size.
        return np.concatenate([self._shared(np.asarray(features[begin:begin + CHUNK_ROWS], np.float64), options)
                               for begin in range(0, len(features), CHUNK_ROWS)])

    def _shared(self, features: np.ndarray, options: dict) -> np.ndarray:
        out = np.zeros((len(features), features.shape[1] + 1))
        columns = _Columns.of(features)
        for index, splits in enumerate(self.trees):
            way = np.zeros(len(features), np.int64)
            for bit, split in enumerate(splits):
                way |= columns.goes_left(split).astype(np.int64) << bit
            ways, inverse = _distinct(way, len(splits))
            example = np.empty(len(ways), np.int64)
            example[inverse] = np.arange(len(features))   # any row of each way
            values = self.booster.predict(features[example], pred_contrib=True, start_iteration=index,
                                          num_iteration=1, **options)
            out += np.asarray(values)[inverse]
        return out


def _distinct(way: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """`np.unique(way, return_inverse=True)` of `bits`-bit codes: a table of every code for up to
    20 bits (a re-ranker's tree has 14 splits) instead of sorting millions of rows per tree."""
    if bits > 20:
        return np.unique(way, return_inverse=True)
    present = np.zeros(1 << bits, bool)
    present[way] = True
    ways = np.flatnonzero(present)
    position = np.zeros(1 << bits, np.int64)
    position[ways] = np.arange(len(ways))
    return ways, position[way]
