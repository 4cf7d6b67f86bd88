"""The Bayes-optimal ceiling of a generated log (`jobs.bench.ceiling`): it reads the warehouse as
the evaluate stage does, and no baseline fit on the same slice beats it."""

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from jobs.bench.ceiling import generator_catalog, warehouse_ceiling
from jobs.datasets.make_load_data import simulate_interactions
from jobs.plumbing import config
from jobs.plumbing.model_inputs import load_model_inputs
from jobs.plumbing.tables import write_arrow_table
from models.baselines import fit_baselines
from models.evaluation import evaluate, leave_last_out

RUN_DAY = dt.date(2026, 11, 20)
VIDEOS, SEED = 1_500, 5


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> config.Warehouse:
    """The catalog and interactions tables of `make_load_data --videos 1500 --users 3000
    --per-user 3 15 --seed 5`, as ingest leaves them."""
    videos = generator_catalog(VIDEOS, RUN_DAY, SEED)
    users_rng = np.random.default_rng(np.random.SeedSequence(SEED).spawn(3)[1])
    log = simulate_interactions(users_rng, videos, 3_000, 0, RUN_DAY, per_user=(3, 15))
    wh = config.Warehouse.at(tmp_path_factory.mktemp("ceiling") / "warehouse")
    write_arrow_table(pa.table({
        config.VIDEO_ID: pa.array([v.video_id for v in videos], pa.string()),
        config.TITLE: pa.array([v.title for v in videos], pa.string()),
        config.PUBLISHED_AT: pa.array([v.published_at for v in videos], pa.timestamp("us", "UTC"))}),
        wh.catalog, RUN_DAY.isoformat())
    write_arrow_table(pa.table({
        config.USER_ID: pa.array(log["user_id"], pa.string()),
        config.VIDEO_ID: pa.array(log["video_id"], pa.string()),
        config.TS: pa.array(pd.to_datetime(log["ts"], utc=True), pa.timestamp("us", "UTC")),
        config.EVENT: pa.array(log["event"], pa.string())}), wh.interactions, RUN_DAY.isoformat())
    return wh


def test_no_baseline_beats_the_bayes_optimal_ranking_on_the_same_slice(generated):
    ceiling = warehouse_ceiling(generated, VIDEOS, RUN_DAY, SEED, max_eval_users=None)
    inputs = load_model_inputs(generated)
    n_users, n_items = len(inputs.user_ids), len(inputs.video_ids)
    holdout = leave_last_out(inputs.data, n_items)
    baselines = fit_baselines(holdout.train, n_users, n_items,
                              measure=lambda scorer: evaluate(scorer, holdout, n_users, n_items))
    best = max(metrics["ndcg@10"] for metrics in baselines.values())
    assert ceiling["ndcg@10"] > best > 0.05
    assert ceiling["hr@10"] > max(metrics["hr@10"] for metrics in baselines.values())


def test_a_warehouse_from_other_generator_settings_is_refused(generated):
    with pytest.raises(ValueError, match="not the one make_load_data plans"):
        warehouse_ceiling(generated, VIDEOS, RUN_DAY, SEED + 1, max_eval_users=None)
