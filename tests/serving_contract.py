"""The serving-table contract of DESIGN.md as one check, shared by the end-to-end tests, and the
check that a reader polling during publishes only ever sees whole nights (local and on S3)."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa

from jobs.plumbing import config
from jobs.plumbing.tables import read_table

EXPECTED_SCHEMA = {
    "user_id": pa.string(), "rank": pa.int32(), "video_id": pa.string(), "score": pa.float64(),
    "model_version": pa.string(), "run_date": pa.date32(), "generated_at": pa.timestamp("us", tz="UTC"),
}


def check_serving_table(wh: config.Warehouse, run_date: str, top_n: int) -> pd.DataFrame:
    """Assert every bullet of the serving-table contract; return the lists."""
    table = wh.recommendations.delta_table()
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


def poll_during_publishes(wh: config.Warehouse, publish_nights: Callable[[], None]) -> list[pd.DataFrame]:
    """Read the latest version of the serving table over and over while `publish_nights` runs;
    every snapshot read. A failed read fails the check: readers must never see one."""
    snapshots, failures, done = [], [], threading.Event()

    def poll() -> None:
        while not done.is_set():
            try:
                frame = wh.recommendations.delta_table().to_pandas()
            except Exception as err:  # noqa: BLE001 -- a failed read is itself a finding
                failures.append(repr(err))
                continue
            snapshots.append(frame)

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        publish_nights()
    finally:
        done.set()
        reader.join()
    assert not failures, failures[:3]
    return snapshots


def assert_whole_nights(snapshots: list[pd.DataFrame], users: int, top_n_by_date: dict[str, int],
                        earlier_top_n: int) -> set[str]:
    """Each snapshot is one night's lists, whole (every user, that night's list length); returns
    the nights seen. A night not in `top_n_by_date` is the one before them, of `earlier_top_n`."""
    nights_seen = set()
    for frame in snapshots:
        run_dates = frame["run_date"].astype(str).unique()
        assert len(run_dates) == 1, run_dates
        expected = top_n_by_date.get(run_dates[0], earlier_top_n)
        assert frame["user_id"].nunique() == users
        assert frame.groupby("user_id").size().eq(expected).all()
        nights_seen.add(run_dates[0])
    return nights_seen


def check_explanations(wh: config.Warehouse, run_date: str) -> pd.DataFrame:
    """Assert the explanations contract against the latest lists: one row per published (user,
    video) with the same rank, run date and model version, shares summing to 1, a `because` only
    from the user's own history; return the lists joined with their explanations."""
    from models.explanations import REASONS

    table = wh.explanations.delta_table()
    protocol = table.protocol()
    assert (protocol.min_reader_version, protocol.min_writer_version) == (1, 2)
    arrow = table.to_pyarrow_table()
    assert tuple(arrow.schema.names) == config.EXPLANATION_COLUMNS
    explanations = arrow.to_pandas()
    lists = wh.recommendations.delta_table().to_pandas()
    assert len(explanations) == len(lists)
    for column in ("run_date", "model_version"):
        assert set(explanations[column]) == set(lists[column]), column
    assert set(lists["run_date"]) == {dt.date.fromisoformat(run_date)}
    keys = ["user_id", "video_id", "run_date", "model_version"]
    joined = lists.merge(explanations, on=keys, how="inner", suffixes=("", "_explained"))
    assert len(joined) == len(lists) and (joined["rank"] == joined["rank_explained"]).all()

    shares = joined[list(config.SHARE_COLUMNS)].to_numpy()
    assert (shares >= 0).all() and (shares <= 1).all()
    assert abs(shares.sum(axis=1) - 1.0).max() <= 1e-6
    assert joined["reason"].isin(REASONS).all()
    assert (joined["because_video_id"].isna() == joined["because_similarity"].isna()).all()
    interactions = read_table(wh.interactions, ["user_id", "video_id"]).to_pandas()
    history = set(zip(interactions["user_id"], interactions["video_id"]))
    explained = joined[joined["because_video_id"].notna()]
    assert all((u, v) in history for u, v in zip(explained["user_id"], explained["because_video_id"]))
    return joined


def same_genre_share(joined: pd.DataFrame, genre: dict[str, str], warm: set[str]) -> float:
    """Of the recommendations of warm videos, the share whose `because` video (from the user's
    history, see check_explanations) has the recommended video's genre."""
    rows = joined[joined["video_id"].isin(warm)]
    hits = rows["because_video_id"].map(genre) == rows["video_id"].map(genre)
    return float(hits.mean())


def genre_watched_share(wh: config.Warehouse, joined: pd.DataFrame, genre: dict[str, str], warm: set[str]) -> float:
    """Of the same recommendations, the share whose genre the user has watched at all (skips
    excluded): the most `same_genre_share` can reach, whatever the lists."""
    interactions = read_table(wh.interactions, ["user_id", "video_id", "event"]).to_pandas()
    interactions = interactions[interactions["event"] != "skip"]
    watched = interactions.assign(genre=interactions["video_id"].map(genre)).groupby("user_id")["genre"].agg(set)
    rows = joined[joined["video_id"].isin(warm)]
    return float(np.mean([genre[v] in watched.get(u, set()) for u, v in zip(rows["user_id"], rows["video_id"])]))
