"""The serving table on an S3-compatible object store (moto's server on 127.0.0.1, no network), what
only S3 has: every commit is a conditional put, and the commands reach the store with the endpoint
and credentials of the environment or of an Airflow connection. The contract, the readers,
rollback and retention are tested on S3 as locally, by test_serving_table.py."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pyarrow as pa
import pytest

from jobs.plumbing import config
from jobs.plumbing.table_location import TableLocation
from tests.conftest import PROJECT_ROOT, project_env
from tests.landing import publish_night, warehouse_after_first_night

pytestmark = pytest.mark.spark
FIRST_NIGHT = "2026-11-20"
BUCKET = "vrec-serving"
SERVING_TABLE = f"s3://{BUCKET}/serving/recommendations"


@pytest.fixture(scope="module")
def served(s3_server, s3_env, spark, tmp_path_factory) -> tuple[config.Warehouse, str]:
    """A local warehouse after one full night (top 5) whose serving table is on S3, and its model."""
    s3_server.create_bucket(BUCKET)
    return warehouse_after_first_night(spark, tmp_path_factory.mktemp("serving-s3") / "warehouse", FIRST_NIGHT,
                                       SERVING_TABLE)


def test_each_commit_is_a_conditional_put_so_a_stale_writer_cannot_overwrite_a_night(served, s3_server, s3_env):
    from deltalake import write_deltalake
    from deltalake.exceptions import CommitFailedError

    wh, model_version = served
    with s3_server.recording() as requests:
        publish_night(wh, "2026-11-21", top_n=5, model_version=model_version)
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
