"""Pseudonyms and retention: with VREC_PSEUDONYMISE=1 no user id reaches tables/ or runs/, the
pseudonym is the keyed HMAC a consumer recomputes, a missing key stops every command before any
work, and VREC_INTERACTION_RETENTION_DAYS drops old interactions at ingest."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from jobs.plumbing import config, privacy
from tests.privacy_helpers import KEY, KNOWN_PSEUDONYM, RUN_DATE, key_file, night, privacy_landing, run, scan


def test_pseudonym_is_the_keyed_hmac_of_the_trimmed_id(tmp_path):
    expected = KNOWN_PSEUDONYM
    assert privacy.pseudonym(" user-erase-me-7781 ", KEY) == expected
    assert privacy.pseudonym("user-erase-me-7781", b"another key") != expected
    assert len(expected) == 3 + 32
    path = key_file(tmp_path)
    done = run("jobs.pseudonym", "--user-id", "user-erase-me-7781", "--user-id", "42",
               VREC_PSEUDONYM_KEY_FILE=str(path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [expected, privacy.pseudonym("42", KEY)]


def test_the_key_may_come_from_an_airflow_connection(monkeypatch):
    monkeypatch.delenv("VREC_PSEUDONYM_KEY_FILE", raising=False)
    monkeypatch.setenv("VREC_PSEUDONYM_KEY_CONN_ID", "vrec_pseudonym_key")
    monkeypatch.setenv("AIRFLOW_CONN_VREC_PSEUDONYM_KEY", json.dumps({"conn_type": "generic",
                                                                      "password": KEY.decode()}))
    assert privacy.pseudonym_of("user-erase-me-7781") == privacy.pseudonym("user-erase-me-7781", KEY)


@pytest.mark.parametrize("key_setting, message", [
    ({}, "no pseudonym key: set VREC_PSEUDONYM_KEY_FILE"),
    ({"VREC_PSEUDONYM_KEY_FILE": "EMPTY"}, "is empty"),
    ({"VREC_PSEUDONYM_KEY_FILE": "MISSING"}, "cannot read the pseudonym key file"),
])
def test_pseudonymisation_without_a_key_stops_before_any_work(tmp_path, key_setting, message):
    wh = config.Warehouse.at(tmp_path / "warehouse")
    privacy_landing(wh)
    (tmp_path / "empty.key").write_bytes(b"\n")
    env = {"VREC_PSEUDONYMISE": "1", "VREC_PSEUDONYM_KEY_FILE": "", "VREC_PSEUDONYM_KEY_CONN_ID": ""}
    for name, value in key_setting.items():
        env[name] = {"EMPTY": str(tmp_path / "empty.key"), "MISSING": str(tmp_path / "nope.key")}[value]
    for module in ("jobs.run_nightly", "jobs.ingest", "jobs.erase_users"):
        done = run(module, "--warehouse", str(wh.root), "--run-date", RUN_DATE, **env)
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert done.returncode == 1, (module, done.stderr[-2000:])
        assert len(errors) == 1 and errors[0].startswith(
            "error: [preflight] pseudonymisation is on (VREC_PSEUDONYMISE) but ") and message in errors[0], errors
    assert sorted(p.name for p in wh.root.iterdir()) == ["landing"]     # nothing written


@pytest.mark.slow
def test_with_pseudonyms_on_no_user_id_reaches_tables_or_runs_and_old_interactions_expire(tmp_path):
    wh = config.Warehouse.at(tmp_path / "warehouse")
    rows = privacy_landing(wh)
    retention_days = 30
    cutoff = dt.datetime(2026, 10, 21, tzinfo=dt.timezone.utc)     # 30 days before 2026-11-20
    keys = {(r["user_id"], r["video_id"], r["ts"], r["event"]) for r in rows}
    expired = {k for k in keys if dt.datetime.fromisoformat(k[2].replace("Z", "+00:00")) < cutoff}
    assert 0 < len(expired) < len(keys)

    key = key_file(tmp_path)
    summary = night(wh, RUN_DATE, VREC_PSEUDONYMISE="1", VREC_PSEUDONYM_KEY_FILE=str(key),
                    VREC_INTERACTION_RETENTION_DAYS=str(retention_days))

    user_ids = {r["user_id"] for r in rows}
    assert scan(wh.root / "tables", user_ids | {KEY.decode()}) == []
    assert scan(wh.root / "runs", user_ids | {KEY.decode()}) == []
    assert summary["interactions_expired"] == len(expired)
    assert summary["interactions_valid"] == len(keys) - len(expired)
    # The tables hold the pseudonyms: every user with a kept interaction has a list under theirs.
    kept_users = {k[0] for k in keys - expired}
    lists = DeltaTable(str(wh.recommendations)).to_pandas()
    assert set(lists["user_id"]) == {privacy.pseudonym(u, KEY) for u in kept_users}
    interactions = pq.read_table(wh.interactions).to_pandas()
    assert len(interactions) == len(keys) - len(expired)
    assert (interactions["ts"] >= cutoff).all()
    rejected = pq.read_table(wh.rejected_rows / RUN_DATE).to_pandas()
    assert sorted(json.loads(raw)["user_id"] for raw in rejected["_raw"]) == sorted(
        privacy.pseudonym(u, KEY) for u in user_ids)
    # What a consumer does: the pseudonym of the id finds the user's list.
    some_user = sorted(kept_users)[0]
    done = run("jobs.pseudonym", "--user-id", some_user, VREC_PSEUDONYM_KEY_FILE=str(key))
    assert (lists["user_id"] == done.stdout.strip()).sum() == 5


