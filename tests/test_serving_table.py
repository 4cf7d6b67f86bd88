"""The serving table as a product, the same in the warehouse and on an S3-compatible object store
(moto's server on 127.0.0.1, no network; skipped when moto cannot start): the first night meets
the contract, in the serving table's storage only; deltalake, polars, DuckDB, pyarrow and the Spark
consumer views read it; readers only ever see one whole night; rollback restores an earlier night
as a new commit; retention vacuums old files; all at Delta protocol reader 1 / writer 2. What only
S3 has (conditional puts, endpoint and credentials) is in test_serving_table_s3.py."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from jobs.plumbing import config
from jobs.plumbing.stage import StageError
from tests.landing import publish_night, text_only_catalog, warehouse_after_first_night, write_landing
from tests.serving_contract import assert_whole_nights, check_explanations, check_serving_table, poll_during_publishes

pytestmark = pytest.mark.spark
FIRST_NIGHT = "2026-11-20"
BUCKET = "vrec-serving-contract"
S3_SERVING_TABLE = f"s3://{BUCKET}/serving/recommendations"
LIST_COLUMNS = ["user_id", "rank", "video_id", "score", "run_date"]


def current_lists(wh: config.Warehouse, version: int | None = None) -> pd.DataFrame:
    frame = wh.recommendations.delta_table(version).to_pandas()
    return frame.sort_values(["user_id", "rank"]).reset_index(drop=True)[LIST_COLUMNS]


@pytest.fixture(scope="module", params=["local", "s3"])
def served(request, spark, tmp_path_factory) -> tuple[config.Warehouse, str]:
    """A warehouse after one full night (top 5), and the model that night trained; its serving table
    in the warehouse (local) or on the S3 test server (s3)."""
    serving_table = None
    if request.param == "s3":
        request.getfixturevalue("s3_env")   # skips the s3 tests when moto's server cannot start
        request.getfixturevalue("s3_server").create_bucket(BUCKET)
        serving_table = S3_SERVING_TABLE
    root = tmp_path_factory.mktemp(f"serving-{request.param}") / "warehouse"
    return warehouse_after_first_night(spark, root, FIRST_NIGHT, serving_table)


def test_the_first_night_meets_the_contract_in_the_serving_tables_storage_only(served):
    from jobs.plumbing.serving import production_model

    wh, model_version = served
    local = wh.recommendations.is_local
    check_serving_table(wh, FIRST_NIGHT, top_n=5)
    assert production_model(wh) == model_version             # what the gate and `production` read
    counters = json.loads((wh.run_dir(FIRST_NIGHT) / "publish.json").read_text())
    table = str(wh.root / "tables" / "recommendations") if local else S3_SERVING_TABLE
    assert counters["table"] == table and counters["delta_version"] == 0
    # The explanations sit beside the serving table, in the same storage; on S3 nothing of either is local.
    assert counters["explanations_table"] == table.rsplit("/", 1)[0] + "/recommendation_explanations"
    for name in ("recommendations", "recommendation_explanations"):
        assert (wh.root / "tables" / name).exists() == local, name
    assert len(check_explanations(wh, FIRST_NIGHT)) == len(current_lists(wh))


def test_polars_duckdb_and_pyarrow_read_the_table(served):
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


def test_consumer_views_give_the_current_lists_with_titles(spark, served, capsys):
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
    assert list(rows["rank"]) == sorted(rows["rank"])
    assert user_recommendations(spark, "' OR '1'='1").count() == 0
    capsys.readouterr()
    assert consumer_views.main(["--warehouse", str(wh.root), "--user-id", user,
                                "--serving-table", str(wh.recommendations)]) == 0
    shown = capsys.readouterr().out
    assert all(video in shown for video in rows["video_id"])


def test_a_reader_polling_during_publishes_never_sees_a_partial_or_mixed_table(served):
    wh, model_version = served
    users = current_lists(wh)["user_id"].nunique()
    # Nights alternate between lists of 3 and of 5: any mix of two nights would show.
    dates = {f"2026-11-{day}": 3 if day % 2 else 5 for day in range(21, 27)}

    def publish_nights() -> None:
        for run_date, top_n in dates.items():
            publish_night(wh, run_date, top_n=top_n, model_version=model_version)

    snapshots = poll_during_publishes(wh, publish_nights)
    assert len(snapshots) > len(dates)
    assert len(assert_whole_nights(snapshots, users, dates, earlier_top_n=5)) >= 3


def test_rollback_to_a_date_restores_that_nights_lists_as_a_new_commit(served):
    from jobs.rollback import rollback

    wh, model_version = served
    first = current_lists(wh, version=0)
    publish_night(wh, "2026-11-28", top_n=3, model_version=model_version)
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


def test_retention_vacuums_old_nights_and_rollback_to_them_fails_clearly(served):
    from jobs.plumbing.serving import vacuum
    from jobs.rollback import rollback

    wh, model_version = served
    publish_night(wh, "2026-11-29", top_n=4, model_version=model_version)
    assert vacuum(wh.recommendations.delta_table(), retention_days=0) > 0
    assert current_lists(wh).groupby("user_id").size().eq(4).all()   # the current night is whole
    with pytest.raises(StageError, match="can no longer be restored"):
        rollback(wh, to_date=FIRST_NIGHT)


@pytest.mark.slow
def test_backfill_of_three_dates_leaves_three_versions_with_their_run_dates(tmp_path):
    import subprocess
    import sys

    from tests.conftest import PROJECT_ROOT, project_env

    wh = config.Warehouse.at(tmp_path / "warehouse")
    videos, _, rows = text_only_catalog(seed=9, n_videos=100, n_users=40)
    write_landing(wh, videos, rows)
    done = subprocess.run([sys.executable, "-m", "jobs.backfill", "--from", "2026-11-18", "--to", "2026-11-20",
                           "--warehouse", str(wh.root), "--top-n", "4", "--epochs", "3",
                           # 40 users make a noisy held-out NDCG night to night; the gate has its own test.
                           "--gate-tolerance", "1"],
                          cwd=PROJECT_ROOT, env=project_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert wh.recommendations.delta_table().version() == 2
    for version, run_date in enumerate(["2026-11-18", "2026-11-19", "2026-11-20"]):
        lists = wh.recommendations.delta_table(version).to_pandas()
        assert set(lists["run_date"].astype(str)) == {run_date}
        assert lists.groupby("user_id").size().eq(4).all()
