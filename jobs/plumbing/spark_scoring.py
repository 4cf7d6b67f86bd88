"""Top-N in Spark for user counts beyond one machine: users as partitions, item vectors broadcast.

Each partition scores its users in blocks against the broadcast item matrix with the same
`models.topn.top_n` the local path uses (seen videos excluded in the same pass), so memory per
task is one block of scores, never users x items, and nothing is shuffled but the users' rows.

`crossjoin_top_n` is the query a Spark user would write first (every user x every video, a dot
product per pair, an anti-join on seen videos, a window rank); it is kept as the benchmark's
reference (`jobs.bench.bench_scoring --spark`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

RESULT_SCHEMA = "user_idx long, rank int, item_idx long, score float"


def users_frame(spark, user_vectors: np.ndarray, seen_indptr: np.ndarray, seen_items: np.ndarray,
                partitions: int):
    """(user_idx, vector, seen) rows, spread over `partitions`."""
    frame = pd.DataFrame({
        "user_idx": np.arange(len(user_vectors), dtype=np.int64),
        "vector": list(user_vectors.astype(np.float32)),
        "seen": [seen_items[seen_indptr[u]:seen_indptr[u + 1]].astype(np.int64) for u in range(len(user_vectors))],
    })
    return spark.createDataFrame(frame, "user_idx long, vector array<float>, seen array<long>").repartition(
        partitions, "user_idx")


def spark_top_n(users, item_vectors: np.ndarray, n: int, block_size: int | None = None):
    """Best `n` items per user row of `users` (see `users_frame`) as (user_idx, rank, item_idx, score)."""
    from models.scoring import TowerVectors
    from models.topn import DEFAULT_BLOCK, top_n

    block_size = block_size or DEFAULT_BLOCK
    broadcast = users.sparkSession.sparkContext.broadcast(np.ascontiguousarray(item_vectors, np.float32))

    def score_partition(batches):
        items = broadcast.value
        for batch in batches:
            if batch.empty:
                continue
            vectors = np.stack(batch["vector"].to_numpy()).astype(np.float32)
            seen = batch["seen"].to_numpy()
            indptr = np.r_[0, np.cumsum([len(s) for s in seen])]
            seen_items = np.concatenate(seen).astype(np.int64) if indptr[-1] else np.zeros(0, np.int64)
            best, scores = top_n(TowerVectors(vectors, items), len(batch), indptr, seen_items, n, block_size)
            valid = best >= 0
            yield pd.DataFrame({
                "user_idx": np.repeat(batch["user_idx"].to_numpy(), valid.sum(axis=1)),
                "rank": np.cumsum(valid, axis=1)[valid].astype(np.int32),
                "item_idx": best[valid], "score": scores[valid].astype(np.float32)})

    return users.mapInPandas(score_partition, RESULT_SCHEMA)


def crossjoin_top_n(spark, users, item_vectors: np.ndarray, n: int):
    """The first query a Spark user writes: crossJoin, dot product, anti-join seen, window rank."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    items = spark.createDataFrame(pd.DataFrame({"item_idx": np.arange(len(item_vectors), dtype=np.int64),
                                                "item_vector": list(item_vectors.astype(np.float32))}))
    seen = users.select("user_idx", F.explode("seen").alias("item_idx"))
    pairs = users.select("user_idx", "vector").crossJoin(items).select(
        "user_idx", "item_idx",
        F.aggregate(F.zip_with("vector", "item_vector", lambda a, b: a * b), F.lit(0.0).cast("float"),
                    lambda total, x: total + x).alias("score"))
    ranked = pairs.join(seen, ["user_idx", "item_idx"], "left_anti").withColumn(
        "rank", F.row_number().over(Window.partitionBy("user_idx").orderBy(F.desc("score"))))
    return ranked.where(F.col("rank") <= n).select("user_idx", "rank", "item_idx", "score")
