"""Ingest under generated bad input (hypothesis): wrong types, missing and extra columns, empty
files, broken lines, huge strings, unicode and NUL bytes, times anywhere in ISO-8601's years 0001 to
9999 (9999-12-31 "never" and 0001-01-01 "unset" drawn often) and just outside them, duplicate keys,
unknown videos, in interaction files and in catalog files of every landing format, Parquet's native
timestamps included. Nothing crashes; every bad row is counted with its reason; every good row flows
through, once; of a video's catalog rows, the latest update wins; every catalog time that is given
but is not one is counted."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs.plumbing import config
from jobs.ingest import ingest
from jobs.plumbing.tables import read_table

pytestmark = pytest.mark.spark
RUN_DATE = "2026-11-20"
UTC = dt.timezone.utc
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
VIDEOS = [f"v{n}" for n in range(1, 6)]

# Ids are strings of any script, without whitespace or control characters (those are trimmed or
# unreadable); anything goes in free text, NUL bytes and 10,000-character strings included.
ids = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), min_size=1, max_size=40)
huge = st.builds(lambda piece, times: piece * times, st.sampled_from(["ab", "\u00e9", "\u4e2d\x00"]),
                 st.integers(5_000, 20_000))
free_text = st.one_of(st.text(max_size=60), st.just("\x00nul\x00"), huge)
# The ends of the range come up often: upstream systems write them for "unset" and "never".
ZERO, NEVER, LAST = (dt.datetime(1, 1, 1, tzinfo=UTC), dt.datetime(9999, 12, 31, tzinfo=UTC),
                     dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC))


def between(low: dt.datetime, high: dt.datetime, ends: list[dt.datetime]):
    return st.one_of(st.sampled_from(ends), st.datetimes(min_value=low.replace(tzinfo=None),
                                                         max_value=high.replace(tzinfo=None), timezones=st.just(UTC)))


moments = between(ZERO, dt.datetime(2026, 11, 20, 23, 59, 59, tzinfo=UTC), [ZERO])
future = between(dt.datetime(2026, 11, 21, tzinfo=UTC), LAST, [NEVER, LAST])
any_moment = between(ZERO, LAST, [ZERO, NEVER, LAST])
# Read like times, but are none: outside 0001..9999 in UTC (year 10000 in UTC, year 0, five-digit
# years, epoch seconds one past either end, an epoch in milliseconds or microseconds read as seconds).
out_of_range = st.sampled_from(["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+01:00", "10000-01-01T00:00:00Z",
                                "-0001-01-01", 253402300800, -62135596801, 1762000000000, 99999999999999])
events = st.sampled_from(["view", "VIEW", "Like", "share", "complete", "skip", " view "])


def render_time(moment: dt.datetime, as_epoch: bool):
    """ISO-8601 in UTC with a four-digit year (strftime's %Y drops the zeros of year 0001), or epoch seconds."""
    moment = moment.replace(microsecond=0)
    return (moment - EPOCH) // dt.timedelta(seconds=1) if as_epoch else moment.isoformat().replace("+00:00", "Z")


def in_another_zone(moment: dt.datetime) -> str:
    """The same instant written with a +05:30 offset (-05:30 where that would leave year 9999)."""
    moment = moment.replace(microsecond=0)
    try:
        return moment.astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30))).isoformat()
    except OverflowError:
        return moment.astimezone(dt.timezone(-dt.timedelta(hours=5, minutes=30))).isoformat()


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
    moment = (EPOCH + dt.timedelta(seconds=ts) if isinstance(ts, int)
              else dt.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC))
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
        row["ts"] = draw(st.one_of(st.sampled_from(["not a time", "2026-13-45", "", "yesterday", None, True]),
                                   st.text(alphabet="xyzq", min_size=1, max_size=20), out_of_range))
    elif defect == "after_run_date":
        row["ts"] = render_time(draw(future), draw(st.booleans()))
    elif defect == "unknown_video":
        row["video_id"] = "unknown-" + draw(ids)
    elif defect == "bad_watch_seconds":   # negative, or not a finite number at all
        row["watch_seconds"] = draw(st.one_of(st.floats(-1e6, -0.001),
                                              st.sampled_from(["abc", "12s", "NaN", "Infinity", "-Infinity", True])))
    else:  # not JSON at all: the reader keeps it as a corrupt record with no fields
        # One line: Spark's line reader ends a line at a carriage return too.
        return "missing_user_id", "{" + draw(st.text(max_size=30)).replace("\n", " ").replace("\r", " ")
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


# ---- the catalog ------------------------------------------------------------------------------
CATALOG_IDS = ["v1", "v2", "v3", " v1 ", "\u4e2d\u6587", "\u00fc-9", 7, 12]   # ints: ids that look like numbers
TIME_COLUMNS = ("published_at", "updated_at")
NOT_TIMES = {"published_at": ["soon", "2026-02-30", ""], "updated_at": ["yesterday", "2026-13-01", "", "0x10"]}
# A value of the wrong type in a text column is read as text, never a crash.
odd_text = st.one_of(free_text, st.integers(-10**9, 10**9), st.floats(allow_nan=False, allow_infinity=False),
                     st.booleans(), st.none())


