"""
### video_recs_consumer_example

An example downstream DAG: it runs whenever `video_recs_nightly` publishes new lists (the
`video_recs_recommendations` asset), and prints the serving table's current version with a few
lists, the way a consumer such as an e-mail digest or a cache warmer would start.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, Asset

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PYTHON = os.environ.get("VREC_PYTHON", sys.executable)
DEFAULT_WAREHOUSE = os.environ.get("VREC_WAREHOUSE", str(PROJECT_ROOT / "warehouse"))
# The asset video_recs_nightly's publish task updates, named as that DAG names it: the object-store
# table when VREC_SERVING_TABLE is set, else the warehouse's (one name cannot have two uris).
RECOMMENDATIONS = Asset(name="video_recs_recommendations",
                        uri=os.environ.get("VREC_SERVING_TABLE") or f"file://{DEFAULT_WAREHOUSE}/tables/recommendations")

with DAG(
    dag_id="video_recs_consumer_example",
    description="Example consumer of the serving table, scheduled on its asset",
    schedule=[RECOMMENDATIONS],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "recommendations", "retries": 2, "retry_delay": timedelta(minutes=1),
                  "execution_timeout": timedelta(minutes=10)},
    doc_md=__doc__,
    tags=["recommendations", "example", "consumer"],
) as dag:
    BashOperator(
        task_id="show_latest_lists",
        bash_command=f'"{PYTHON}" -m jobs.show_recommendations --warehouse "$VREC_WAREHOUSE" --users 3',
        env={"VREC_WAREHOUSE": DEFAULT_WAREHOUSE, "PYTHONPATH": str(PROJECT_ROOT)},
        append_env=True,
        cwd=str(PROJECT_ROOT),
    )
