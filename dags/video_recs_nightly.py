"""
### video_recs_nightly

The nightly audio/video recommendation batch: landing files in, a Delta serving table of top-N
lists per user out.

| task | what it does |
|---|---|
| `package` | the project archive (`jobs/ features/ models/ sql/`) that the Spark stages ship to executors (`py_files`) |
| `erase_users` | the deletion requests in `landing/deletion_requests/`: the users' rows out of the landing files, every table and model, the serving table's history cut |
| `ingest` | Spark: landing catalog and interactions -> tables; bad rows set aside with a reason |
| `extract_features` | Spark: one ffmpeg decode per new or changed video -> visual, MFCC and text features |
| `validate_features` | Great Expectations suite over the feature table (types, ranges, coverage) |
| `train` | the fused two-tower model and its LightGBM re-ranker (torch; `gpu` pool, CUDA when the worker has it): a full retrain, or the production model updated with the interactions since its window (`training_mode`) |
| `evaluate` | tonight's model against most-popular, item-kNN, ALS and BPR on held-out interactions; the modality ablation and the re-ranker's gain; metrics table, HTML report, and the gate: a model clearly worse than production is not published |
| `score` | Spark: top-N per user, seen videos excluded, cold videos from content; in this process (`scoring_engine` `local`) or on the executors (`spark`), the same lists; then an explanation of each listed video |
| `publish` | lists and their explanations validated, then one Delta commit of the explanations (`recommendation_explanations`, beside the serving table) and one that replaces the previous night's lists |
| `report` | the run's counters as one JSON line |

A failed task writes `runs/<ds>/failures/<task_id>.json` in the warehouse (what, when, which try,
the error, the log link). Params: `warehouse` (root directory on a local or shared file system; the serving table may be on
S3 via VREC_SERVING_TABLE), `top_n`, `full_refresh`
(decode every video again and retrain fully), `training_mode` (`auto`, `full` or `incremental`),
`skip_training` (score with the production model, or the pinned one),
`model_version` (pin a model from `tables/models/`), `scoring_engine` (`local` or `spark`). The
Spark stages run where the `spark_default` connection points (`local[*]`, a standalone master, YARN,
Kubernetes); executors import the project only from the archive the `package` task built. Every stage is idempotent for its run date
(`{{ ds }}`).

Privacy settings come from the workers' environment, not params, because they must hold for every
night alike (README, "Privacy"): `VREC_PSEUDONYMISE=1` with `VREC_PSEUDONYM_KEY_FILE` or
`VREC_PSEUDONYM_KEY_CONN_ID` (user ids become keyed pseudonyms at ingest; without the key every
task fails before any work), and `VREC_INTERACTION_RETENTION_DAYS` (interactions older than that
many days are dropped at ingest; unset: kept).
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, Asset, Param

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The interpreter that has the project's packages: the one Airflow runs in, unless told otherwise.
PYTHON = os.environ.get("VREC_PYTHON", sys.executable)
DEFAULT_WAREHOUSE = os.environ.get("VREC_WAREHOUSE", str(PROJECT_ROOT / "warehouse"))
SPARK_CONN_ID = os.environ.get("VREC_SPARK_CONN_ID", "spark_default")
# Cluster resources of the Spark stages (unset: Spark's defaults, right for local[*]); the master
# and deploy mode come from the connection.
SPARK_RESOURCES = {name: cast(os.environ[variable]) for name, variable, cast in (
    ("executor_memory", "VREC_SPARK_EXECUTOR_MEMORY", str), ("executor_cores", "VREC_SPARK_EXECUTOR_CORES", int),
    ("num_executors", "VREC_SPARK_NUM_EXECUTORS", int), ("driver_memory", "VREC_SPARK_DRIVER_MEMORY", str),
) if os.environ.get(variable)}

# What downstream DAGs schedule on: updated by a successful extract_features / publish.
VIDEO_FEATURES = Asset(name="video_recs_video_features", uri=f"file://{DEFAULT_WAREHOUSE}/tables/video_features")
# The serving table may live on object storage (VREC_SERVING_TABLE): the asset names where it is.
RECOMMENDATIONS = Asset(name="video_recs_recommendations",
                        uri=os.environ.get("VREC_SERVING_TABLE") or f"file://{DEFAULT_WAREHOUSE}/tables/recommendations")

# Values reach the jobs through the environment, never pasted into a shell command line.
STAGE_ENV = {
    "VREC_WAREHOUSE": "{{ params.warehouse }}",
    "VREC_RUN_DATE": "{{ ds }}",
    "VREC_TOP_N": "{{ params.top_n }}",
    "VREC_SKIP_TRAINING": "{{ params.skip_training }}",
    "VREC_TRAINING_MODE": "{{ params.training_mode }}",
    "VREC_FULL_REFRESH_FLAG": "{{ '--full-refresh' if params.full_refresh else '--no-full-refresh' }}",
    "PYTHONPATH": str(PROJECT_ROOT),
    "PYSPARK_PYTHON": PYTHON,
}
STAGE_ARGS = ["--warehouse", "{{ params.warehouse }}", "--run-date", "{{ ds }}"]

def record_failure(context) -> None:
    """On a task's failure: `<warehouse>/runs/<ds>/failures/<task_id>.json` says what failed, when,
    on which try, why (the error's last line) and where the log is, for on-call and dashboards."""
    import json
    from datetime import datetime, timezone

    ti, params = context["ti"], context.get("params") or {}
    folder = Path(params.get("warehouse") or DEFAULT_WAREHOUSE) / "runs" / context["ds"] / "failures"
    record = {
        "dag_id": ti.dag_id, "task_id": ti.task_id, "run_id": ti.run_id, "try_number": ti.try_number,
        "run_date": context["ds"], "failed_at": datetime.now(timezone.utc).isoformat(),
        "error": (str(context.get("exception") or "unknown error").strip().splitlines() or ["?"])[-1],
        "log_url": getattr(ti, "log_url", None),
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{ti.task_id}.json").write_text(json.dumps(record, indent=1) + "\n")


default_args = {
    "owner": "recommendations",
    "on_failure_callback": record_failure,
    "retries": 2,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=30),
    "execution_timeout": timedelta(hours=2),
}
# A training task that exits with this code is marked skipped (the skip_training param).
SKIPPED = 99


def spark_stage(task_id: str, extra_args: list[str] | None = None, **kwargs) -> SparkSubmitOperator:
    return SparkSubmitOperator(
        task_id=task_id,
        conn_id=SPARK_CONN_ID,
        application=str(PROJECT_ROOT / "jobs" / f"{task_id}.py"),
        application_args=STAGE_ARGS + (extra_args or []),
        name=f"vrec-{task_id}",
        env_vars=STAGE_ENV,
        # Executors import the project only from this archive, never from a checkout.
        py_files="{{ ti.xcom_pull(task_ids='package') }}",
        conf={"spark.pyspark.python": PYTHON, "spark.sql.session.timeZone": "UTC"},
        **SPARK_RESOURCES,
        **kwargs,
    )


def python_stage(task_id: str, args: str = "", prefix: str = "", **kwargs) -> BashOperator:
    return BashOperator(
        task_id=task_id,
        bash_command=f'{prefix}"{PYTHON}" -m jobs.{task_id} --warehouse "$VREC_WAREHOUSE" '
                     f'--run-date "$VREC_RUN_DATE" {args}',
        env=STAGE_ENV,
        append_env=True,
        cwd=str(PROJECT_ROOT),
        **kwargs,
    )


with DAG(
    dag_id="video_recs_nightly",
    description="Nightly audio/video recommendations: features, fused model, top-N serving table",
    # VREC_SCHEDULE="" leaves only manual triggers (and backfills).
    schedule=os.environ.get("VREC_SCHEDULE", "0 2 * * *") or None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args,
    doc_md=__doc__,
    tags=["recommendations", "video", "nightly"],
    params={
        "warehouse": Param(DEFAULT_WAREHOUSE, type="string", minLength=1,
                           description="Warehouse root: a directory on a local or shared file system, not an "
                                       "object store (only the serving table may be on S3: VREC_SERVING_TABLE)"),
        "top_n": Param(20, type="integer", minimum=1, maximum=1000, description="Videos per user list"),
        "full_refresh": Param(False, type="boolean", description="Decode every video again and retrain fully"),
        "training_mode": Param("auto", type="string", enum=["auto", "full", "incremental"],
                               description="full: retrain from scratch; incremental: update the production model "
                                           "with the interactions since its window; auto: incremental, but full "
                                           "every VREC_FULL_RETRAIN_DAYS days (7) and when incremental cannot apply"),
        "skip_training": Param(False, type="boolean",
                               description="Score with the production model (or model_version) instead of training"),
        # Optional (null allowed), or the trigger form would refuse to submit without a value.
        "model_version": Param(None, type=["null", "string"], pattern=r"^[A-Za-z0-9._-]+$", maxLength=128,
                               description="Pin a model version from tables/models (empty: tonight's model)"),
        "scoring_engine": Param("local", type="string", enum=["local", "spark"],
                                description="Where the lists are computed: 'local' (the score task's process) or "
                                            "'spark' (users as partitions on the executors); the same lists"),
    },
) as dag:
    # The last line it prints (the archive's path) is its XCom, which the Spark stages ship.
    package = BashOperator(
        task_id="package",
        bash_command=f'"{PYTHON}" -m jobs.package --out "$VREC_WAREHOUSE/runs/$VREC_RUN_DATE/dist"',
        env=STAGE_ENV, append_env=True, cwd=str(PROJECT_ROOT))
    erase_users = python_stage("erase_users")
    ingest = spark_stage("ingest")
    extract_features = spark_stage(
        "extract_features", ["{{ '--full-refresh' if params.full_refresh else '--no-full-refresh' }}"],
        outlets=[VIDEO_FEATURES])
    validate_features = python_stage("validate_features")
    unless_skipped = f'[ "$VREC_SKIP_TRAINING" != "True" ] || exit {SKIPPED}; '
    train = python_stage("train", '--training-mode "$VREC_TRAINING_MODE" "$VREC_FULL_REFRESH_FLAG"',
                         prefix=unless_skipped, skip_on_exit_code=SKIPPED,
                         pool=os.environ.get("VREC_GPU_POOL", "gpu"), queue=os.environ.get("VREC_GPU_QUEUE", "gpu"))
    evaluate = python_stage("evaluate", prefix=unless_skipped, skip_on_exit_code=SKIPPED)
    # A spark-submit application either way; with the local engine it starts no SparkSession. An
    # empty --model-version: tonight's model; with skip_training and no pin, the model serving now.
    score = spark_stage("score", ["--top-n", "{{ params.top_n }}", "--engine", "{{ params.scoring_engine }}",
                                  "--model-version={{ params.model_version or ('production' if params.skip_training else '') }}"],
                        trigger_rule="none_failed")
    publish = python_stage("publish", '--top-n "$VREC_TOP_N"', outlets=[RECOMMENDATIONS])
    report = python_stage("report")

    package >> erase_users >> ingest >> extract_features >> validate_features >> train >> evaluate >> score >> publish >> report
