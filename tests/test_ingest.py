"""Ingest on a landing zone of mixed formats with known bad rows: exact counts and reasons."""

import json

import pandas as pd
import pytest

from jobs.plumbing import config
from jobs.ingest import ingest
from jobs.plumbing.stage import StageError
from jobs.plumbing.tables import read_table

pytestmark = pytest.mark.spark
RUN_DATE = "2026-11-20"


def _landing(tmp_path) -> config.Warehouse:
    wh = config.Warehouse.at(tmp_path / "wh")
    wh.landing_catalog.mkdir(parents=True)
    wh.landing_interactions.mkdir(parents=True)
    # a.csv then b.jsonl: for v2 the later file wins (no updated_at); for v1 the newer updated_at wins.
    pd.DataFrame({"video_id": ["v1", "v2", "", "v3"], "title": ["old one", "two (a)", "no id", "three"],
                  "tags": ["x|y", "", "", "z"], "updated_at": ["2026-11-02T00:00:00Z", "", "", ""]}
                 ).to_csv(wh.landing_catalog / "a.csv", index=False)
    (wh.landing_catalog / "b.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"video_id": "v1", "title": "stale one", "updated_at": "2026-11-01T00:00:00Z", "tags": ["q"]},
        {"video_id": "v2", "title": "two (b)", "tags": ["p", "r"], "uri": "two.mp4"},
    ]) + "\n")
    pd.DataFrame({
        "user_id": ["u1", "u1", "u2", "", "u3", "u3", "u4", "u4", "u1"],
        "video_id": ["v1", "v2", "v3", "v1", "v9", "v1", "v2", "v3", "v1"],
        "ts": ["2026-11-01T10:00:00Z", "1762000000", "2026-11-03 08:00:00", "2026-11-03",
               "2026-11-03", "not a time", "2026-11-19T23:59:59+00:00", "2026-11-25T00:00:00Z",
               "2026-11-01T10:00:00Z"],
        "event": ["like", "", "VIEW", "view", "view", "view", "skip", "view", "like"],
    }).to_parquet(wh.landing_interactions / "log.parquet")
    return wh


def test_ingest_dedupes_catalog_and_sets_bad_rows_aside(spark, tmp_path):
    wh = _landing(tmp_path)
    counters = ingest(spark, wh, RUN_DATE, max_bad_row_share=0.5)

    catalog = read_table(wh.catalog).to_pandas().set_index("video_id")
    assert sorted(catalog.index) == ["v1", "v2", "v3"]
    assert catalog.loc["v1", "title"] == "old one"       # latest updated_at wins
    assert catalog.loc["v2", "title"] == "two (b)"       # no updated_at: last file wins
    assert catalog.loc["v2", "tags"] == "p|r"            # JSON list joined with '|'
    assert catalog.loc["v2", "uri"] == "two.mp4"

    interactions = read_table(wh.interactions).to_pandas()
    assert len(interactions) == 4                        # the exact duplicate of u1/v1 counted once
    assert set(interactions["event"]) == {"like", "view", "skip"}
    assert interactions["user_id"].map(type).eq(str).all()

    rejected = read_table(wh.rejected_rows / RUN_DATE).to_pandas()
    assert sorted(rejected["reason"]) == ["after_run_date", "bad_timestamp", "missing_user_id",
                                          "missing_video_id", "unknown_video"]
    assert counters["interactions_rejected"] == 3
    assert counters["interactions_after_run_date"] == 1
    assert counters["catalog_rows_rejected"] == 1
    assert counters["users"] == 3


def test_ingest_fails_past_the_bad_row_share(spark, tmp_path):
    wh = _landing(tmp_path)
    with pytest.raises(StageError, match="interaction rows are bad"):
        ingest(spark, wh, RUN_DATE, max_bad_row_share=0.1)
    assert not wh.interactions.exists()   # nothing downstream sees a half-good log
    assert (wh.rejected_rows / RUN_DATE).exists()
