"""The real DAG through `airflow dags test`, and `run_nightly`, on a generated landing zone.

Checks the serving table against every bullet of its contract, that the lists follow the
simulated users' tastes, that cold-start videos are recommended from content, that a second
run decodes nothing and that the same run date gives the same lists.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from deltalake import DeltaTable

from jobs.plumbing import config
from jobs.plumbing.tables import read_table
from tests.conftest import PROJECT_ROOT, offline, project_env
from tests.serving_contract import check_serving_table

pytestmark = pytest.mark.slow
RUN_DATE = "2026-11-20"
TOP_N = 5


@pytest.fixture(scope="module")
def demo_wh(tmp_path_factory) -> config.Warehouse:
    wh = config.Warehouse.at(tmp_path_factory.mktemp("e2e") / "warehouse")
    subprocess.run([sys.executable, "-m", "jobs.datasets.make_demo_data", "--warehouse", str(wh.root), "--videos", "64",
                    "--users", "40", "--clip-seconds", "1", "--seed", "7", "--run-date", RUN_DATE],
                   check=True, cwd=PROJECT_ROOT, env=project_env())
    return wh


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("airflow-home")
    env = project_env(AIRFLOW_HOME=str(home), AIRFLOW__CORE__DAGS_FOLDER=str(PROJECT_ROOT / "dags"),
                      AIRFLOW__CORE__LOAD_EXAMPLES="False",
                      AIRFLOW_CONN_SPARK_DEFAULT='{"conn_type": "spark", "host": "local[2]"}')
    for command in (["db", "migrate"], ["pools", "set", "gpu", "1", "GPU training nodes"]):
        subprocess.run(["airflow", *command], check=True, env=env, capture_output=True)
    return env


def _run_nightly(wh: config.Warehouse, run_date: str) -> dict:
    done = subprocess.run(offline([sys.executable, "-m", "jobs.run_nightly", "--warehouse", str(wh.root),
                                   "--run-date", run_date, "--top-n", str(TOP_N)]),
                          cwd=PROJECT_ROOT, env=project_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_dag_run_publishes_lists_that_meet_the_contract(demo_wh, airflow_env):
    done = subprocess.run(["airflow", "dags", "test", "video_recs_nightly", RUN_DATE, "-c",
                           json.dumps({"warehouse": str(demo_wh.root), "top_n": TOP_N})],
                          cwd=PROJECT_ROOT, env=airflow_env, capture_output=True, text=True)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    assert "successful" in log.split("Marking run")[-1][:400], log[-3000:]
    lists = check_serving_table(demo_wh, RUN_DATE, TOP_N)

    truth = json.loads((demo_wh.root / "landing" / "demo_truth.json").read_text())
    genre = {v: info["genre"] for v, info in truth["videos"].items()}
    favourite = {u: set(info["favourite_genres"]) for u, info in truth["users"].items()}
    hits = lists.apply(lambda r: genre[r["video_id"]] in favourite[r["user_id"]], axis=1).mean()
    chance = sum(sum(g in favourite[u] for g in genre.values()) / len(genre) for u in favourite) / len(favourite)
    assert hits > 1.5 * chance, (hits, chance)

    # Videos published today have no interactions; content alone puts them in lists.
    cold = {v for v, info in truth["videos"].items() if info["cold_start"]}
    assert set(lists["video_id"]) & cold

    features = read_table(demo_wh.video_features).to_pandas()
    media = {v for v, info in truth["videos"].items() if info["has_media"]}
    complete = features[features["has_video"] & features["has_audio"] & features["has_text"]]
    assert set(complete["video_id"]) == media
    assert features["content_sha256"].notna().sum() == len(media)


def test_dag_run_with_skip_training_scores_with_the_production_model(demo_wh, airflow_env):
    production = DeltaTable(str(demo_wh.recommendations)).to_pandas()["model_version"].iloc[0]
    done = subprocess.run(["airflow", "dags", "test", "video_recs_nightly", "2026-11-22", "-c",
                           json.dumps({"warehouse": str(demo_wh.root), "top_n": 3, "skip_training": True})],
                          cwd=PROJECT_ROOT, env=airflow_env, capture_output=True, text=True)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    assert "successful" in log.split("Marking run")[-1][:400], log[-3000:]
    lists = check_serving_table(demo_wh, "2026-11-22", 3)
    assert set(lists["model_version"]) == {production}
    assert not (demo_wh.run_dir("2026-11-22") / "train.json").exists()


def test_rerun_decodes_nothing_and_gives_identical_lists(demo_wh, airflow_env):
    first = _run_nightly(demo_wh, "2026-11-21")
    second = _run_nightly(demo_wh, "2026-11-21")
    assert first["videos_decoded"] == 0 and second["videos_decoded"] == 0
    assert second["videos_skipped"] == first["videos_skipped"] > 0
    assert second["users_published"] == 40 and second["rows_published"] == 40 * TOP_N

    table = DeltaTable(str(demo_wh.recommendations))
    latest = table.version()
    def lists(version):
        frame = DeltaTable(str(demo_wh.recommendations), version=version).to_pandas()
        return frame.sort_values(["user_id", "rank"])[["user_id", "rank", "video_id"]].reset_index(drop=True)
    assert lists(latest).equals(lists(latest - 1))
    check_serving_table(demo_wh, "2026-11-21", TOP_N)


def test_run_nightly_failure_is_one_line_naming_the_stage(tmp_path):
    wh = config.Warehouse.at(tmp_path / "empty")
    wh.landing_catalog.mkdir(parents=True)
    (wh.landing_catalog / "c.csv").write_text("video_id,title\nv1,one\n")
    done = subprocess.run([sys.executable, "-m", "jobs.run_nightly", "--warehouse", str(wh.root),
                           "--run-date", RUN_DATE], cwd=PROJECT_ROOT, env=project_env(),
                          capture_output=True, text=True)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: [ingest] no interaction files (csv, jsonl, parquet) in {wh.landing_interactions}"]
