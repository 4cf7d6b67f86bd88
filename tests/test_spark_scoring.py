"""The Spark top-N path gives the local blocked top-N's lists, and so does the crossJoin query."""

from __future__ import annotations

import numpy as np
import pytest

from jobs.plumbing.spark_scoring import crossjoin_top_n, spark_top_n, users_frame
from models.scoring import TowerVectors
from models.topn import top_n

pytestmark = pytest.mark.spark


def test_spark_top_n_matches_local_top_n_and_the_crossjoin_query(spark):
    rng = np.random.default_rng(1)
    users, items = rng.normal(size=(120, 16)).astype(np.float32), rng.normal(size=(300, 16)).astype(np.float32)
    counts = rng.integers(0, 12, size=len(users))
    indptr = np.r_[0, np.cumsum(counts)]
    seen = np.concatenate([rng.choice(len(items), c, replace=False) for c in counts]).astype(np.int64)
    expected_items, _ = top_n(TowerVectors(users, items), len(users), indptr, seen, 10)

    frame = users_frame(spark, users, indptr, seen, partitions=3)
    for result in (spark_top_n(frame, items, 10, block_size=32), crossjoin_top_n(spark, frame, items, 10)):
        rows = result.toPandas().sort_values(["user_idx", "rank"])
        assert rows.groupby("user_idx")["rank"].apply(list).eq([list(range(1, 11))] * len(users)).all()
        got = np.stack(rows.groupby("user_idx")["item_idx"].apply(np.asarray).to_numpy())
        assert np.array_equal(got, expected_items)
