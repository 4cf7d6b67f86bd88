"""The serving-table contract of DESIGN.md as one check, shared by the end-to-end tests."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
from deltalake import DeltaTable

from jobs.plumbing import config
from jobs.plumbing.tables import read_table

EXPECTED_SCHEMA = {
    "user_id": pa.string(), "rank": pa.int32(), "video_id": pa.string(), "score": pa.float64(),
    "model_version": pa.string(), "run_date": pa.date32(), "generated_at": pa.timestamp("us", tz="UTC"),
}


def check_serving_table(wh: config.Warehouse, run_date: str, top_n: int) -> pd.DataFrame:
    """Assert every bullet of the serving-table contract; return the lists."""
    table = DeltaTable(str(wh.recommendations))
    protocol = table.protocol()
    assert (protocol.min_reader_version, protocol.min_writer_version) == (1, 2)
    arrow = table.to_pyarrow_table()
    assert {f.name: f.type for f in arrow.schema} == EXPECTED_SCHEMA
    assert [f.name for f in arrow.schema] == list(EXPECTED_SCHEMA)
    lists = arrow.to_pandas()

    assert (lists["run_date"] == dt.date.fromisoformat(run_date)).all()
    assert lists["model_version"].str.len().gt(0).all()
    assert lists["generated_at"].nunique() == 1

    interactions = read_table(wh.interactions, ["user_id", "video_id"]).to_pandas()
    catalog = set(read_table(wh.catalog, ["video_id"]).to_pandas()["video_id"])
    # One list per user with at least one valid interaction, and no one else.
    assert set(lists["user_id"]) == set(interactions["user_id"])
    assert set(lists["video_id"]) <= catalog
    seen = interactions.groupby("user_id")["video_id"].agg(set)
    for user, rows in lists.sort_values(["user_id", "rank"]).groupby("user_id"):
        eligible = len(catalog - seen[user])
        assert list(rows["rank"]) == list(range(1, min(top_n, eligible) + 1)), user
        assert rows["video_id"].is_unique, user
        assert not set(rows["video_id"]) & seen[user], user
        assert (rows["score"].diff().dropna() <= 1e-12).all(), user
    return lists
