"""The Spark scoring engine: users as partitions, the scoring model broadcast.

Each user is one row (`users_frame`: user_id, vector, the videos they interacted with in time
order). The `ScoringModel` (item vectors, the LightGBM re-ranker and its per-video features) and
the video ids are broadcast once; each partition turns its Arrow batches into
`models.candidate_lists.Users` and runs `models.candidate_lists.candidate_lists`, the function the
local engine runs, so the lists are the same (tests/test_spark_scoring.py, and on MovieLens-100k
tests/test_score_engines.py). Memory per task is the broadcast plus one block of scores, never
users x videos, and nothing is shuffled but the users' rows.

`crossjoin_top_n` is the query a Spark user would write first (every user x every video, a dot
product per pair, an anti-join on seen videos, a window rank); it is kept as the benchmark's
reference (`jobs.bench.bench_scoring --spark`).
"""

from __future__ import annotations

import functools
from typing import Iterator

import numpy as np
import pandas as pd

from jobs.plumbing import config

VECTOR, SEEN = "vector", "seen"
USERS_SCHEMA = f"{config.USER_ID} string, {VECTOR} array<float>, {SEEN} array<long>"
LISTS_SCHEMA = f"{config.USER_ID} string, {config.RANK} int, {config.VIDEO_ID} string, {config.SCORE} double"
# Users per partition: enough work per task to pay for its start, few enough to spread a large run.
USERS_PER_PARTITION = 20_000


def user_partitions(spark, n_users: int) -> int:
    """At least two partitions per core Spark offers (so a slow one does not hold the stage), more
    when the users would make large ones."""
    return max(2 * spark.sparkContext.defaultParallelism, -(-n_users // USERS_PER_PARTITION))


def users_frame(spark, user_ids: np.ndarray, users, partitions: int):
    """One row per user of `users` (a `models.candidate_lists.Users`), spread over `partitions`."""
    frame = pd.DataFrame({
        config.USER_ID: np.asarray(user_ids, object),
        VECTOR: list(np.asarray(users.vectors, np.float32)),
        SEEN: [users.videos[users.indptr[r]:users.indptr[r + 1]].astype(np.int64) for r in range(len(users))],
    })
    return spark.createDataFrame(frame, USERS_SCHEMA).repartition(partitions, config.USER_ID)


def spark_candidate_lists(users, model, video_ids: np.ndarray, n: int):
    """(user_id, rank, video_id, score) rows: the best `n` videos of each user row of `users`
    (see `users_frame`) by `model`, a `models.candidate_lists.ScoringModel`."""
    shared = users.sparkSession.sparkContext.broadcast((model, np.asarray(video_ids, object)))
    return users.mapInPandas(functools.partial(lists_of_partition, shared=shared, n=n), LISTS_SCHEMA)


def lists_of_partition(batches: Iterator[pd.DataFrame], *, shared, n: int) -> Iterator[pd.DataFrame]:
    """The partition function (module-level, so executors import it rather than unpickle a closure)."""
    from models.candidate_lists import Users, candidate_lists

    model, video_ids = shared.value
    threads = _threads_of_this_task()
    for batch in batches:
        if batch.empty:
            continue
        users = Users.from_lists(np.stack(batch[VECTOR].to_numpy()), list(batch[SEEN]))
        lists = candidate_lists(model, users, n, ranker_threads=threads)
        best, scores = lists.videos, lists.scores
        valid = best >= 0
        yield pd.DataFrame({
            config.USER_ID: np.repeat(batch[config.USER_ID].to_numpy(), valid.sum(axis=1)),
            config.RANK: np.cumsum(valid, axis=1)[valid].astype(np.int32),
            config.VIDEO_ID: video_ids[best[valid]],
            config.SCORE: scores[valid]})


def _threads_of_this_task() -> int:
    """Hold torch, numba and LightGBM to the cores Spark gave this task: each of them starts one
    thread per core of the machine by default, and with a task on every core that oversubscribes
    the machine (OpenMP's spinning threads are the worst of it)."""
    import numba
    import torch
    from pyspark import TaskContext

    context = TaskContext.get()
    threads = max(1, context.cpus() if context is not None else 1)
    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    return threads


def crossjoin_top_n(spark, users, item_vectors: np.ndarray, video_ids: np.ndarray, n: int):
    """The first query a Spark user writes: crossJoin, dot product, anti-join seen, window rank.
    Same rows as `spark_candidate_lists` without a re-ranker (scores as float)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    items = spark.createDataFrame(pd.DataFrame({"item_idx": np.arange(len(item_vectors), dtype=np.int64),
                                                config.VIDEO_ID: np.asarray(video_ids, object),
                                                "item_vector": list(item_vectors.astype(np.float32))}))
    seen = users.select(config.USER_ID, F.explode(SEEN).alias("item_idx"))
    pairs = users.select(config.USER_ID, VECTOR).crossJoin(items).select(
        config.USER_ID, "item_idx", config.VIDEO_ID,
        F.aggregate(F.zip_with(VECTOR, "item_vector", lambda a, b: a * b), F.lit(0.0).cast("float"),
                    lambda total, x: total + x).alias(config.SCORE))
    ranked = pairs.join(seen, [config.USER_ID, "item_idx"], "left_anti").withColumn(
        config.RANK, F.row_number().over(Window.partitionBy(config.USER_ID).orderBy(F.desc(config.SCORE))))
    return ranked.where(F.col(config.RANK) <= n).select(config.USER_ID, config.RANK, config.VIDEO_ID, config.SCORE)
