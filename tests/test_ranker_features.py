"""The re-ranker's sequence features ("watched next" shares) and the artifact's check that a saved
re-ranker reads the features this code computes."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest
from scipy import sparse

from models.artifact import ModelArtifact, SchemaMismatch
from models.content import ContentStats
from models.ranker import (FEATURES, CatalogFeatures, UserHistories, next_videos, ranker_estimator, ranker_features,
                           ranker_predictions)
from models.training import IndexedInteractions

A, B, C, D = range(4)


def _log(*sequences: list[int]) -> IndexedInteractions:
    """One user per sequence, videos in time order."""
    user = np.concatenate([np.full(len(s), u) for u, s in enumerate(sequences)])
    item = np.concatenate([np.asarray(s) for s in sequences])
    return IndexedInteractions(user, item, np.ones(len(user), np.float32), np.arange(len(user), dtype=np.float64))


def test_watched_next_shares_follow_each_users_order_and_never_cross_users():
    # User 0 watches A, B, C; user 1 watches A, C then D. Within 3 videos after A come B and C
    # (user 0), C and D (user 1); user 0's C is not followed by user 1's A: different users.
    shares = next_videos(_log([A, B, C], [A, C, D]), 4).toarray()
    assert np.allclose(shares[A], [0, 1 / 4, 2 / 4, 1 / 4])
    assert np.allclose(shares[B], [0, 0, 1, 0])
    assert np.allclose(shares[C], [0, 0, 0, 1])
    assert np.allclose(shares[D], 0)   # nothing follows D
    assert np.allclose(shares.sum(axis=1)[[A, B, C]], 1)


def test_the_sequence_features_score_what_follows_the_users_latest_videos():
    log = _log([A, B, C], [A, C, D], [B, C])
    catalog = CatalogFeatures.from_interactions(log, sparse.identity(4, np.float32, format="csr"),
                                                np.eye(4, dtype=np.float32))
    # A user whose latest video is A: C follows A more often than B, and nothing follows with D.
    histories = UserHistories.from_seen(np.array([0, 2]), np.array([D, A]), 4)
    candidates = np.array([[B, C]])
    rows = ranker_features(catalog, histories, candidates, np.zeros((1, 2), np.float32))
    next_last = rows[:, FEATURES.index("next_last")]
    assert np.allclose(next_last, [1 / 4, 2 / 4])
    # The recent videos weigh D (0.7) too, but D is followed by nothing: the same order.
    assert rows[1, FEATURES.index("next_recent")] > rows[0, FEATURES.index("next_recent")]


def test_a_model_whose_reranker_reads_other_features_is_refused_at_scoring():
    rng = np.random.default_rng(0)
    old_features = [name for name in FEATURES if not name.startswith("next_")]
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 3},
                        lgb.Dataset(rng.normal(size=(40, len(old_features))), rng.integers(0, 2, 40),
                                    feature_name=old_features), num_boost_round=2)
    stats = ContentStats(dims={"text": 4}, mean={}, std={})
    artifact = ModelArtifact("m1", None, stats, np.array([]), np.array([]), np.array([]), {}, booster)
    with pytest.raises(SchemaMismatch, match="re-ranker reads .* retrain the model"):
        artifact.check_schema(stats)
    artifact.ranker = None
    artifact.check_schema(stats)   # the tower alone has nothing to mismatch


def test_features_read_a_sparse_product_at_each_candidate_as_scipy_indexes_it():
    """The per-candidate lookup into (users x catalog) products gives scipy's own values, also for
    a product with unsorted or repeated entries, an empty one, and videos no entry holds."""
    from models.ranker import _at

    rng = np.random.default_rng(1)
    recent = sparse.random(40, 300, density=0.03, format="csr", random_state=2, dtype=np.float32)
    similarity = sparse.random(300, 300, density=0.05, format="csr", random_state=3, dtype=np.float32)
    repeated = sparse.csr_matrix((np.ones(4, np.float32), np.array([5, 2, 5, 9]), np.array([0, 4])), shape=(1, 300))
    for matrix in (recent @ similarity, recent, repeated, sparse.csr_matrix((6, 300), dtype=np.float32)):
        candidates = rng.integers(0, 300, (matrix.shape[0], 25))
        candidates[0, :3] = [5, 2, 9]
        rows = np.repeat(np.arange(matrix.shape[0]), 25)
        expected = np.asarray(matrix.tocsr()[rows, candidates.ravel()]).reshape(candidates.shape)
        np.testing.assert_array_equal(_at(matrix, candidates), expected)


def test_the_re_ranker_is_the_same_on_one_thread_and_on_two():
    # It fits and predicts on every CPU of the process (LightGBM's default was one): the lists must
    # not depend on the machine's core count.
    rng = np.random.default_rng(3)
    groups, size = 400, 50
    features = rng.normal(size=(groups * size, len(FEATURES)))
    labels = np.zeros(groups * size, np.int32)
    labels[np.arange(groups) * size + rng.integers(0, size, groups)] = 1
    features[labels == 1, :3] += 0.7
    tower_scores = rng.normal(size=(groups, size))
    scores = [ranker_predictions(ranker_estimator(7, threads).fit(features, labels, group=[size] * groups),
                                 features, tower_scores, threads) for threads in (1, 2)]
    assert np.array_equal(scores[0], scores[1])
