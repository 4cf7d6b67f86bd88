"""The Spark scoring engine gives the local engine's lists, with and without the re-ranker; without
it those are the blocked top-N's lists and the crossJoin query's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from jobs.plumbing.spark_scoring import crossjoin_top_n, spark_candidate_lists, users_frame
from models.candidate_lists import ScoringModel, Users, candidate_lists
from models.ranker import CatalogFeatures, RankerContext, Reranked, fit_ranker, top_candidates
from models.scoring import ItemVectors, TowerVectors
from models.topn import top_n
from models.training import IndexedInteractions

pytestmark = pytest.mark.spark


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def _interactions(rng, n_users: int, n_items: int) -> IndexedInteractions:
    """1 to 12 interactions per user in time order, some videos watched twice."""
    counts = rng.integers(1, 13, size=n_users)
    user = np.repeat(np.arange(n_users), counts)
    item = rng.integers(0, n_items // 2, size=len(user)) * 2   # even videos only: repeats are common
    ts = np.arange(len(user), dtype=np.float64) * 3600
    return IndexedInteractions(user, item, np.ones(len(user), np.float32), ts)


def _lists(frame: pd.DataFrame, video_index: dict[str, int]) -> dict[str, list[int]]:
    frame = frame.sort_values(["user_id", "rank"])
    assert frame.groupby("user_id")["rank"].apply(lambda r: list(r) == list(range(1, len(r) + 1))).all()
    return {user: [video_index[v] for v in rows["video_id"]] for user, rows in frame.groupby("user_id")}


def test_spark_lists_match_local_top_n_and_the_crossjoin_query(spark):
    rng = np.random.default_rng(1)
    user_vectors, item_vectors = _unit(rng.normal(size=(120, 16))), _unit(rng.normal(size=(300, 16)))
    counts = rng.integers(0, 12, size=len(user_vectors))
    indptr = np.r_[0, np.cumsum(counts)]
    seen = np.concatenate([rng.choice(len(item_vectors), c, replace=False) for c in counts]).astype(np.int64)
    expected, _ = top_n(TowerVectors(user_vectors, item_vectors), len(user_vectors), indptr, seen, 10)

    user_ids = np.array([f"u{u:03d}" for u in range(len(user_vectors))], object)
    video_ids = np.array([f"v{i}" for i in range(len(item_vectors))], object)
    frame = users_frame(spark, user_ids, Users(user_vectors, indptr, seen), partitions=3)
    for result in (spark_candidate_lists(frame, ScoringModel(ItemVectors(item_vectors)), video_ids, 10),
                   crossjoin_top_n(spark, frame, item_vectors, video_ids, 10)):
        got = _lists(result.toPandas(), {v: i for i, v in enumerate(video_ids)})
        assert [got[u] for u in user_ids] == expected.tolist()


def test_spark_engine_with_the_reranker_gives_the_local_lists_and_the_evaluated_order(spark):
    rng = np.random.default_rng(5)
    n_users, n_items, candidates, n = 150, 400, 40, 12
    data = _interactions(rng, n_users, n_items)
    tower = TowerVectors(_unit(rng.normal(size=(n_users, 16))), _unit(rng.normal(size=(n_items, 16))))
    similarity = sparse.random(n_items, n_items, density=0.03, random_state=2, format="csr", dtype=np.float32)
    catalog = CatalogFeatures.from_interactions(data, similarity, _unit(rng.normal(size=(n_items, 8))))
    ctx = RankerContext(data, catalog, n_users)
    # Each user's "held-out" video is one of their candidates, so every user is a training group.
    _, cand, _ = top_candidates(tower, ctx, np.arange(n_users), candidates)
    targets = cand[np.arange(n_users), rng.integers(0, candidates, n_users)]
    ranker, _ = fit_ranker(tower, ctx, np.arange(n_users), targets, candidates=candidates)
    assert ranker is not None

    model = ScoringModel(ItemVectors(tower.items), ranker.booster_, catalog, candidates)
    users = Users(tower.users, ctx.indptr, ctx.seen)
    local = candidate_lists(model, users, n, block_size=32)
    local_videos, local_scores = local.videos, local.scores
    # The lists are the ones the evaluation measured: the re-ranked scorer's best n.
    evaluated, _ = top_n(Reranked(tower, ranker, ctx, candidates), n_users, ctx.indptr, ctx.seen, n)
    assert np.array_equal(local_videos, evaluated)
    assert (np.diff(local_scores, axis=1) <= 0).all()

    user_ids = np.array([f"u{u:03d}" for u in range(n_users)], object)
    video_ids = np.array([f"v{i}" for i in range(n_items)], object)
    result = spark_candidate_lists(users_frame(spark, user_ids, users, partitions=4), model, video_ids, n).toPandas()
    got = _lists(result, {v: i for i, v in enumerate(video_ids)})
    assert [got[u] for u in user_ids] == local_videos.tolist()
    spark_scores = np.stack([result[result["user_id"] == u].sort_values("rank")["score"].to_numpy() for u in user_ids])
    assert np.array_equal(spark_scores, local_scores)


def test_the_project_archive_ships_the_code_and_the_sql(tmp_path):
    """Executors import the project from the --py-files archive, never a checkout: the archive alone
    imports the partition code and reads the SQL files and the text encoder's calibration texts as
    package data."""
    import subprocess
    import sys

    from jobs.plumbing.dist import VERSION, build_archive

    shipped = build_archive(tmp_path)
    assert shipped.name == f"video_recs-{VERSION}.zip"
    modules = ("models.candidate_lists", "jobs.plumbing.spark_scoring")
    probe = (f"import importlib; print(*(importlib.import_module(m).__file__ for m in {modules!r})); "
             "from jobs.plumbing.sql import load_sql; print(len(load_sql('catalog_latest')) > 0); "
             "from features.text_int8 import calibration_texts; print(len(calibration_texts()) > 50)")
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(shipped), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [f"{shipped}/models/candidate_lists.py", f"{shipped}/jobs/plumbing/spark_scoring.py",
                                   "True", "True"]


def test_an_unknown_scoring_engine_stops_the_stage_with_one_line(tmp_path):
    """VREC_SCORING_ENGINE is read as the default: a value that is no engine fails before any work."""
    import subprocess
    import sys

    from tests.conftest import PROJECT_ROOT, project_env

    done = subprocess.run([sys.executable, "-m", "jobs.score", "--warehouse", str(tmp_path), "--run-date", "2026-11-20"],
                          cwd=PROJECT_ROOT, env=project_env(VREC_SCORING_ENGINE="gpu"), capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "error: [score] unknown scoring engine 'gpu' (VREC_SCORING_ENGINE or --engine): use one of local, spark")
