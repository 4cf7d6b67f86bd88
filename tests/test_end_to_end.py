"""The real DAG through `airflow dags test`, and `run_nightly`, on a generated landing zone.

Checks the serving table against every bullet of its contract, that the lists follow the
simulated users' tastes, that cold-start videos are recommended from content, that a second
run decodes nothing and that the same run date gives the same lists.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from deltalake import DeltaTable

from jobs.plumbing import config
from jobs.plumbing.stage import read_counters
from jobs.plumbing.tables import read_table
from tests.conftest import PROJECT_ROOT, offline, project_env
from tests.serving_contract import check_explanations, check_serving_table, genre_watched_share, same_genre_share

pytestmark = pytest.mark.slow
RUN_DATE = "2026-11-20"
TOP_N = 5


def _demo_landing(root) -> config.Warehouse:
    wh = config.Warehouse.at(root)
    subprocess.run([sys.executable, "-m", "jobs.datasets.make_demo_data", "--warehouse", str(wh.root), "--videos", "64",
                    "--users", "40", "--clip-seconds", "1", "--seed", "7", "--run-date", RUN_DATE],
                   check=True, cwd=PROJECT_ROOT, env=project_env())
    return wh


def _airflow(tmp_path_factory, spark_connection: dict, **extra: str) -> dict[str, str]:
    """The environment of an Airflow home of its own (SQLite metadata DB, the gpu pool)."""
    home = tmp_path_factory.mktemp("airflow-home")
    env = project_env(AIRFLOW_HOME=str(home), AIRFLOW__CORE__DAGS_FOLDER=str(PROJECT_ROOT / "dags"),
                      AIRFLOW__CORE__LOAD_EXAMPLES="False", AIRFLOW_CONN_SPARK_DEFAULT=json.dumps(spark_connection),
                      **extra)
    for command in (["db", "migrate"], ["pools", "set", "gpu", "1", "GPU training nodes"]):
        subprocess.run(["airflow", *command], check=True, env=env, capture_output=True)
    return env


def _dag_test(env: dict[str, str], wh: config.Warehouse, run_date: str, **params) -> str:
    """`airflow dags test` of the nightly DAG; its log, once the run succeeded."""
    done = subprocess.run(["airflow", "dags", "test", "video_recs_nightly", run_date, "-c",
                           json.dumps({"warehouse": str(wh.root), **params})],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    assert "successful" in log.split("Marking run")[-1][:400], log[-3000:]
    return log


def _sorted_lists(frame):
    return frame.sort_values(["user_id", "rank"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def demo_wh(tmp_path_factory) -> config.Warehouse:
    return _demo_landing(tmp_path_factory.mktemp("e2e") / "warehouse")


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory) -> dict[str, str]:
    return _airflow(tmp_path_factory, {"conn_type": "spark", "host": "local[2]"})


@pytest.fixture(scope="module")
def first_night(demo_wh, airflow_env):
    """The DAG's first night on the demo landing zone, in local[2], asked for a full retrain (as
    `auto` would do with no production model): its published lists."""
    _dag_test(airflow_env, demo_wh, RUN_DATE, top_n=TOP_N, training_mode="full")
    return _sorted_lists(DeltaTable(str(demo_wh.recommendations)).to_pandas())


def _run_nightly(wh: config.Warehouse, run_date: str) -> dict:
    done = subprocess.run(offline([sys.executable, "-m", "jobs.run_nightly", "--warehouse", str(wh.root),
                                   "--run-date", run_date, "--top-n", str(TOP_N)]),
                          cwd=PROJECT_ROOT, env=project_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_dag_run_publishes_lists_that_meet_the_contract(demo_wh, first_night):
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
    media = {v for v, info in truth["videos"].items() if info["has_media"]}

    # Every published row has its explanation, of the same night; the watched video behind a warm
    # recommendation is of its genre wherever the user watched that genre at all (this small
    # catalog's lists reach into genres a user never watched: no `because` can be of their genre;
    # at the demo's size, tests/test_explanations.py asks for 80% of all warm recommendations);
    # a video without media owes nothing to visual or audio.
    joined = check_explanations(demo_wh, RUN_DATE)
    warm = set(read_table(demo_wh.interactions, ["video_id"]).to_pandas()["video_id"])
    assert same_genre_share(joined, genre, warm) >= 0.9 * genre_watched_share(demo_wh, joined, genre, warm)
    text_only = joined[~joined["video_id"].isin(media)]
    assert (text_only["share_visual"] == 0).all() and (text_only["share_audio"] == 0).all()
    assert (joined.loc[joined["video_id"].isin(media), ["share_visual", "share_audio"]].to_numpy() > 0).any()

    features = read_table(demo_wh.video_features).to_pandas()
    complete = features[features["has_video"] & features["has_audio"] & features["has_text"]]
    assert set(complete["video_id"]) == media
    assert features["content_sha256"].notna().sum() == len(media)
    # The training_mode param reached the train task (auto would have said "no production model").
    assert read_counters(demo_wh, RUN_DATE)["train"]["mode_reason"] == "training_mode=full"


def test_dag_run_with_skip_training_scores_with_the_production_model(demo_wh, airflow_env, first_night):
    production = DeltaTable(str(demo_wh.recommendations)).to_pandas()["model_version"].iloc[0]
    _dag_test(airflow_env, demo_wh, "2026-11-22", top_n=3, skip_training=True, full_refresh=True)
    lists = check_serving_table(demo_wh, "2026-11-22", 3)
    assert set(lists["model_version"]) == {production}
    assert not (demo_wh.run_dir("2026-11-22") / "train.json").exists()
    # full_refresh: every video with media decoded again, although none changed.
    truth = json.loads((demo_wh.root / "landing" / "demo_truth.json").read_text())
    extracted = read_counters(demo_wh, "2026-11-22")["extract_features"]
    assert extracted["videos_decoded"] == sum(info["has_media"] for info in truth["videos"].values())
    assert extracted["videos_skipped"] == 0


def test_the_example_consumer_dag_shows_the_published_lists(demo_wh, first_night, tmp_path_factory):
    """dags/recommendations_consumer.py, as its asset would trigger it: it reads $VREC_WAREHOUSE."""
    env = _airflow(tmp_path_factory, {"conn_type": "spark", "host": "local[2]"}, VREC_WAREHOUSE=str(demo_wh.root))
    done = subprocess.run(["airflow", "dags", "test", "video_recs_consumer_example", RUN_DATE],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
    log = done.stdout + done.stderr
    assert done.returncode == 0 and "successful" in log.split("Marking run")[-1][:400], log[-3000:]
    version = DeltaTable(str(demo_wh.recommendations)).version()
    assert f"(Delta version {version}," in log, log[-3000:]


def test_rerun_decodes_nothing_and_gives_identical_lists(demo_wh, first_night):
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


# On a Spark standalone cluster: a master and two one-core workers on 127.0.0.1 whose processes have
# no PYTHONPATH and work outside the checkout, so executors import only what the DAG ships.

@pytest.fixture(scope="module")
def cluster_night(tmp_path_factory, spark_cluster) -> tuple[config.Warehouse, str]:
    """The same landing zone and seed as `first_night`, through the DAG with `spark_default` at the
    standalone master and the spark scoring engine: the warehouse and the DAG's log."""
    wh = _demo_landing(tmp_path_factory.mktemp("cluster") / "warehouse")
    env = _airflow(tmp_path_factory, {"conn_type": "spark", "host": "spark://127.0.0.1", "port": spark_cluster.master_port},
                   SPARK_CONF_DIR=str(spark_cluster.conf_dir))
    return wh, _dag_test(env, wh, RUN_DATE, top_n=TOP_N, scoring_engine="spark")


