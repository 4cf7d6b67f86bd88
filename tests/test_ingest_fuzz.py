"""Ingest under generated bad input (hypothesis): wrong types, missing and extra columns, empty
files, broken lines, huge strings, unicode and NUL bytes, ancient and future times, duplicate keys,
unknown videos. Nothing crashes; every bad row is counted with its reason; every good row flows
through, once."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs import config
from jobs.ingest import ingest
from jobs.tables import read_table

pytestmark = pytest.mark.spark
RUN_DATE = "2026-11-20"
END_OF_RUN_DATE = dt.datetime(2026, 11, 21, tzinfo=dt.timezone.utc)
VIDEOS = [f"v{n}" for n in range(1, 6)]

# Ids are strings of any script, without whitespace or control characters (those are trimmed or
# unreadable); anything goes in free text, NUL bytes and 10,000-character strings included.
ids = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), min_size=1, max_size=40)
huge = st.builds(lambda piece, times: piece * times, st.sampled_from(["ab", "\u00e9", "\u4e2d\x00"]),
                 st.integers(5_000, 20_000))
free_text = st.one_of(st.text(max_size=60), st.just("\x00nul\x00"), huge)
moments = st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2026, 11, 20, 23, 59, 59),
                       timezones=st.just(dt.timezone.utc))
future = st.datetimes(min_value=dt.datetime(2026, 11, 21), max_value=dt.datetime(2999, 1, 1),
                      timezones=st.just(dt.timezone.utc))
events = st.sampled_from(["view", "VIEW", "Like", "share", "complete", "skip", " view "])


def render_time(moment: dt.datetime, as_epoch: bool):
    moment = moment.replace(microsecond=0)
    return int(moment.timestamp()) if as_epoch else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@st.composite
def good_row(draw) -> dict:
    moment = draw(moments)
    row = {"user_id": draw(st.one_of(ids, st.integers(0, 10**12))), "video_id": draw(st.sampled_from(VIDEOS)),
           "ts": render_time(moment, draw(st.booleans()))}
    if draw(st.booleans()):
        row["event"] = draw(events)
    if draw(st.booleans()):
        row["watch_seconds"] = draw(st.floats(0, 1e6))
    if draw(st.booleans()):
        row[draw(st.sampled_from(["extra", "notes", "\u00fcber"]))] = draw(free_text)
    return row


def key(row: dict) -> tuple:
    """What makes two good rows the same interaction (ingest drops exact duplicates)."""
    ts = row["ts"]
    moment = (dt.datetime.fromtimestamp(ts, dt.timezone.utc) if isinstance(ts, int)
              else dt.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc))
    return str(row["user_id"]), row["video_id"], moment, row.get("event", "view").strip().lower()


@st.composite
def bad_row(draw) -> tuple[str, object]:
    """(reason, row): a good row with exactly one defect; a row is a dict or a broken JSON line."""
    row = draw(good_row())
    defect = draw(st.sampled_from(["missing_user_id", "missing_video_id", "bad_timestamp", "after_run_date",
                                   "unknown_video", "bad_watch_seconds", "broken_line"]))
    if defect == "missing_user_id":
        if draw(st.booleans()):
            row.pop("user_id")
        else:
            row["user_id"] = draw(st.sampled_from(["", "   ", None]))
    elif defect == "missing_video_id":
        row["video_id"] = draw(st.sampled_from(["", None]))
    elif defect == "bad_timestamp":
        row["ts"] = draw(st.one_of(st.sampled_from(["not a time", "2026-13-45", "", "yesterday", None]),
                                   st.text(alphabet="xyzq", min_size=1, max_size=20)))
    elif defect == "after_run_date":
        row["ts"] = render_time(draw(future), draw(st.booleans()))
    elif defect == "unknown_video":
        row["video_id"] = "unknown-" + draw(ids)
    elif defect == "bad_watch_seconds":
        row["watch_seconds"] = -draw(st.floats(0.001, 1e6))
    else:  # not JSON at all: the reader keeps it as a corrupt record with no fields
        return "missing_user_id", "{" + draw(st.text(max_size=30)).replace("\n", " ")
    return defect, row


@given(good=st.lists(good_row(), max_size=25), bad=st.lists(bad_row(), max_size=25),
       duplicates=st.integers(0, 5), titles=st.lists(free_text, min_size=len(VIDEOS), max_size=len(VIDEOS)))
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow, HealthCheck.data_too_large])
def test_fuzzed_landing_files_never_crash_and_every_row_is_accounted_for(spark, tmp_path_factory, good, bad,
                                                                         duplicates, titles):
    wh = config.Warehouse.at(tmp_path_factory.mktemp("fuzz") / "wh")
    wh.landing_catalog.mkdir(parents=True)
    wh.landing_interactions.mkdir(parents=True)
    catalog = [{"video_id": v, "title": t, "tags": ["a", t[:5]]} for v, t in zip(VIDEOS, titles)]
    catalog += [{"video_id": "", "title": "no id"}, {"title": "no id either"}]
    (wh.landing_catalog / "catalog.jsonl").write_text("\n".join(json.dumps(r) for r in catalog) + "\n")
    (wh.landing_catalog / "empty.csv").write_text("")
    rows = good + good[:duplicates] + [row for _, row in bad]
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    (wh.landing_interactions / "log.jsonl").write_text("\n".join(lines) + "\n" if lines else "")
    (wh.landing_interactions / "empty.jsonl").write_text("")

    counters = ingest(spark, wh, RUN_DATE, max_bad_row_share=1.0)

    assert counters["videos"] == len(VIDEOS) and counters["catalog_rows_rejected"] == 2
    expected_reasons: dict[str, int] = {}
    for reason, _ in bad:
        expected_reasons[reason] = expected_reasons.get(reason, 0) + 1
    assert counters["rejected_reasons"] == expected_reasons
    assert counters["interactions_valid"] == len({key(row) for row in good})
    valid = read_table(wh.interactions).to_pandas() if good else None
    if valid is not None:
        assert set(valid["user_id"]) == {str(row["user_id"]) for row in good}
    rejected = read_table(wh.rejected_rows / RUN_DATE).to_pandas()
    assert (rejected["source"] == "interactions").sum() == len(bad)   # each bad row kept, with its raw text
    shutil.rmtree(wh.root)
