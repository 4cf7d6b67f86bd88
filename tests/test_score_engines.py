"""The score stage's two engines give the same lists on real data, re-ranker on.

MovieLens-100k is imported and ingested, its titles embedded, and a small model trained with a
LightGBM re-ranker (one epoch, built directly with `models/` so that the re-ranker is kept whether
or not it beats the tower on this data). The stage then scores with `--engine local`, with
`--engine spark` in the test's SparkSession, and as the DAG will launch it, `spark-submit
jobs/score.py --engine spark`; all three tables must hold the same users, the same videos in the
same order per user and the same scores. The local lists must also be the ones the evaluation
measures: the blocked top-N over the re-ranked scorer (`models.ranker.Reranked`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jobs.plumbing import config
from jobs.plumbing.tables import read_table
from tests.conftest import PROJECT_ROOT, project_env
from tests.serving_contract import check_explanations, check_serving_table

pytestmark = [pytest.mark.spark, pytest.mark.slow]
RUN_DATE = "2026-11-20"
TOP_N = 20


@pytest.fixture(scope="module")
def trained(spark, shared_data, tmp_path_factory) -> tuple[config.Warehouse, str]:
    """A MovieLens-100k warehouse with a model that has a re-ranker: (warehouse, model version)."""
    from jobs.extract_features import extract
    from jobs.ingest import ingest
    from jobs.plumbing.model_inputs import load_model_inputs
    from models.artifact import save_artifact
    from models.content import content_matrix, fit_content_stats
    from models.evaluation import leave_last_out
    from models.fit import ranker_context
    from models.ranker import fit_ranker
    from models.scoring import encode
    from models.training import train_two_tower

    wh = config.Warehouse.at(tmp_path_factory.mktemp("engines") / "warehouse")
    subprocess.run([sys.executable, "-m", "jobs.import_dataset", "--format", "movielens-100k", "--source",
                    str(shared_data / "movielens-100k"), "--warehouse", str(wh.root)],
                   check=True, cwd=PROJECT_ROOT, env=project_env(), capture_output=True)
    ingest(spark, wh, RUN_DATE)
    extract(spark, wh, RUN_DATE)

    inputs = load_model_inputs(wh)
    n_users, n_items = len(inputs.user_ids), len(inputs.video_ids)
    stats = fit_content_stats(inputs.items)
    content = content_matrix(inputs.items, stats)
    # The ranker learns to pick each user's last video out of the tower's candidates (models.fit).
    holdout = leave_last_out(inputs.data, n_items)
    tower, _ = train_two_tower(content, holdout.train, n_users, epochs=1, cfg_overrides=stats.branch_layout(),
                               log=lambda line: None)
    ranker, _ = fit_ranker(encode(tower, content, holdout.train, n_users),
                           ranker_context(holdout.train, content, n_users), holdout.users, holdout.items)
    assert ranker is not None
    warm = np.bincount(inputs.data.item, minlength=n_items) > 0
    version = save_artifact(wh.models, RUN_DATE, tower, stats, inputs.video_ids, warm, inputs.user_ids,
                            {"candidates": 200}, ranker=ranker)
    return wh, version


def _lists(wh: config.Warehouse, run_date: str) -> pd.DataFrame:
    lists = read_table(wh.candidate_lists / run_date).to_pandas()
    return lists.sort_values([config.USER_ID, config.RANK]).reset_index(drop=True)


def test_local_and_spark_engines_write_the_same_lists(spark, trained):
    from jobs.publish import publish
    from jobs.score import score

    wh, version = trained
    # The engines write the lists of different run dates, so that both tables stay to compare.
    local = score(wh, "2026-11-21", top_n=TOP_N, model_version=version, engine="local")
    on_spark = score(wh, "2026-11-22", top_n=TOP_N, model_version=version, engine="spark")
    assert local["reranked"] and on_spark["reranked"]
    assert local["rows"] == on_spark["rows"] == 943 * TOP_N

    expected, got = _lists(wh, "2026-11-21"), _lists(wh, "2026-11-22")
    assert _columns(wh, "2026-11-22") == _columns(wh, "2026-11-21")
    _assert_same_lists(expected, got)
    assert (got[config.MODEL_VERSION] == version).all()
    # The explanations are computed from the lists as written: the same for both engines.
    local_explained, spark_explained = _explanations(wh, "2026-11-21"), _explanations(wh, "2026-11-22")
    plain = [c for c in local_explained.columns if c != config.RANKER_TOP_FEATURES]
    pd.testing.assert_frame_equal(local_explained[plain], spark_explained[plain])
    assert local_explained[config.RANKER_TOP_FEATURES].map(list).tolist() == \
        spark_explained[config.RANKER_TOP_FEATURES].map(list).tolist()
    assert spark_explained[config.RANKER_TOP_FEATURES].map(len).eq(3).all()
    # Spark's table (a file per partition) is what the publish stage reads and validates.
    publish(wh, "2026-11-22", top_n=TOP_N)
    published = check_serving_table(wh, "2026-11-22", TOP_N)
    assert len(published) == 943 * TOP_N
    assert len(check_explanations(wh, "2026-11-22")) == len(published)


def test_spark_submit_of_the_stage_writes_the_local_lists(trained, tmp_path):
    wh, version = trained
    spark_submit = Path(sys.executable).parent / "spark-submit"
    done = subprocess.run([str(spark_submit), "--master", "local[2]", "--conf", "spark.ui.enabled=false",
                           str(PROJECT_ROOT / "jobs" / "score.py"), "--warehouse", str(wh.root),
                           "--run-date", "2026-11-23", "--top-n", str(TOP_N), "--model-version", version],
                          cwd=tmp_path, capture_output=True, text=True,
                          env=project_env(VREC_SCORING_ENGINE="spark", VREC_SPARK_LOCAL_DIR=str(tmp_path)))
    assert done.returncode == 0, done.stderr[-3000:]
    counters = json.loads(done.stdout.strip().splitlines()[-1])
    assert counters["engine"] == "spark" and counters["reranked"]

    from jobs.score import score

    if not (wh.candidate_lists / "2026-11-21").exists():   # this test run alone
        score(wh, "2026-11-21", top_n=TOP_N, model_version=version, engine="local")
    _assert_same_lists(_lists(wh, "2026-11-21"), _lists(wh, "2026-11-23"))


def test_local_lists_are_the_evaluated_re_ranked_order(trained):
    """What the evaluation measures (the blocked top-N over `Reranked`) is what the stage writes."""
    from jobs.plumbing.model_inputs import load_model_inputs
    from jobs.score import score
    from models.artifact import load_artifact
    from models.content import content_matrix
    from models.evaluation import seen_csr
    from models.fit import ranker_context
    from models.ranker import Reranked
    from models.scoring import encode
    from models.topn import top_n

    wh, version = trained
    score(wh, "2026-11-24", top_n=TOP_N, model_version=version, engine="local")
    artifact, inputs = load_artifact(wh.models, version), load_model_inputs(wh)
    content = content_matrix(inputs.items, artifact.stats)
    n_users = len(inputs.user_ids)
    ctx = ranker_context(inputs.data, content, n_users)
    reranked = Reranked(encode(artifact.model, content, inputs.data, n_users), artifact.ranker, ctx, 200)
    best, _ = top_n(reranked, n_users, *seen_csr(inputs.data, n_users), TOP_N)
    written = _lists(wh, "2026-11-24")
    assert written[config.USER_ID].tolist() == np.repeat(inputs.user_ids, TOP_N).tolist()
    assert written[config.VIDEO_ID].tolist() == inputs.video_ids[best.ravel()].tolist()


def _explanations(wh: config.Warehouse, run_date: str) -> pd.DataFrame:
    explained = read_table(wh.candidate_explanations / run_date).to_pandas()
    return explained.sort_values([config.USER_ID, config.RANK]).reset_index(drop=True)


def _columns(wh: config.Warehouse, run_date: str) -> list[tuple[str, str]]:
    """Names and types, in order (Spark adds its own schema metadata and marks columns required)."""
    return [(field.name, str(field.type)) for field in read_table(wh.candidate_lists / run_date).schema]


def _assert_same_lists(expected: pd.DataFrame, got: pd.DataFrame) -> None:
    assert set(got[config.USER_ID]) == set(expected[config.USER_ID])
    columns = [config.USER_ID, config.RANK, config.VIDEO_ID]
    assert got[columns].equals(expected[columns])
    np.testing.assert_allclose(got[config.SCORE], expected[config.SCORE], rtol=1e-5, atol=0)
