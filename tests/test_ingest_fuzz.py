"""Ingest under generated bad input (hypothesis): wrong types, missing and extra columns, empty
files, broken lines, huge strings, unicode and NUL bytes, ancient and future times, duplicate keys,
unknown videos, in interaction files and in catalog files of every landing format. Nothing crashes;
every bad row is counted with its reason; every good row flows through, once; of a video's catalog
rows, the latest update wins."""

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
        row["ts"] = draw(st.one_of(st.sampled_from(["not a time", "2026-13-45", "", "yesterday", None, True]),
                                   st.text(alphabet="xyzq", min_size=1, max_size=20)))
    elif defect == "after_run_date":
        row["ts"] = render_time(draw(future), draw(st.booleans()))
    elif defect == "unknown_video":
        row["video_id"] = "unknown-" + draw(ids)
    elif defect == "bad_watch_seconds":   # negative, or not a finite number at all
        row["watch_seconds"] = draw(st.one_of(st.floats(-1e6, -0.001),
                                              st.sampled_from(["abc", "12s", "NaN", "Infinity", "-Infinity", True])))
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


# ---- the catalog ------------------------------------------------------------------------------
CATALOG_IDS = ["v1", "v2", "v3", " v1 ", "\u4e2d\u6587", "\u00fc-9", 7, 12]   # ints: ids that look like numbers
updated_moments = st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2999, 1, 1),
                               timezones=st.just(dt.timezone.utc))
# A value of the wrong type in a text column is read as text, never a crash.
odd_text = st.one_of(free_text, st.integers(-10**9, 10**9), st.floats(allow_nan=False, allow_infinity=False),
                     st.booleans(), st.none())


@st.composite
def catalog_row(draw) -> tuple[dict, dt.datetime | None]:
    """(row, its parsed updated_at); the row's `uri` is unique, so the winning row can be found."""
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
    if draw(st.booleans()):
        row["published_at"] = draw(st.one_of(st.builds(lambda m: render_time(m, False), updated_moments),
                                             st.sampled_from(["soon", "2026-02-30", ""])))
    updated = None
    kind = draw(st.sampled_from(["iso", "epoch", "offset", "garbage", "absent"]))
    if kind in ("iso", "epoch", "offset"):
        updated = draw(updated_moments).replace(microsecond=0)
        if kind == "offset":   # the same instant written in another time zone
            row["updated_at"] = updated.astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30))).isoformat()
        else:
            row["updated_at"] = render_time(updated, kind == "epoch")
    elif kind == "garbage":
        row["updated_at"] = draw(st.sampled_from(["yesterday", "2026-13-01", "", "0x10"]))
    if draw(st.booleans()):
        row[draw(st.sampled_from(["extra", "\u00fcber", "owner"]))] = draw(free_text)
    return row, updated


def write_catalog_file(path, rows: list[dict]) -> None:
    """One landing file in the format its suffix names; Parquet and CSV hold text (or nothing)."""
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        return
    import pandas as pd

    def as_text(value) -> str | None:
        if value is None:
            return None
        text = json.dumps(value) if isinstance(value, list) else str(value)
        # NUL bytes cannot be written to a text file that other tools read as CSV.
        return text if path.suffix == ".parquet" else text.replace("\x00", "")

    frame = pd.DataFrame([{k: as_text(v) for k, v in row.items()} for row in rows], dtype=object)
    if path.suffix == ".parquet":   # a column with no values at all is written with Parquet's null type
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)


@given(files=st.lists(st.tuples(st.sampled_from([".jsonl", ".csv", ".parquet"]),
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
    for file_number, (suffix, rows) in enumerate(files):
        name = f"part-{file_number}{suffix}"
        for row_number, (row, updated) in enumerate(rows):
            row["uri"] = f"{file_number}-{row_number}.mp4"
            video_id = str(row.get("video_id") or "").strip()
            if not video_id:
                rejected += 1
                continue
            order = (updated is not None, updated or dt.datetime.min.replace(tzinfo=dt.timezone.utc),
                     name, row_number)
            candidates.setdefault(video_id, []).append((order, row["uri"]))
        write_catalog_file(wh.landing_catalog / name, [row for row, _ in rows])

    counters = ingest(spark, wh, RUN_DATE, max_bad_row_share=1.0)

    assert counters["catalog_rows_rejected"] == rejected
    assert counters["videos"] == len(candidates)
    catalog = read_table(wh.catalog).to_pandas().set_index("video_id") if candidates else None
    for video_id, versions in candidates.items():
        assert catalog.loc[video_id, "uri"] == max(versions)[1], video_id
    if catalog is not None:   # text columns are text, whatever type the files had
        assert all(isinstance(value, str) for column in ("title", "description", "tags")
                   for value in catalog[column])
    shutil.rmtree(wh.root)
