"""The serving table as a product: readers only ever see one whole night, rollback restores an
earlier night as a new commit, retention vacuums old files, and other readers (polars, DuckDB,
pyarrow) read it at Delta protocol reader 1 / writer 2."""

from __future__ import annotations

import pandas as pd
import pytest
from deltalake import DeltaTable

from jobs.plumbing import config
from jobs.plumbing.stage import StageError
from tests.landing import publish_first_night, text_only_catalog, write_landing
from tests.serving_contract import assert_whole_nights, poll_during_publishes

pytestmark = pytest.mark.spark
FIRST_NIGHT = "2026-11-20"
LIST_COLUMNS = ["user_id", "rank", "video_id", "score", "run_date"]


def current_lists(wh: config.Warehouse, version: int | None = None) -> pd.DataFrame:
    frame = DeltaTable(str(wh.recommendations), version=version).to_pandas()
    return frame.sort_values(["user_id", "rank"]).reset_index(drop=True)[LIST_COLUMNS]


@pytest.fixture(scope="module")
def served(spark, tmp_path_factory) -> tuple[config.Warehouse, str]:
    """A warehouse after one full night (top 5), and the model that night trained."""
    wh = config.Warehouse.at(tmp_path_factory.mktemp("serving") / "warehouse")
    videos, _, rows = text_only_catalog(seed=3, n_videos=120, n_users=50)
    write_landing(wh, videos, rows)
    return wh, publish_first_night(spark, wh, FIRST_NIGHT, top_n=5, epochs=3)


def night(wh: config.Warehouse, model_version: str, run_date: str, top_n: int) -> None:
    from jobs.publish import publish
    from jobs.score import score

    score(wh, run_date, top_n=top_n, model_version=model_version)
    publish(wh, run_date, top_n=top_n)


def test_a_reader_polling_during_publishes_never_sees_a_partial_or_mixed_table(served):
    wh, model_version = served
    users = current_lists(wh)["user_id"].nunique()
    # Nights alternate between lists of 3 and of 5: any mix of two nights would show.
    dates = {f"2026-11-{day}": 3 if day % 2 else 5 for day in range(21, 27)}

    def publish_nights() -> None:
        for run_date, top_n in dates.items():
            night(wh, model_version, run_date, top_n)

    snapshots = poll_during_publishes(wh, publish_nights)
    assert len(snapshots) > len(dates)
    assert len(assert_whole_nights(snapshots, users, dates, earlier_top_n=5)) >= 3


def test_rollback_to_a_date_restores_that_nights_lists_as_a_new_commit(served):
    from jobs.rollback import rollback

    wh, model_version = served
    first = current_lists(wh, version=0)
    night(wh, model_version, "2026-11-28", top_n=3)
    before = DeltaTable(str(wh.recommendations)).version()

    counters = rollback(wh, to_date=FIRST_NIGHT)
    table = DeltaTable(str(wh.recommendations))
    assert counters["restored_version"] == 0 and table.version() == before + 1
    assert current_lists(wh).equals(first)
    assert (table.protocol().min_reader_version, table.protocol().min_writer_version) == (1, 2)
    assert current_lists(wh, version=before)["rank"].max() == 3      # the rolled-back night stays readable

    rollback(wh, to_version=before)
    assert current_lists(wh).equals(current_lists(wh, version=before))
    with pytest.raises(StageError, match="no lists published for 2026-10-01"):
        rollback(wh, to_date="2026-10-01")


def test_retention_vacuums_old_nights_and_rollback_to_them_fails_clearly(served):
    from jobs.rollback import rollback
    from jobs.plumbing.serving import vacuum

    wh, model_version = served
    night(wh, model_version, "2026-11-29", top_n=4)
    assert vacuum(DeltaTable(str(wh.recommendations)), retention_days=0) > 0
    assert current_lists(wh).groupby("user_id").size().eq(4).all()   # the current night is whole
    with pytest.raises(StageError, match="can no longer be restored"):
        rollback(wh, to_date=FIRST_NIGHT)


def test_polars_duckdb_and_pyarrow_read_the_table(served):
    import duckdb
    import polars as pl
    import pyarrow.dataset as ds

    wh, _ = served
    expected = current_lists(wh)
    by_polars = pl.read_delta(str(wh.recommendations)).sort(["user_id", "rank"])
    assert by_polars["video_id"].to_list() == expected["video_id"].to_list()
    assert {str(d) for d in by_polars["run_date"].unique()} == {str(d) for d in expected["run_date"].unique()}
    arrow = DeltaTable(str(wh.recommendations)).to_pyarrow_dataset()
    assert isinstance(arrow, ds.Dataset) and arrow.count_rows() == len(expected)
    duck = duckdb.connect()
    duck.register("recommendations", arrow)
    assert duck.sql("select count(distinct user_id) from recommendations").fetchall()[0][0] == \
        expected["user_id"].nunique()


def test_consumer_views_give_the_current_lists_with_titles(spark, served):
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
    table = DeltaTable(str(wh.recommendations))
    assert table.version() == 2
    for version, run_date in enumerate(["2026-11-18", "2026-11-19", "2026-11-20"]):
        lists = DeltaTable(str(wh.recommendations), version=version).to_pandas()
        assert set(lists["run_date"].astype(str)) == {run_date}
        assert lists.groupby("user_id").size().eq(4).all()
