"""The load benchmark's generator: the landing zone it writes is a valid nightly input."""

import json

import pandas as pd

from jobs.datasets import make_load_data


def test_generated_landing_has_unique_time_ordered_interactions_after_publication(tmp_path):
    assert make_load_data.main(["--warehouse", str(tmp_path), "--videos", "400", "--users", "300",
                                "--interactions", "3000", "--media", "0"]) == 0
    catalog = pd.DataFrame([json.loads(line) for line in
                            (tmp_path / "landing/catalog/catalog.jsonl").read_text().splitlines()])
    events = pd.read_csv(tmp_path / "landing/interactions/interactions.csv")
    assert len(catalog) == 400 and (catalog["uri"] == "").all()
    assert 1500 < len(events) <= 3000 and not events.duplicated(["user_id", "video_id"]).any()
    assert events.groupby("user_id")["ts"].apply(lambda ts: ts.is_monotonic_increasing).all()
    published = events["video_id"].map(catalog.set_index("video_id")["published_at"])
    assert (pd.to_datetime(events["ts"]) >= pd.to_datetime(published)).all()
    assert (pd.to_datetime(events["ts"]) < pd.Timestamp("2026-11-20", tz="UTC")).all()
    assert set(events["event"]) <= {"view", "like", "complete", "share", "skip"}


def test_per_user_draws_a_sparse_log_with_every_user_inside_the_bounds(tmp_path):
    assert make_load_data.main(["--warehouse", str(tmp_path), "--videos", "2000", "--users", "500",
                                "--per-user", "3", "15", "--media", "0"]) == 0
    per_user = pd.read_csv(tmp_path / "landing/interactions/interactions.csv").groupby("user_id").size()
    assert len(per_user) == 500
    # Duplicates of a user and video are dropped, so a user can fall just below LOW, never above HIGH.
    assert per_user.max() <= 15 and per_user.min() >= 2 and (per_user >= 3).mean() > 0.95
    assert 7 < per_user.mean() < 11


def test_the_sparse_movielens_log_keeps_each_users_newest_ratings(shared_data, tmp_path):
    from jobs.bench.bench_load import keep_newest
    from jobs.import_dataset import main as import_dataset
    from jobs.plumbing.config import Warehouse

    assert import_dataset(["--format", "movielens-100k", "--source", str(shared_data / "movielens-100k"),
                           "--warehouse", str(tmp_path)]) == 0
    (path,) = (tmp_path / "landing/interactions").iterdir()
    whole = pd.read_parquet(path)
    sizes = keep_newest(Warehouse.at(str(tmp_path)), 3, 15)
    kept = pd.read_parquet(path)
    per_user = kept.groupby("user_id").size()
    # Every MovieLens user has at least 20 ratings, so each keeps between 3 and 15, all of them newer
    # than (or as new as) every rating left out.
    assert sizes == {"users": 943, "videos_watched": kept["video_id"].nunique(), "interactions": len(kept)}
    assert len(per_user) == 943 and per_user.between(3, 15).all() and 8 < per_user.mean() < 10
    dropped = whole.merge(kept, how="left", indicator=True).query("_merge == 'left_only'")
    older, newest = dropped.groupby("user_id")["ts"].max(), kept.groupby("user_id")["ts"].min()
    assert len(older) == 943 and (older <= newest.loc[older.index]).all()
