"""MovieLens-100k end to end: import the real ratings, run the whole pipeline, one full list per user,
and the published model beats every baseline on the held-out slice."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from jobs.plumbing import config
from tests.conftest import PROJECT_ROOT, offline, project_env
from tests.serving_contract import check_serving_table

pytestmark = pytest.mark.slow
TOP_N = 10


def test_movielens_100k_publishes_a_list_for_each_of_943_users(shared_data, tmp_path):
    wh = config.Warehouse.at(tmp_path / "warehouse")
    # The tuned baselines, not SASRec: its early-stopped training runs for minutes at this size, and
    # docs/benchmarks.md records how the published model compares with it (make bench-sparse and MovieLens).
    # At most 8 epochs (patience 2) instead of 24: the suite's longest test took 250 s, now 165 s,
    # and what it asserts holds with them; docs/benchmarks.md's figures are the default budget's.
    env = project_env(VREC_EVAL_SEQUENTIAL="0", VREC_EPOCHS="8")
    subprocess.run([sys.executable, "-m", "jobs.import_dataset", "--format", "movielens-100k", "--source",
                    str(shared_data / "movielens-100k"), "--warehouse", str(wh.root)],
                   check=True, cwd=PROJECT_ROOT, env=env, capture_output=True)
    # With the network off: the text model, Spark and Delta must all work from what is installed.
    done = subprocess.run(offline([sys.executable, "-m", "jobs.run_nightly", "--warehouse", str(wh.root),
                                   "--run-date", "2026-11-20", "--top-n", str(TOP_N)]),
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    counters = json.loads(done.stdout.strip().splitlines()[-1])
    assert counters["users_published"] == 943
    assert counters["rows_published"] == 943 * TOP_N
    assert counters["interactions_rejected"] == 0
    lists = check_serving_table(wh, "2026-11-20", TOP_N)
    assert lists.groupby("user_id").size().eq(TOP_N).all()

    metrics = pd.read_parquet(wh.model_metrics / "2026-11-20")
    table = metrics.pivot_table(index="method", columns="metric", values="value")
    published = metrics.loc[metrics["is_published"], "method"].iloc[0]
    baselines = ["most_popular", "item_knn", "als", "bpr"]
    assert set(baselines) <= set(table.index)
    for metric in ("ndcg@10", "hr@10"):
        assert (table.loc[published, metric] > table.loc[baselines, metric]).all(), table[metric]
    assert table.loc[published, "users"] == 943
