"""DAG integrity: every DAG file imports cleanly and fast, with no heavy modules at the top,
and every task has retries and a timeout; the DAG has tags, params and docs."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT, project_env

DAG_FILES = sorted((PROJECT_ROOT / "dags").glob("*.py"))
HEAVY = ("pandas", "torch", "pyspark", "lightgbm", "librosa", "cv2", "sentence_transformers", "deltalake")

PROBE = """
import importlib.util, json, sys, time
import airflow.sdk  # the DAG processor has Airflow loaded already: time only the DAG file's own work
path = sys.argv[1]
started = time.perf_counter()
spec = importlib.util.spec_from_file_location("dag_under_test", path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
seconds = time.perf_counter() - started
from airflow.sdk import DAG
dags = [v for v in vars(module).values() if isinstance(v, DAG)]
print(json.dumps({
    "seconds": seconds,
    "heavy": sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[2].split(","))),
    "dags": [{
        "dag_id": d.dag_id, "tags": sorted(d.tags), "params": sorted(d.params.keys()),
        "param_types": {k: d.params.get_param(k).schema.get("type") for k in d.params.keys()},
        "doc": bool(d.doc_md), "max_active_runs": d.max_active_runs, "catchup": d.catchup,
        "scheduled_on": [a.uri for a in getattr(getattr(d.timetable, "asset_condition", None), "objects", ())],
        "tasks": [{"id": t.task_id, "retries": t.retries, "timeout": bool(t.execution_timeout),
                   "outlets": [o.uri for o in t.outlets]} for t in d.tasks],
    } for d in dags],
}))
"""


def _probe(path: Path, **env: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="airflow-parse-") as airflow_home:
        done = subprocess.run([sys.executable, "-c", PROBE, str(path), ",".join(HEAVY)], capture_output=True,
                              text=True, env=project_env(AIRFLOW_HOME=airflow_home, **env))
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("path", DAG_FILES, ids=[p.name for p in DAG_FILES])
def test_dag_file_imports_light_and_every_task_is_guarded(path):
    result = _probe(path)
    assert result["seconds"] < 2.0, result["seconds"]
    assert result["heavy"] == []
    assert result["dags"], "a DAG file must define a DAG"
    for dag in result["dags"]:
        assert dag["tags"] and dag["doc"]
        for task in dag["tasks"]:
            assert task["retries"] >= 1 and task["timeout"], task


def test_nightly_dag_wiring_and_params():
    result = _probe(PROJECT_ROOT / "dags" / "video_recs_nightly.py")
    dag = result["dags"][0]
    assert dag["dag_id"] == "video_recs_nightly"
    assert {"warehouse", "top_n", "full_refresh", "skip_training", "model_version", "scoring_engine",
            "training_mode"} <= set(dag["params"])
    assert all(dag["param_types"].values()), dag["param_types"]       # the trigger form validates each
    assert dag["max_active_runs"] == 1 and dag["catchup"] is False
    assert [t["id"] for t in dag["tasks"]] == ["package", "erase_users", "ingest", "extract_features", "validate_features", "train", "evaluate",
                                               "score", "publish", "report"]


def test_the_recommendations_asset_names_where_the_serving_table_is():
    """Downstream DAGs schedule on the publish task's asset: the local table, or the object-store one."""
    nightly = PROJECT_ROOT / "dags" / "video_recs_nightly.py"
    consumer = PROJECT_ROOT / "dags" / "recommendations_consumer.py"
    for env, uri in (({"VREC_WAREHOUSE": "/data/wh"}, "file:///data/wh/tables/recommendations"),
                     ({"VREC_SERVING_TABLE": "s3://recs/serving/recommendations"}, "s3://recs/serving/recommendations")):
        tasks = {t["id"]: t for t in _probe(nightly, **env)["dags"][0]["tasks"]}
        assert tasks["publish"]["outlets"] == [uri]
        assert _probe(consumer, **env)["dags"][0]["scheduled_on"] == [uri]


def test_failure_callback_writes_a_clear_record(tmp_path):
    """The callback with the context Airflow hands it: the record names the task, the try and the error."""
    import importlib.util
    from types import SimpleNamespace

    spec = importlib.util.spec_from_file_location("nightly_dag", PROJECT_ROOT / "dags" / "video_recs_nightly.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ti = SimpleNamespace(dag_id="video_recs_nightly", task_id="ingest", run_id="manual__1", try_number=3,
                         log_url="http://localhost:8080/log")
    module.record_failure({"ti": ti, "ds": "2026-11-20", "params": {"warehouse": str(tmp_path)},
                           "exception": RuntimeError("Traceback ...\nerror: [ingest] no interaction files")})
    record = json.loads((tmp_path / "runs" / "2026-11-20" / "failures" / "ingest.json").read_text())
    assert record["task_id"] == "ingest" and record["try_number"] == 3
    assert record["error"] == "error: [ingest] no interaction files"
    assert record["log_url"] == "http://localhost:8080/log"