def _workers_that_ran_tasks(cluster) -> dict[str, set[str]]:
    """Application name -> the workers (web UI addresses) whose executors finished tasks, from the
    applications' event logs and the master's JSON status page."""
    workers = {w["webuiaddress"].rstrip("/") for w in cluster.status()["workers"]}
    ran: dict[str, set[str]] = {}
    for log in cluster.event_dir.iterdir():
        events = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        app = next(e["App Name"] for e in events if e["Event"] == "SparkListenerApplicationStart")
        # An executor's log URL is its worker's web UI; that names the worker.
        worker_of = {e["Executor ID"]: e["Executor Info"]["Log Urls"]["stdout"].split("/logPage")[0]
                     for e in events if e["Event"] == "SparkListenerExecutorAdded"}
        tasks = {worker_of[e["Task Info"]["Executor ID"]] for e in events
                 if e["Event"] == "SparkListenerTaskEnd" and e["Task End Reason"]["Reason"] == "Success"}
        ran.setdefault(app.replace("_", "-"), set()).update(tasks & workers)
    return ran


@pytest.mark.cluster
def test_the_dag_on_a_standalone_cluster_runs_on_both_workers_and_gives_the_local_lists(
        cluster_night, spark_cluster, first_night):
    wh, log = cluster_night
    workers = {w["webuiaddress"].rstrip("/") for w in spark_cluster.status()["workers"]}
    assert len(workers) == 2
    ran = _workers_that_ran_tasks(spark_cluster)
    for app in ("vrec-ingest", "vrec-extract-features", "vrec-score"):
        assert ran.get(app) == workers, (app, ran)
    # The cluster's own settings, not the local defaults (4 shuffle partitions, no UI): the cluster's
    # spark-defaults.conf sets 6 shuffle partitions (jobs/local_cluster.py), the UI is on, AQE.
    settings = [line for line in log.splitlines() if f"spark: master={spark_cluster.master_url}" in line]
    assert len(settings) >= 3, settings   # ingest, extract_features, score
    assert all("shuffle.partitions=6 adaptive=true ui=http" in line for line in settings), settings

    lists = _sorted_lists(check_serving_table(wh, RUN_DATE, TOP_N))
    columns = ["user_id", "rank", "video_id"]
    assert lists[columns].equals(first_night[columns])
    assert np.allclose(lists["score"], first_night["score"], rtol=1e-5, atol=1e-6)


@pytest.mark.cluster
def test_a_spark_stage_without_the_project_archive_fails_saying_what_to_ship(cluster_night, spark_cluster):
    """The packaging broken on purpose: the driver imports the checkout, the executors have nothing."""
    wh, _ = cluster_night
    done = subprocess.run(["spark-submit",
                           "--conf", f"spark.pyspark.python={sys.executable}",
                           str(PROJECT_ROOT / "jobs" / "extract_features.py"), "--warehouse", str(wh.root),
                           "--run-date", RUN_DATE, "--full-refresh"],
                          cwd=PROJECT_ROOT, env=project_env(SPARK_CONF_DIR=str(spark_cluster.conf_dir)),
                          capture_output=True, text=True)
    assert done.returncode == 1
    # spark-submit passes the Python driver's stdout and stderr on as its own stdout.
    errors = [line for line in done.stdout.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(
        "error: [extract_features] in a Spark Python worker: ModuleNotFoundError: No module named 'features' -- "
        "the executors do not have the project: ship it with --py-files"), done.stdout[-3000:]
