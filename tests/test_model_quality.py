"""The model's measures and promises: exact metrics, cold-start videos reaching the right users,
and the gate that keeps a broken model's lists from being published."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from deltalake import DeltaTable

from jobs.plumbing import config
from models.evaluation import Holdout, evaluate, leave_last_out, paired_ratio_interval, rank_metrics
from models.training import IndexedInteractions
from tests.landing import text_only_catalog, write_landing


def interactions(users, items, ts=None) -> IndexedInteractions:
    users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
    ts = np.arange(len(users), dtype=np.float64) if ts is None else np.asarray(ts, np.float64)
    return IndexedInteractions(users, items, np.ones(len(users), np.float32), ts)


def test_rank_metrics_exact_values():
    metrics = rank_metrics(np.array([1.0, 2.0, 11.0, 60.0]))
    assert metrics["hr@10"] == 0.5 and metrics["hr@50"] == 0.75
    assert np.isclose(metrics["ndcg@10"], (1 + 1 / np.log2(3)) / 4)
    assert np.isclose(metrics["ndcg@50"], (1 + 1 / np.log2(3) + 1 / np.log2(12)) / 4)
    assert np.isclose(metrics["mrr"], (1 + 1 / 2 + 1 / 11 + 1 / 60) / 4)


def test_leave_last_out_holds_out_each_users_latest_and_keeps_single_interaction_users():
    data = interactions([0, 0, 0, 1, 2, 2], [3, 1, 4, 4, 0, 5])
    holdout = leave_last_out(data, n_items=6)
    assert list(holdout.users) == [0, 2] and list(holdout.items) == [4, 5]
    assert list(holdout.train.user) == [0, 0, 1, 2] and list(holdout.train.item) == [3, 1, 4, 0]
    assert list(holdout.cold) == [False, True]      # video 5 has no training interaction


def test_leave_last_out_sample_of_users_keeps_the_others_whole_in_training():
    data = interactions([0, 0, 0, 1, 2, 2], [3, 1, 4, 4, 0, 5])
    holdout = leave_last_out(data, n_items=6, max_users=1, seed=3)
    assert len(holdout.users) == 1 and holdout.users[0] in (0, 2)
    assert len(holdout.train) == len(data) - 1
    assert np.array_equal(leave_last_out(data, 6, max_users=1, seed=3).users, holdout.users)   # seeded


def test_perfect_scorer_scores_one_and_seen_videos_do_not_count():
    holdout = Holdout(train=interactions([0, 0, 1], [0, 1, 2]), users=np.array([0, 1]), items=np.array([3, 4]),
                      cold=np.array([True, True]))
    scores = np.zeros((2, 6))
    scores[0, [0, 1]] = scores[1, 2] = 10.0         # seen videos scored highest: excluded, so no harm
    scores[0, 3] = scores[1, 4] = 5.0
    metrics = evaluate(lambda users: scores[users], holdout, n_users=2, n_items=6)
    assert metrics["ndcg@10"] == 1.0 and metrics["hr@10"] == 1.0 and metrics["mrr"] == 1.0
    assert metrics["cold_ndcg@10"] == 1.0 and metrics["cold_users"] == 2


def test_ties_count_at_their_expected_position():
    holdout = Holdout(train=interactions([0], [0]), users=np.array([0]), items=np.array([5]), cold=np.array([True]))
    metrics = evaluate(lambda users: np.ones((len(users), 21)), holdout, n_users=1, n_items=21)
    # 20 unseen videos all tied: the held-out one is expected at rank 1 + 19 / 2 = 10.5.
    assert metrics["hr@10"] == 0.0 and np.isclose(metrics["mrr"], 1 / 10.5)


def test_paired_ratio_interval_is_narrow_for_a_shared_difference_and_wide_for_few_noisy_users():
    rng = np.random.default_rng(3)
    users = np.repeat(np.arange(60), 3)
    reference = rng.uniform(0.0, 1.0, len(users))
    # The same rows, every one 10% better: any draw of users gives the ratio 1.1.
    low, high = paired_ratio_interval(1.1 * reference, reference, users)
    assert np.isclose(low, 1.1) and np.isclose(high, 1.1)
    # Two unrelated methods of the same quality on 60 users: the interval holds 1 and is wide.
    low, high = paired_ratio_interval(rng.uniform(0.0, 1.0, len(users)), reference, users)
    assert low < 1.0 < high and high - low > 0.15
    # Users, not rows, are drawn: user 0's two rows come together, so a draw's ratio is 0 (user 1
    # twice) or 2 (one of each); drawing rows would also give 0.5, 1 and 3.
    low, high = paired_ratio_interval(np.r_[1.0, 1.0, 0.0], np.r_[0.0, 0.0, 1.0], np.array([0, 0, 1]))
    assert (low, high) == (0.0, 2.0)


@pytest.mark.parametrize("history_refresh_steps", [0, 5], ids=["exact-histories", "history-table"])
def test_cold_start_videos_reach_the_users_whose_taste_they_match(history_refresh_steps):
    """Videos with no interactions, placed by their text alone, go to users of their genre, whether
    histories are encoded with gradients or read from the refreshed item table (large catalogs)."""
    from features.text import TextEmbedder, video_text
    from models.content import content_matrix, fit_content_stats
    from models.scoring import encode
    from models.training import train_two_tower

    videos, users, rows = text_only_catalog(seed=11, n_videos=320, n_users=120)
    video_ids = np.array([v.video_id for v in videos], object)
    embeddings = TextEmbedder().embed([video_text(v.title, v.description, v.tags) for v in videos])
    items = pd.DataFrame({"video_id": video_ids, "has_text": True, "text_embedding": list(embeddings),
                          "has_video": False, "visual": None, "thumbnail": None, "has_audio": False, "audio": None})
    content = content_matrix(items, fit_content_stats(items))
    frame = pd.DataFrame(rows).sort_values(["user_id", "ts"], kind="stable")
    user_ids = np.array([u.user_id for u in users], object)
    data = interactions(pd.Index(user_ids).get_indexer(frame["user_id"]),
                        pd.Index(video_ids).get_indexer(frame["video_id"]))
    model, _ = train_two_tower(content, data, len(user_ids), epochs=8, seed=7,
                               history_refresh_steps=history_refresh_steps, log=lambda line: None)
    scores = encode(model, content, data, len(user_ids))(np.arange(len(user_ids)))

    cold = np.array([v.is_new for v in videos])
    assert cold.sum() >= 16 and not np.isin(np.flatnonzero(cold), data.item).any()
    genre = np.array([v.genre for v in videos])
    hits, chance = [], []
    for u, user in enumerate(users):
        best_cold = np.flatnonzero(cold)[np.argsort(-scores[u, cold])[:3]]
        hits.append(np.isin(genre[best_cold], user.favourite_genres).mean())
        chance.append(np.isin(genre[cold], user.favourite_genres).mean())
    assert np.mean(hits) > 3 * np.mean(chance) and np.mean(hits) > 0.6, (np.mean(hits), np.mean(chance))


@pytest.mark.spark
def test_gate_blocks_a_model_trained_on_shuffled_interactions(spark, tmp_path):
    from jobs.evaluate import evaluate_run
    from jobs.extract_features import extract
    from jobs.ingest import ingest
    from jobs.publish import publish
    from jobs.score import score
    from jobs.plumbing.stage import StageError
    from jobs.train import train

    wh = config.Warehouse.at(tmp_path / "warehouse")
    videos, _, rows = text_only_catalog(seed=5, n_videos=200, n_users=80)
    write_landing(wh, videos, rows)

    def night(run_date: str) -> None:
        ingest(spark, wh, run_date)
        extract(spark, wh, run_date)
        train(wh, run_date, epochs=6)
        evaluate_run(wh, run_date)
        score(wh, run_date, top_n=5)
        publish(wh, run_date, top_n=5)

    night("2026-11-20")
    first = DeltaTable(str(wh.recommendations))
    first_lists = first.to_pandas().sort_values(["user_id", "rank"]).reset_index(drop=True)

    # Upstream breaks: every interaction now points at a random video.
    shuffled = pd.DataFrame(rows)
    shuffled["video_id"] = np.random.default_rng(0).permutation(shuffled["video_id"].to_numpy())
    write_landing(wh, videos, shuffled.to_dict("records"))
    with pytest.raises(StageError, match="previous lists stay current"):
        night("2026-11-21")

    current = DeltaTable(str(wh.recommendations))
    assert current.version() == first.version()
    assert current.to_pandas().sort_values(["user_id", "rank"]).reset_index(drop=True).equals(first_lists)
    metrics = pd.read_parquet(wh.model_metrics / "2026-11-21")
    published = metrics[metrics["is_published"] & (metrics["metric"] == "ndcg@10")]["value"].item()
    assert published < 0.5 * pd.read_parquet(wh.model_metrics / "2026-11-20").query(
        "is_published and metric == 'ndcg@10'")["value"].item()
    assert (wh.run_dir("2026-11-21") / "evaluation.html").read_text().count("BLOCKED") == 1