@st.composite
def catalog_row(draw) -> tuple[dict, dict[str, dt.datetime | None], set[str]]:
    """(row, the instant each time column means or None, the time columns given that are no time);
    the row's `uri` is unique, so the winning row can be found."""
    row: dict = {}
    id_kind = draw(st.sampled_from(["id"] * 6 + ["blank", "absent"]))
    if id_kind == "id":
        row["video_id"] = draw(st.sampled_from(CATALOG_IDS))
    elif id_kind == "blank":
        row["video_id"] = draw(st.sampled_from(["", "   ", None]))
    for column in ("title", "description", "tags"):
        if draw(st.booleans()):
            row[column] = draw(st.one_of(odd_text, st.lists(st.text(max_size=8), max_size=3)) if column == "tags"
                               else odd_text)
    times: dict[str, dt.datetime | None] = {}
    not_times: set[str] = set()
    for column in TIME_COLUMNS:
        kind = draw(st.sampled_from(["iso", "epoch", "offset", "garbage", "absent"]))
        times[column] = None
        if kind in ("iso", "epoch", "offset"):
            times[column] = draw(any_moment).replace(microsecond=0)
            # "offset": the same instant written in another time zone
            row[column] = in_another_zone(times[column]) if kind == "offset" else render_time(times[column],
                                                                                             kind == "epoch")
        elif kind == "garbage":
            row[column] = draw(st.one_of(st.sampled_from(NOT_TIMES[column]), out_of_range))
            if row[column] != "":   # blank is absent, not wrong
                not_times.add(column)
    if draw(st.booleans()):
        row[draw(st.sampled_from(["extra", "\u00fcber", "owner"]))] = draw(free_text)
    return row, times, not_times


def write_catalog_file(path, rows: list[dict], native_times: list[dict] | None = None,
                       unit: str = "us") -> None:
    """One landing file in the format its suffix names; Parquet and CSV hold text (or nothing).

    With `native_times` (Parquet only) the time columns are Parquet timestamps of those instants
    instead: `unit` "us" with the UTC zone, "ms" without one (read as UTC).
    """
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        return
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    def as_text(value) -> str | None:
        if value is None:
            return None
        text = json.dumps(value) if isinstance(value, list) else str(value)
        # NUL bytes cannot be written to a text file that other tools read as CSV.
        return text if path.suffix == ".parquet" else text.replace("\x00", "")

    if native_times is not None:
        names = list(dict.fromkeys(name for row in rows for name in row if name not in TIME_COLUMNS))
        columns = {name: pa.array([as_text(row.get(name)) for row in rows], pa.string()) for name in names}
        zone = "UTC" if unit == "us" else None
        for column in TIME_COLUMNS:
            instants = [t[column] if zone or t[column] is None else t[column].replace(tzinfo=None)
                        for t in native_times]
            columns[column] = pa.array(instants, pa.timestamp(unit, tz=zone))
        pq.write_table(pa.table(columns), path)
        return
    frame = pd.DataFrame([{k: as_text(v) for k, v in row.items()} for row in rows], dtype=object)
    if path.suffix == ".parquet":   # a column with no values at all is written with Parquet's null type
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)


# Each file: its format, and for Parquet whether times are native timestamps ("us", "ms") or text.
@given(files=st.lists(st.tuples(st.sampled_from([".jsonl", ".csv", ".parquet"]), st.sampled_from(["text", "us", "ms"]),
                                st.lists(catalog_row(), min_size=1, max_size=8)), min_size=1, max_size=3))
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow, HealthCheck.data_too_large])
def test_fuzzed_catalog_files_keep_one_row_per_video_the_latest_update_winning(spark, tmp_path_factory, files):
    wh = config.Warehouse.at(tmp_path_factory.mktemp("catalog-fuzz") / "wh")
    wh.landing_catalog.mkdir(parents=True)
    wh.landing_interactions.mkdir(parents=True)
    (wh.landing_interactions / "log.jsonl").write_text("")
    # Expected: per trimmed id, the latest parseable updated_at wins; then the last file, last row.
    candidates: dict[str, list] = {}
    rejected = 0
    not_times = dict.fromkeys(TIME_COLUMNS, 0)
    for file_number, (suffix, times_as, rows) in enumerate(files):
        name = f"part-{file_number}{suffix}"
        native = suffix == ".parquet" and times_as != "text"
        for row_number, (row, times, given_not_times) in enumerate(rows):
            row["uri"] = f"{file_number}-{row_number}.mp4"
            video_id = str(row.get("video_id") or "").strip()
            if not video_id:
                rejected += 1
                continue
            for column in set() if native else given_not_times:   # native: no place for a wrong value
                not_times[column] += 1
            updated = times["updated_at"]
            order = (updated is not None, updated or ZERO, name, row_number)
            candidates.setdefault(video_id, []).append((order, row["uri"], times))
        write_catalog_file(wh.landing_catalog / name, [row for row, _, _ in rows],
                           [times for _, times, _ in rows] if native else None, times_as)

    counters = ingest(spark, wh, RUN_DATE, max_bad_row_share=1.0)

    assert counters["catalog_rows_rejected"] == rejected
    assert counters["videos"] == len(candidates)
    assert counters["catalog_bad_timestamps"] == not_times
    catalog = (read_table(wh.catalog).to_pandas(timestamp_as_object=True).set_index("video_id")
               if candidates else None)
    for video_id, versions in candidates.items():
        _, uri, times = max(versions, key=lambda version: version[0])
        assert catalog.loc[video_id, "uri"] == uri, video_id
        for column in TIME_COLUMNS:   # exact, 0001 and 9999 included
            assert catalog.loc[video_id, column] == times[column], (video_id, column)
    if catalog is not None:   # text columns are text, whatever type the files had
        assert all(isinstance(value, str) for column in ("title", "description", "tags")
                   for value in catalog[column])
    shutil.rmtree(wh.root)
