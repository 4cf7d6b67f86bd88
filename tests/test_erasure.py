"""Erasure: after a deletion request (a file in landing/deletion_requests/ or `jobs.forget_user`) and
one night, a scan of the whole warehouse finds neither the user id nor its pseudonym; nobody else's
list changes by the erasure itself; the cost is the serving table's earlier history."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from jobs.plumbing import config, erasure, privacy
from tests.privacy_helpers import KEY, NEXT_DATE, RUN_DATE, key_file, night, privacy_landing, run, scan


def test_run_files_are_scrubbed_without_touching_other_values(tmp_path):
    runs = tmp_path / "runs" / RUN_DATE
    runs.mkdir(parents=True)
    (runs / "validation.json").write_text(json.dumps(
        {"unexpected": ["user-erase-me-7781", "user-erase-me-77810"], "count": 7781, "user-erase-me-7781": 1}))
    (runs / "error.log").write_text("failed for user-erase-me-7781 and user-erase-me-77812\n")
    (runs / "train.json").write_text(json.dumps({"users": 3}))
    assert erasure.scrub_run_files(tmp_path / "runs", {"user-erase-me-7781"}) == 2
    assert json.loads((runs / "validation.json").read_text()) == {
        "unexpected": ["[erased]", "user-erase-me-77810"], "count": 7781, "[erased]": 1}
    assert (runs / "error.log").read_text() == "failed for [erased] and user-erase-me-77812\n"
    assert json.loads((runs / "train.json").read_text()) == {"users": 3}


def test_a_numeric_id_found_only_in_numbers_changes_nothing_and_empty_tables_are_fine(tmp_path):
    """MovieLens' ids are numbers: `943` in a counter is not user 943 (found by the real-data run)."""
    runs = tmp_path / "runs" / RUN_DATE
    runs.mkdir(parents=True)
    (runs / "ingest.json").write_text(json.dumps({"users": 943, "videos": 1682}))
    assert erasure.scrub_run_files(tmp_path / "runs", {"943"}) == 0
    assert json.loads((runs / "ingest.json").read_text()) == {"users": 943, "videos": 1682}
    empty = tmp_path / "rejected_rows" / RUN_DATE
    empty.mkdir(parents=True)
    pq.write_table(pa.table({"reason": pa.array([], pa.string()), "_raw": pa.array([], pa.string())}),
                   empty / "part-00000.parquet")
    assert erasure.erase_from_raw_rows(tmp_path / "rejected_rows", {"943"}) == 0


def test_landing_files_of_every_format_lose_only_the_users_rows(tmp_path):
    erased = {"user-erase-me-7781"}
    csv_file = tmp_path / "a.csv"
    csv_file.write_text('user_id,video_id,ts\nuser-erase-me-7781,v1,1\n" user-keep-1 ","v, 2",2\n'
                        ' user-erase-me-7781 ,v3,3\n')
    jsonl = tmp_path / "b.jsonl"
    jsonl.write_text('{"user_id": "user-erase-me-7781", "video_id": "v1"}\n{"user_id": "user-keep-1"}\n'
                     'not json user-erase-me-7781\n')
    parquet = tmp_path / "c.parquet"
    pq.write_table(pa.table({"user_id": ["user-keep-1", "user-erase-me-7781"], "video_id": ["v1", "v2"]}), parquet)
    assert [erasure.erase_from_landing_file(p, erased) for p in (csv_file, jsonl, parquet)] == [2, 2, 1]
    assert csv_file.read_text() == 'user_id,video_id,ts\n user-keep-1 ,"v, 2",2\n'
    assert jsonl.read_text() == '{"user_id": "user-keep-1"}\n'
    assert pq.read_table(parquet).to_pylist() == [{"user_id": "user-keep-1", "video_id": "v1"}]
    assert [erasure.erase_from_landing_file(p, erased) for p in (csv_file, jsonl, parquet)] == [0, 0, 0]


