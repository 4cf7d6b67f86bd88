"""Where the serving table lives: the default stays `<warehouse>/tables/recommendations` exactly as
before, an `s3://` location takes its settings from the environment or an Airflow connection, and
no secret shows in what a location prints."""

from __future__ import annotations

import json

import pytest

from jobs.plumbing import config
from jobs.plumbing.table_location import TableLocation, s3_storage_options


def test_the_default_serving_table_is_the_warehouse_directory(tmp_path):
    wh = config.Warehouse.at(tmp_path / "warehouse")
    assert wh.recommendations.is_local and wh.recommendations.storage_options == {}
    assert str(wh.recommendations) == str((tmp_path / "warehouse" / "tables" / "recommendations").resolve())
    assert wh.recommendations.path == wh.table("recommendations")
    assert not wh.recommendations.exists()


def test_a_local_location_is_resolved_like_the_warehouse(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert TableLocation.parse("serving").uri == str(tmp_path / "serving")
    assert TableLocation.parse(f"file://{tmp_path}/serving").uri == str(tmp_path / "serving")
    wh = config.Warehouse.at(tmp_path / "warehouse", "serving")
    assert wh.recommendations.uri == str(tmp_path / "serving") and wh.root == tmp_path / "warehouse"


@pytest.mark.parametrize("text", ["gs://bucket/table", "s3://", "http://host/table"])
def test_other_locations_are_refused(text):
    with pytest.raises(ValueError, match="give a directory or s3://bucket/prefix"):
        TableLocation.parse(text)


def test_s3_settings_come_from_the_environment(monkeypatch):
    for name, value in {"AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_DEFAULT_REGION": "eu-west-1",
                        "AWS_ACCESS_KEY_ID": "key-from-env", "AWS_SECRET_ACCESS_KEY": "secret-from-env",
                        "AWS_SESSION_TOKEN": "token-from-env"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_REGION", raising=False)
    location = TableLocation.parse("s3://bucket/serving/recommendations/")
    assert location.uri == "s3://bucket/serving/recommendations" and not location.is_local
    assert location.storage_options == {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "key-from-env",
        "AWS_SECRET_ACCESS_KEY": "secret-from-env", "AWS_SESSION_TOKEN": "token-from-env",
        "AWS_ALLOW_HTTP": "true"}   # plain HTTP only when the endpoint asks for it
    assert "secret-from-env" not in repr(config.Warehouse.at("w", location.uri)) + str(location)
    assert "AWS_ALLOW_HTTP" not in s3_storage_options({"AWS_ENDPOINT_URL": "https://s3.example.com"})


def test_an_airflow_connection_overrides_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("AIRFLOW_CONN_VREC_TEST_S3", json.dumps({
        "conn_type": "aws", "login": "key-from-connection", "password": "secret-from-connection",
        "extra": {"endpoint_url": "https://objects.example.com", "aws_session_token": "token-from-connection"}}))
    environ = {"AWS_ACCESS_KEY_ID": "key-from-env", "AWS_SECRET_ACCESS_KEY": "secret-from-env",
               "AWS_REGION": "eu-central-1"}
    assert s3_storage_options(environ, "vrec_test_s3") == {
        "AWS_ACCESS_KEY_ID": "key-from-connection", "AWS_SECRET_ACCESS_KEY": "secret-from-connection",
        "AWS_ENDPOINT_URL": "https://objects.example.com", "AWS_REGION": "eu-central-1",
        "AWS_SESSION_TOKEN": "token-from-connection"}


def test_vrec_serving_table_is_the_default_of_every_warehouse(tmp_path):
    import subprocess
    import sys

    from tests.conftest import PROJECT_ROOT, project_env

    code = "from jobs.plumbing import config; print(config.Warehouse.at('w').recommendations)"
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          env=project_env(VREC_SERVING_TABLE="s3://bucket/serving/recommendations"))
    assert done.stdout.strip() == "s3://bucket/serving/recommendations", done.stderr[-2000:]


@pytest.mark.parametrize("command", ["jobs.publish", "jobs.show_recommendations"])
def test_a_serving_table_setting_that_is_no_location_ends_with_one_line(command, tmp_path):
    import subprocess
    import sys

    from tests.conftest import PROJECT_ROOT, project_env

    done = subprocess.run([sys.executable, "-m", command, "--warehouse", str(tmp_path / "w")], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, env=project_env(VREC_SERVING_TABLE="gs://elsewhere/t"))
    stage = command.removeprefix("jobs.")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: [{stage}] serving table (--serving-table or $VREC_SERVING_TABLE): "
        "'gs://elsewhere/t' is not a table location: give a directory or s3://bucket/prefix")


@pytest.mark.parametrize("command, options", [("consumer_views", ["--user-id", "u1"]), ("show_recommendations", [])])
def test_a_reading_command_before_any_night_is_published_ends_with_one_line(command, options, tmp_path, monkeypatch,
                                                                             capsys):
    import importlib

    monkeypatch.delenv("VREC_SERVING_TABLE", raising=False)
    main = importlib.import_module(f"jobs.{command}").main
    warehouse = tmp_path / "w"
    assert main(["--warehouse", str(warehouse), *options]) == 1
    table = (warehouse / "tables" / "recommendations").resolve()
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"error: [{command}] no serving table at {table}"
