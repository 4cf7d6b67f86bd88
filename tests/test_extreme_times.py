"""Times at the ends of ISO-8601's range, 0001-01-01 and 9999-12-31 (upstream systems write them
for "unset" and "never"), in every landing format and as native Parquet timestamps of every unit:
ingest keeps them exactly and sets aside (or nulls) only instants outside the range; the model
inputs read them as seconds; and a catalog with both still publishes a list for every user."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.plumbing import config
from jobs.ingest import ingest
from jobs.plumbing.tables import read_table

pytestmark = pytest.mark.spark
RUN_DATE = "2026-11-20"
UTC = dt.timezone.utc
NEVER = dt.datetime(9999, 12, 31, tzinfo=UTC)
ZERO = dt.datetime(1, 1, 1, tzinfo=UTC)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)


def seconds(moment: dt.datetime) -> float:
    return (moment - EPOCH).total_seconds()


def extreme_landing(wh: config.Warehouse) -> None:
    wh.landing_catalog.mkdir(parents=True)
    wh.landing_interactions.mkdir(parents=True)
    pd.DataFrame({
        "video_id": ["v1", "v2", "v3"],
        "title": ["never", "zero", "year 10000"],
        # v3: 9999-12-31T23:59:59 five hours west of UTC is year 10000 in UTC; 14 digits of epoch
        # seconds once overflowed the parser.
        "published_at": ["9999-12-31T00:00:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59-05:00"],
        "updated_at": ["0001-01-01T00:00:00Z", "", "99999999999999"],
    }).to_csv(wh.landing_catalog / "a.csv", index=False)
    (wh.landing_catalog / "b.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"video_id": "v4", "title": "epochs", "published_at": 253402300799, "updated_at": "-62135596800"},
        {"video_id": "v5", "title": "five digits", "published_at": "10000-01-01T00:00:00Z"},
    ]) + "\n")
    pq.write_table(pa.table({
        "video_id": ["v6", "v7", "v8"], "title": ["native us", "native ms", "no times"],
        "published_at": pa.array([NEVER, ZERO, None], pa.timestamp("us", tz="UTC")),
        "updated_at": pa.array([ZERO.replace(tzinfo=None), dt.datetime(9999, 12, 31, 23, 59, 59, 999000), None],
                               pa.timestamp("ms")),
    }), wh.landing_catalog / "c.parquet")
    # What pandas writes by default: nanoseconds, which Spark's Parquet reader rejects on its own;
    # and epoch seconds with a fraction, as a double.
    pd.DataFrame({"video_id": ["v9"], "title": ["pandas"],
                  "published_at": pd.to_datetime(["2026-11-19T12:00:00.123456Z"]),
                  "updated_at": [1762000000.5]}).to_parquet(wh.landing_catalog / "d.parquet")

    pd.DataFrame({
        "user_id": ["u1", "u1", "u2", "u2", "u3"],
        "video_id": ["v1", "v2", "v1", "v2", "v1"],
        "ts": ["0001-01-01T00:00:00Z", "9999-12-31T00:00:00Z", "99999999999999", "2026-11-01T00:00:00Z",
               "0001-01-01T00:00:00+01:00"],
    }).to_csv(wh.landing_interactions / "a.csv", index=False)
    (wh.landing_interactions / "b.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"user_id": "u5", "video_id": "v8", "ts": -62135596800},
        {"user_id": "u5", "video_id": "v7", "ts": 253402300800},       # year 10000
    ]) + "\n")
    pq.write_table(pa.table({"user_id": ["u3", "u3"], "video_id": ["v6", "v7"],
                             "ts": pa.array([ZERO, NEVER], pa.timestamp("us", tz="UTC"))}),
                   wh.landing_interactions / "c.parquet")
    pd.DataFrame({"user_id": ["u4"], "video_id": ["v9"],
                  "ts": pd.to_datetime(["2026-11-10T08:00:00Z"])}).to_parquet(wh.landing_interactions / "d.parquet")


def test_every_landing_format_takes_times_from_year_0001_to_9999(spark, tmp_path):
    from jobs.plumbing.model_inputs import PUBLISHED_AT_S, load_model_inputs

    wh = config.Warehouse.at(tmp_path / "wh")
    extreme_landing(wh)
    counters = ingest(spark, wh, RUN_DATE, max_bad_row_share=1.0)

    catalog = read_table(wh.catalog).to_pandas(timestamp_as_object=True).set_index("video_id")
    published = catalog["published_at"].to_dict()
    updated = catalog["updated_at"].to_dict()
    assert published == {
        "v1": NEVER, "v2": ZERO, "v3": None, "v4": dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
        "v5": None, "v6": NEVER, "v7": ZERO, "v8": None,
        "v9": dt.datetime(2026, 11, 19, 12, 0, 0, 123456, tzinfo=UTC)}
    assert updated == {
        "v1": ZERO, "v2": None, "v3": None, "v4": ZERO, "v5": None, "v6": ZERO,
        "v7": dt.datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC), "v8": None,
        "v9": dt.datetime(2025, 11, 1, 12, 26, 40, 500000, tzinfo=UTC)}
    # v3's two, v5's: given, but no time in 0001..9999. A row is never dropped for its times.
    assert counters["catalog_bad_timestamps"] == {"published_at": 2, "updated_at": 1}
    assert counters["videos"] == 9 and counters["catalog_rows_rejected"] == 0

    # Spark writes microseconds, not INT96 (which a plain pyarrow reader takes as nanoseconds).
    written = next(wh.catalog.glob("*.parquet"))
    assert pq.read_schema(written).field("published_at").type == pa.timestamp("us", tz="UTC")

    assert counters["rejected_reasons"] == {"bad_timestamp": 3, "after_run_date": 2}
    interactions = read_table(wh.interactions).to_pandas(timestamp_as_object=True)
    assert sorted(zip(interactions["user_id"], interactions["video_id"], interactions["ts"])) == [
        ("u1", "v1", ZERO), ("u2", "v2", dt.datetime(2026, 11, 1, tzinfo=UTC)), ("u3", "v6", ZERO),
        ("u4", "v9", dt.datetime(2026, 11, 10, 8, tzinfo=UTC)), ("u5", "v8", ZERO)]

    # What train, evaluate and score read: seconds, exact at both ends of the range.
    inputs = load_model_inputs(wh)
    items = inputs.items.set_index("video_id")
    assert items.loc["v1", PUBLISHED_AT_S] == seconds(NEVER)
    assert items.loc["v2", PUBLISHED_AT_S] == seconds(ZERO) == -62135596800
    assert np.isnan(items.loc["v3", PUBLISHED_AT_S])
    ts = {(inputs.user_ids[u], inputs.video_ids[v]): t for u, v, t in zip(inputs.data.user, inputs.data.item,
                                                                         inputs.data.ts)}
    assert ts == {("u1", "v1"): seconds(ZERO), ("u2", "v2"): seconds(dt.datetime(2026, 11, 1, tzinfo=UTC)),
                  ("u3", "v6"): seconds(ZERO), ("u4", "v9"): seconds(dt.datetime(2026, 11, 10, 8, tzinfo=UTC)),
                  ("u5", "v8"): seconds(ZERO)}


def test_never_and_unset_times_still_give_every_user_a_list(spark, tmp_path):
    """9999-12-31 and 0001-01-01 `published_at` beside good rows, and a view in year 0001 (the
    re-ranker's age of that video: 739,000 days): extract, train, score and publish all run, and
    every user with a valid interaction gets a full list."""
    from deltalake import DeltaTable

    from tests.landing import publish_first_night, text_only_catalog, write_landing

    wh = config.Warehouse.at(tmp_path / "wh")
    videos, _, rows = text_only_catalog(seed=5, n_videos=24, n_users=8)
    write_landing(wh, videos, rows)
    with (wh.landing_catalog / "catalog.jsonl").open("a") as catalog:
        for video_id, title, published in [("never", "Coming never: a trailer", "9999-12-31T00:00:00Z"),
                                           ("unset", "An old upload with its date unset", "0001-01-01T00:00:00Z")]:
            catalog.write(json.dumps({"video_id": video_id, "title": title, "published_at": published}) + "\n")
    user = rows[0]["user_id"]
    (wh.landing_interactions / "extremes.jsonl").write_text(
        json.dumps({"user_id": user, "video_id": "unset", "ts": "0001-01-01T00:00:00Z"}) + "\n"
        + json.dumps({"user_id": user, "video_id": "never", "ts": "2026-11-19T21:00:00Z"}) + "\n")

    publish_first_night(spark, wh, RUN_DATE, top_n=3, epochs=1)

    catalog = read_table(wh.catalog, ["video_id", "published_at"]).to_pandas(timestamp_as_object=True)
    assert set(catalog["published_at"]) >= {NEVER, ZERO}
    interactions = read_table(wh.interactions, ["user_id", "video_id", "ts"]).to_pandas(timestamp_as_object=True)
    assert (user, "unset", ZERO) in set(interactions.itertuples(index=False, name=None))
    users = set(interactions["user_id"])
    lists = DeltaTable(str(wh.recommendations)).to_pandas()
    assert len(users) == 8 and set(lists["user_id"]) == users
    assert lists.groupby("user_id").size().eq(3).all()
    assert not set(lists.loc[lists["user_id"] == user, "video_id"]) & {"unset", "never"}   # seen: excluded