@pytest.mark.slow
@pytest.mark.parametrize("pseudonymise", [False, True], ids=["ids", "pseudonyms"])
def test_after_a_deletion_request_and_one_night_no_trace_of_the_users_is_left(tmp_path, pseudonymise):
    wh = config.Warehouse.at(tmp_path / "warehouse")
    env = {"VREC_PSEUDONYMISE": "1" if pseudonymise else "0", "VREC_PSEUDONYM_KEY_FILE": str(key_file(tmp_path))}
    rows = privacy_landing(wh)
    night(wh, RUN_DATE, **env)
    lists_before = DeltaTable(str(wh.recommendations)).to_pandas()
    listed = sorted({r["user_id"] for r in rows})
    by_request, by_file = listed[0], listed[-1]          # two users with lists (and rejected rows)
    as_stored = (lambda u: privacy.pseudonym(u, KEY)) if pseudonymise else (lambda u: u)
    erased_ids = {by_request, by_file}
    needles = erased_ids | {privacy.pseudonym(u, KEY) for u in erased_ids}
    assert {as_stored(u) for u in erased_ids} <= set(lists_before["user_id"])
    assert scan(wh.root, needles)                          # they are there before the request

    done = run("jobs.forget_user", "--warehouse", str(wh.root), "--user-id", by_request)
    assert done.returncode == 0, done.stderr
    requested = json.loads(done.stdout)
    upstream = wh.root / "landing" / "deletion_requests" / "upstream-0001.txt"
    upstream.write_text(f"# ticket 4711\n{by_file}\n\n")
    hashes = sorted([(Path(requested["request_file"]).name, requested["sha256"]),
                     (upstream.name, hashlib.sha256(upstream.read_bytes()).hexdigest())])
    summary = night(wh, NEXT_DATE, **env)

    assert scan(wh.root, needles) == []
    assert summary["deletion_requests"] == 2 and summary["users_erased"] == 2
    assert summary["deletion_request_sha256"] == [sha for _, sha in hashes]
    assert list((wh.root / "landing" / "deletion_requests").iterdir()) == []
    # Everyone else's interactions are still in the landing zone and the tables.
    others = [r for r in rows if r["user_id"] not in erased_ids]
    landing_users = [line.split(",")[0] for line in
                     (wh.landing_interactions / "interactions.csv").read_text().splitlines()[1:]]
    assert len(landing_users) == len(others) + len(listed) - 2          # plus the others' rejected rows
    assert pq.read_table(wh.interactions).num_rows == len({(r["user_id"], r["video_id"], r["ts"], r["event"])
                                                           for r in others})
    # The erasure itself changed no one else's list: its version of the serving table is the first
    # night's lists without the two users, row for row. (The night then publishes lists of a model
    # trained without them, which may differ wherever their interactions shaped the model.)
    table = DeltaTable(str(wh.recommendations))
    erasure_version = min(h["version"] for h in table.history())    # the earliest left: the erasure's
    after_erasure = DeltaTable(str(wh.recommendations), version=erasure_version).to_pandas()
    expected = lists_before[~lists_before["user_id"].isin({as_stored(u) for u in erased_ids})]
    key = ["user_id", "rank"]
    assert after_erasure.sort_values(key).reset_index(drop=True).equals(expected.sort_values(key).reset_index(drop=True))
    # The cost: the nights before the erasure can no longer be rolled back to.
    done = run("jobs.rollback", "--warehouse", str(wh.root), "--to-date", RUN_DATE)
    assert done.returncode == 1 and "no lists published for 2026-11-20" in done.stderr.splitlines()[-1]
    assert set(table.to_pandas()["run_date"].astype(str)) == {NEXT_DATE}


def test_erasure_cuts_the_history_of_a_serving_table_on_s3(s3_server, monkeypatch):
    """On S3 too, no object of the table (data file, log entry, checkpoint) names the user afterwards."""
    import boto3
    from deltalake import CommitProperties, write_deltalake

    from jobs.plumbing.table_location import TableLocation

    bucket, erased_user = "vrec-erasure", "user-erase-me-7781"
    s3_server.create_bucket(bucket)
    for name, value in s3_server.environment().items():
        monkeypatch.setenv(name, value)
    location = TableLocation.parse(f"s3://{bucket}/serving/recommendations")
    for night_number in range(3):
        lists = pa.table({"user_id": [erased_user, "user-keep-0001"], "rank": [1, 1],
                          "video_id": [f"v{night_number}", "v9"]})
        write_deltalake(location.uri, lists, mode="overwrite", storage_options=location.storage_options,
                        commit_properties=CommitProperties(custom_metadata={"run_date": f"2026-11-2{night_number}"}))
    client = boto3.client("s3", endpoint_url=s3_server.endpoint, region_name="us-east-1")

    def objects_naming_the_user() -> list[str]:
        keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
        found = []
        for key in keys:
            data = client.get_object(Bucket=bucket, Key=key)["Body"].read()
            text = data.decode("latin-1")
            if key.endswith(".parquet"):
                text += "\n".join(str(v) for c in pq.read_table(pa.BufferReader(data)).columns for v in c.to_pylist())
            if erased_user in text:
                found.append(key)
        return found

    assert objects_naming_the_user()
    result = erasure.erase_from_delta_table(location, {erased_user})
    assert result["rows"] == 1 and result["versions_cut"] == 3
    assert objects_naming_the_user() == []
    table = location.delta_table()
    assert table.to_pyarrow_table().to_pylist() == [{"user_id": "user-keep-0001", "rank": 1, "video_id": "v9"}]
    assert table.metadata().configuration["delta.logRetentionDuration"] == "interval 30 days"
