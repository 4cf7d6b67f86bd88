"""The serving table on an S3-compatible object store (moto's server on 127.0.0.1, no network):
publish meets the contract, deltalake, polars, DuckDB, pyarrow and the Spark consumer views read
it, a reader polling during publishes only ever sees whole nights, rollback and retention work
as they do locally, every commit is a conditional put, and the commands reach the store with the
endpoint and credentials of the environment or of an Airflow connection."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pandas as pd
import pyarrow as pa
import pytest

from jobs.plumbing import config
from jobs.plumbing.stage import StageError
from jobs.plumbing.table_location import TableLocation
from tests.conftest import PROJECT_ROOT, project_env
from tests.landing import publish_first_night, text_only_catalog, write_landing
from tests.serving_contract import assert_whole_nights, check_explanations, check_serving_table, poll_during_publishes

pytestmark = pytest.mark.spark
FIRST_NIGHT = "2026-11-20"
BUCKET = "vrec-serving"
SERVING_TABLE = f"s3://{BUCKET}/serving/recommendations"
LIST_COLUMNS = ["user_id", "rank", "video_id", "score", "run_date"]


@pytest.fixture(scope="module")
def s3_env(s3_server) -> dict[str, str]:
    """The AWS_* environment that reaches the test server, set in this process for the module."""
    s3_server.create_bucket(BUCKET)
    env = s3_server.environment()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        yield env


@pytest.fixture(scope="module")
def served(s3_env, spark, tmp_path_factory) -> tuple[config.Warehouse, str]:
    """A local warehouse after one full night (top 5) whose serving table is on S3, and its model."""
    wh = config.Warehouse.at(tmp_path_factory.mktemp("serving-s3") / "warehouse", SERVING_TABLE)
    videos, _, rows = text_only_catalog(seed=3, n_videos=120, n_users=50)
    write_landing(wh, videos, rows)
    return wh, publish_first_night(spark, wh, FIRST_NIGHT, top_n=5, epochs=3)


def current_lists(wh: config.Warehouse, version: int | None = None) -> pd.DataFrame:
    frame = wh.recommendations.delta_table(version).to_pandas()
    return frame.sort_values(["user_id", "rank"]).reset_index(drop=True)[LIST_COLUMNS]


def night(wh: config.Warehouse, model_version: str, run_date: str, top_n: int) -> None:
    from jobs.publish import publish
    from jobs.score import score

    score(wh, run_date, top_n=top_n, model_version=model_version)
    publish(wh, run_date, top_n=top_n)


def test_publish_to_s3_meets_the_contract_and_writes_no_local_table(served):
    from jobs.plumbing.serving import production_model

    wh, model_version = served
    check_serving_table(wh, FIRST_NIGHT, top_n=5)
    assert not (wh.root / "tables" / "recommendations").exists()
    assert production_model(wh) == model_version             # what the gate and `production` read
    counters = json.loads((wh.run_dir(FIRST_NIGHT) / "publish.json").read_text())
    assert counters["table"] == SERVING_TABLE and counters["delta_version"] == 0
    # The explanations sit beside the serving table, on S3 too, and nothing of them is local.
    assert counters["explanations_table"] == SERVING_TABLE.rsplit("/", 1)[0] + "/recommendation_explanations"
    assert not (wh.root / "tables" / "recommendation_explanations").exists()
    assert len(check_explanations(wh, FIRST_NIGHT)) == len(current_lists(wh))


def test_polars_duckdb_and_pyarrow_read_the_table_on_s3(served):
    import duckdb
    import polars as pl
    import pyarrow.dataset as ds

    wh, _ = served
    location = wh.recommendations
    expected = current_lists(wh)
    by_polars = pl.read_delta(location.uri, storage_options=location.storage_options).sort(["user_id", "rank"])
    assert by_polars["video_id"].to_list() == expected["video_id"].to_list()
    assert {str(d) for d in by_polars["run_date"].unique()} == {str(d) for d in expected["run_date"].unique()}
    arrow = location.delta_table().to_pyarrow_dataset()
    assert isinstance(arrow, ds.Dataset) and arrow.count_rows() == len(expected)
    duck = duckdb.connect()  # DuckDB's delta and httpfs extensions are not bundled: the Arrow dataset
    duck.register("recommendations", arrow)
    assert duck.sql("select count(distinct user_id) from recommendations").fetchall()[0][0] == \
        expected["user_id"].nunique()


def test_consumer_views_read_the_table_on_s3(spark, served, capsys):
    from jobs import consumer_views
    from jobs.consumer_views import register_views, user_recommendations

    wh, _ = served
    register_views(spark, wh)
    expected = current_lists(wh)
    assert spark.table("latest_recommendations").count() == len(expected)
    with_titles = spark.table("recommendations_with_titles").toPandas()
    assert with_titles["title"].notna().all() and len(with_titles) == len(expected)
    user = expected["user_id"].iloc[0]
    rows = user_recommendations(spark, user).toPandas()
    assert list(rows["video_id"]) == list(expected.loc[expected["user_id"] == user, "video_id"])
    capsys.readouterr()
    assert consumer_views.main(["--warehouse", str(wh.root), "--user-id", user, "--serving-table", SERVING_TABLE]) == 0
    shown = capsys.readouterr().out
    assert all(video in shown for video in rows["video_id"])


def test_each_commit_is_a_conditional_put_so_a_stale_writer_cannot_overwrite_a_night(served, s3_server, s3_env):
    from deltalake import write_deltalake
    from deltalake.exceptions import CommitFailedError

    wh, model_version = served
    with s3_server.recording() as requests:
        night(wh, model_version, "2026-11-21", top_n=5)
    commits = [r for r in requests if r["method"] == "PUT" and re.search(r"/_delta_log/\d{20}\.json", r["url"])]
    # A night is two commits, each a conditional put: its explanations, then its lists.
    assert ["/recommendation_explanations/" in commit["url"] for commit in commits] == [True, False]
    for commit in commits:
        assert commit["headers"].get("If-None-Match") == "*"
        assert f"Credential={s3_env['AWS_ACCESS_KEY_ID']}/" in commit["headers"]["Authorization"]

    # Two writers that both read version 0 race for version 1: the second's put is refused.
    scratch = TableLocation.parse(f"s3://{BUCKET}/scratch/stale-writer")
    write_deltalake(scratch.uri, pa.table({"night": ["first"]}), storage_options=scratch.storage_options)
    first, stale = scratch.delta_table(), scratch.delta_table()
    write_deltalake(first, pa.table({"night": ["second"]}), mode="overwrite")
    with pytest.raises(CommitFailedError):
        write_deltalake(stale, pa.table({"night": ["stale"]}), mode="overwrite")
    assert scratch.delta_table().version() == 1
    assert scratch.delta_table().to_pyarrow_table()["night"].to_pylist() == ["second"]


def test_a_reader_polling_during_publishes_on_s3_never_sees_a_partial_or_mixed_table(served):
    wh, model_version = served
    users = current_lists(wh)["user_id"].nunique()
    # Nights alternate between lists of 3 and of 5: any mix of two nights would show.
    dates = {f"2026-11-{day}": 3 if day % 2 else 5 for day in range(22, 26)}

    def publish_nights() -> None:
        for run_date, top_n in dates.items():
            night(wh, model_version, run_date, top_n)

    snapshots = poll_during_publishes(wh, publish_nights)
    assert len(snapshots) > len(dates)
    assert len(assert_whole_nights(snapshots, users, dates, earlier_top_n=5)) >= 3


def test_rollback_on_s3_restores_a_nights_lists_as_a_new_commit(served):
    from jobs.rollback import rollback

    wh, model_version = served
    first = current_lists(wh, version=0)
    night(wh, model_version, "2026-11-28", top_n=3)
    before = wh.recommendations.delta_table().version()

    counters = rollback(wh, to_date=FIRST_NIGHT)
    table = wh.recommendations.delta_table()
    assert counters["restored_version"] == 0 and table.version() == before + 1
    assert current_lists(wh).equals(first)
    assert counters["explanations_restored_version"] == 0      # the explanations moved with the lists
    check_explanations(wh, FIRST_NIGHT)
    assert (table.protocol().min_reader_version, table.protocol().min_writer_version) == (1, 2)
    assert current_lists(wh, version=before)["rank"].max() == 3      # the rolled-back night stays readable

    rollback(wh, to_version=before)
    assert current_lists(wh).equals(current_lists(wh, version=before))
    with pytest.raises(StageError, match="no lists published for 2026-10-01"):
        rollback(wh, to_date="2026-10-01")


def test_retention_on_s3_vacuums_old_nights_and_rollback_to_them_fails_clearly(served):
    from jobs.plumbing.serving import vacuum
    from jobs.rollback import rollback

    wh, model_version = served
    night(wh, model_version, "2026-11-29", top_n=4)
    assert vacuum(wh.recommendations.delta_table(), retention_days=0) > 0
    assert current_lists(wh).groupby("user_id").size().eq(4).all()   # the current night is whole
    with pytest.raises(StageError, match="can no longer be restored"):
        rollback(wh, to_date=FIRST_NIGHT)


def test_run_nightly_with_the_serving_table_option_scores_with_the_production_model_on_s3(served, capsys):
    from jobs import run_nightly

    wh, model_version = served
    capsys.readouterr()
    assert run_nightly.main(["--warehouse", str(wh.root), "--run-date", "2026-11-30", "--top-n", "5",
                             "--skip-training", "--serving-table", SERVING_TABLE]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["users_published"] == 50
    lists = wh.recommendations.delta_table().to_pandas()
    assert set(lists["run_date"].astype(str)) == {"2026-11-30"} and set(lists["model_version"]) == {model_version}
    assert lists.groupby("user_id").size().eq(5).all()


def _run(module: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_commands_take_the_serving_table_from_the_option_and_credentials_from_the_environment(served, s3_env):
    wh, _ = served
    table = f"s3://{BUCKET}/commands/recommendations"
    env = project_env(**s3_env)
    for run_date in (FIRST_NIGHT, "2026-11-21"):
        done = _run("jobs.publish", "--warehouse", str(wh.root), "--run-date", run_date, "--top-n", "5",
                    "--serving-table", table, env=env)
        assert done.returncode == 0, done.stderr[-2000:]
        assert json.loads(done.stdout.splitlines()[-1])["table"] == table
    shown = _run("jobs.show_recommendations", "--warehouse", str(wh.root), "--serving-table", table, env=env)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert f"serving table: {table} (Delta version 1, 50 users" in shown.stdout
    rolled = _run("jobs.rollback", "--warehouse", str(wh.root), "--serving-table", table, "--to-date", FIRST_NIGHT,
                  env=env)
    assert rolled.returncode == 0, rolled.stderr[-2000:]
    assert json.loads(rolled.stdout.splitlines()[-1])["delta_version"] == 2
    refused = _run("jobs.publish", "--warehouse", str(wh.root), "--serving-table", "gs://elsewhere/t", env=env)
    assert refused.returncode == 2 and "give a directory or s3://bucket/prefix" in refused.stderr


def test_an_airflow_connection_gives_the_endpoint_and_credentials(served, s3_server, s3_env, tmp_path):
    wh, _ = served
    connection = {"conn_type": "aws", "login": "connection-key", "password": "connection-secret",
                  "extra": {"endpoint_url": s3_server.endpoint, "region_name": "us-east-1"}}
    env = {name: value for name, value in project_env().items() if not name.startswith("AWS_")}
    env.update(VREC_SERVING_TABLE=SERVING_TABLE, VREC_SERVING_TABLE_CONN_ID="vrec_serving_table",
               AIRFLOW_CONN_VREC_SERVING_TABLE=json.dumps(connection), AIRFLOW_HOME=str(tmp_path / "airflow"))
    with s3_server.recording() as requests:
        shown = _run("jobs.show_recommendations", "--warehouse", str(wh.root), env=env)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert f"serving table: {SERVING_TABLE} (" in shown.stdout and "user " in shown.stdout
    signed = {re.search(r"Credential=([^/]+)/", r["headers"].get("Authorization", "")) for r in requests}
    assert {match.group(1) for match in signed if match} == {"connection-key"}
