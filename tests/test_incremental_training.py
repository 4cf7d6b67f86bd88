"""Incremental training: the after-cutoff exam, growing the production model over new users and
videos, the choice of mode, and the real train, evaluate, score and publish stages over two nights
of MovieLens-100k, where a night of corrupted interactions is stopped by the gate."""

from __future__ import annotations

import datetime as dt
import json
import math
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.plumbing import config
from jobs.plumbing.stage import StageError
from jobs.plumbing.tables import write_arrow_table
from models.evaluation import after_cutoff
from models.incremental import IncrementalSettings
from models.training import IndexedInteractions
from tests.conftest import PROJECT_ROOT, project_env

NIGHT_1, NIGHT_2 = "2026-11-20", "2026-11-21"


def _log(rows: list[tuple[int, int, float]]) -> IndexedInteractions:
    rows = sorted(rows)
    user, item, ts = (np.asarray(column) for column in zip(*rows))
    return IndexedInteractions(user.astype(np.int64), item.astype(np.int64), np.ones(len(rows), np.float32),
                               ts.astype(np.float64))


def test_the_exam_holds_out_every_new_video_after_the_cutoff_of_users_with_a_past():
    log = _log([(0, 0, 1), (0, 1, 2), (0, 2, 5), (0, 0, 6), (0, 3, 7),   # 0: A B | C, A again, D
                (1, 4, 6),                                               # 1: nothing before the cutoff
                (2, 1, 3)])                                              # 2: nothing after
    exam = after_cutoff(log, 5, cutoff=4.0)
    assert exam.train.ts.max() <= 4.0 and len(exam.train) == 3          # nothing after the cutoff is learnt
    assert exam.users.tolist() == [0, 0] and exam.items.tolist() == [2, 3]   # A was watched before
    assert exam.cold.tolist() == [True, True]


def test_the_exam_starts_a_day_before_the_newest_interaction_or_earlier_for_enough_users():
    from models.incremental import DAY_S, exam_cutoff, exam_users

    day = lambda d: d * DAY_S  # noqa: E731
    # Users 0-2 were active on days 1 and 10, user 3 on days 2 and 5 only, user 4 on day 10 only.
    log = _log([(u, u, day(1)) for u in range(3)] + [(u, 10 + u, day(10)) for u in range(3)]
               + [(3, 5, day(2)), (3, 6, day(5)), (4, 7, day(10))])
    assert exam_cutoff(log, window_end=0.0, days=1, min_users=3) == day(9)      # the newest day: users 0-2
    assert exam_users(log, day(9)) == 3
    earlier = exam_cutoff(log, window_end=0.0, days=1, min_users=4)             # back before user 3's last
    assert day(2) <= earlier < day(5) and exam_users(log, earlier) == 4
    assert exam_cutoff(log, window_end=day(3), days=1, min_users=4) == earlier
    assert exam_cutoff(log, window_end=day(9.5), days=1, min_users=1) == day(9.5)   # never before the window's end


def test_the_replay_is_ten_per_new_interaction_within_one_epoch_of_the_budget():
    from models.incremental import replay_size

    assert replay_size(5_000, 10.0, 252_000) == 50_000     # a MovieLens-100k night: the ratio holds
    # The load benchmark's night (docs/bench/load.json): 46,322 new, a budget of 15% of 3 epochs of
    # 914,326 interactions; one epoch fills it.
    assert replay_size(46_322, 10.0, 411_446) == 365_124
    assert replay_size(500_000, 10.0, 411_446) == 0        # the new ones alone exceed it: they still train


def test_the_rerankers_are_dropped_only_when_the_exam_is_sure_they_are_worse_than_the_tower():
    from models.incremental import keep_reranker

    def evaluation(low, high):
        return {"two_tower": {"ndcg@10": 0.23},
                "two_tower_ranker": {"ndcg@10": 0.21, "ndcg@10_to_two_tower_low": low, "ndcg@10_to_two_tower_high": high}}

    assert keep_reranker(evaluation(0.81, 1.06))          # below the tower on 100 users, but not surely
    assert not keep_reranker(evaluation(0.70, 0.95))      # surely worse
    assert keep_reranker({"two_tower": {"ndcg@10": 0.0}, "two_tower_ranker": {"ndcg@10": 0.0}})   # nothing to tell


def test_a_night_trains_at_most_one_epoch_past_where_its_full_retrain_stopped_improving():
    from models.incremental import night_epochs

    settings = IncrementalSettings()
    assert night_epochs(settings, None, budget=10**9, n_examples=1_000) == 5    # unknown: the settings' five
    assert night_epochs(settings, 1, budget=10**9, n_examples=1_000) == 2       # learnt in one epoch
    assert night_epochs(settings, 9, budget=10**9, n_examples=1_000) == 5
    assert night_epochs(settings, 9, budget=3_000, n_examples=1_000) == 3       # the budget ends it sooner
    assert night_epochs(settings, 9, budget=500, n_examples=1_000) == 1         # but one epoch always runs


def test_grow_keeps_what_the_parent_knew_and_adds_rows_for_new_users_and_videos():
    import torch

    from models.artifact import ModelArtifact
    from models.content import ContentStats
    from models.incremental import grow
    from models.two_tower import TowerConfig, TwoTower

    parent_model = TwoTower(TowerConfig(n_items=3, n_users=2, content_dim=4), torch.zeros(3, 4))
    parent = ModelArtifact("v1", parent_model, ContentStats({}, {}, {}), np.array(["a", "b", "c"], object),
                           np.ones(3, bool), np.array(["u1", None], object), {})
    grown, lineage = grow(parent, np.array(["a", "c", "d"], object), np.array(["u0", "u1", "u2"], object), seed=7)
    assert lineage.parent_item.tolist() == [0, 2, -1] and lineage.parent_user.tolist() == [-1, 0, -1]
    assert torch.equal(grown.item_id.weight[1], parent_model.item_id.weight[2])
    assert torch.equal(grown.user_id.weight[1], parent_model.user_id.weight[0])
    assert 0 < float(grown.item_id.weight[2].detach().abs().mean()) < 0.05          # new: initialised as a new model's
    assert torch.equal(grown.content_mlp[0].weight, parent_model.content_mlp[0].weight)
    # The user tower's sequential encoder carries over too.
    assert torch.equal(grown.position.weight, parent_model.position.weight)
    assert torch.equal(grown.sequence.layers[0].self_attn.in_proj_weight,
                       parent_model.sequence.layers[0].self_attn.in_proj_weight)


@pytest.fixture(scope="module")
def movielens(shared_data, tmp_path_factory):
    """MovieLens-100k's catalog and ratings as they come out of the importer."""
    landing = tmp_path_factory.mktemp("ml-landing")
    subprocess.run([sys.executable, "-m", "jobs.import_dataset", "--format", "movielens-100k", "--source",
                    str(shared_data / "movielens-100k"), "--warehouse", str(landing)],
                   check=True, cwd=PROJECT_ROOT, env=project_env(), capture_output=True)
    catalog = pq.read_table(landing / "landing" / "catalog" / "movielens-100k.parquet").to_pandas()
    ratings = pq.read_table(landing / "landing" / "interactions" / "movielens-100k.parquet").to_pandas()
    return catalog, ratings.sort_values("ts", kind="stable").reset_index(drop=True)


def _tables(wh: config.Warehouse, run_date: str, catalog, ratings) -> None:
    """The catalog and interactions tables as ingest leaves them (the columns training reads)."""
    write_arrow_table(pa.table({
        config.VIDEO_ID: pa.array(catalog["video_id"], pa.string()),
        config.TITLE: pa.array(catalog["title"], pa.string()),
        config.PUBLISHED_AT: pa.array([dt.datetime(1995, 1, 1, tzinfo=dt.timezone.utc)] * len(catalog),
                                      pa.timestamp("us", "UTC"))}), wh.catalog, run_date)
    write_arrow_table(pa.table({
        config.USER_ID: pa.array(ratings["user_id"], pa.string()),
        config.VIDEO_ID: pa.array(ratings["video_id"], pa.string()),
        config.TS: pa.array((ratings["ts"].to_numpy() * 1_000_000).astype("int64"), pa.timestamp("us", "UTC")),
        config.EVENT: pa.array(ratings["event"], pa.string())}), wh.interactions, run_date)


def _night(wh: config.Warehouse, run_date: str, **train_options) -> dict:
    from jobs.evaluate import evaluate_run
    from jobs.publish import publish
    from jobs.score import score
    from jobs.train import train

    trained = train(wh, run_date, **train_options)
    evaluated = evaluate_run(wh, run_date, tolerance=0.1)
    score(wh, run_date, top_n=10)
    publish(wh, run_date, top_n=10)
    return {"train": trained, "evaluate": evaluated}


@pytest.fixture(scope="module")
def first_night(movielens, tmp_path_factory):
    """A warehouse whose production model is a full retrain on the first 70% of the ratings (at
    most 8 epochs: what these tests check does not need the default budget's last points)."""
    catalog, ratings = movielens
    wh = config.Warehouse.at(tmp_path_factory.mktemp("incremental") / "warehouse")
    _tables(wh, NIGHT_1, catalog, ratings.iloc[: int(0.7 * len(ratings))])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(config, "EVAL_SEQUENTIAL", "0")
        counters = _night(wh, NIGHT_1, epochs=8)
    return wh, counters


@pytest.mark.slow
def test_the_first_night_is_a_full_retrain_that_records_its_window(first_night):
    wh, counters = first_night
    trained = counters["train"]
    assert trained["training_mode"] == "full" and trained["parent_version"] is None
    assert trained["mode_reason"] == "no production model to start from"
    meta = json.loads((wh.models / trained["model_version"] / "model.json").read_text())
    assert meta["full_trained_on"] == NIGHT_1 and meta["evaluation_protocol"] == "leave_last_out"
    assert meta["full_best_epoch"] == trained["best_epoch"] >= 1
    assert meta["window"]["end_utc"] < "1998-04-23" and meta["window"]["start"] < meta["window"]["end"]


def _copy(wh: config.Warehouse, target) -> config.Warehouse:
    import shutil

    shutil.copytree(wh.root, target)
    return config.Warehouse.at(target)


@pytest.mark.slow
def test_an_incremental_night_learns_the_new_ratings_and_is_examined_with_production(first_night, movielens,
                                                                                     tmp_path, monkeypatch):
    from models.artifact import load_artifact

    monkeypatch.setattr(config, "EVAL_SEQUENTIAL", "0")
    catalog, ratings = movielens
    wh = _copy(first_night[0], tmp_path / "warehouse")
    parent = first_night[1]["train"]["model_version"]
    _tables(wh, NIGHT_2, catalog, ratings.iloc[: int(0.85 * len(ratings))])
    counters = _night(wh, NIGHT_2)

    trained = counters["train"]
    assert trained["training_mode"] == "incremental" and trained["parent_version"] == parent
    meta = json.loads((wh.models / trained["model_version"] / "model.json").read_text())
    parent_meta = json.loads((wh.models / parent / "model.json").read_text())
    # replay_ratio per new one, or every older rating where there are fewer (the budget is larger).
    older = int((ratings.iloc[: int(0.85 * len(ratings))]["ts"] <= parent_meta["window"]["end"]).sum())
    assert trained["new_interactions"] > 0
    assert trained["replayed_interactions"] == min(
        math.ceil(IncrementalSettings.replay_ratio * trained["new_interactions"]), older)
    assert meta["window"]["start"] == parent_meta["window"]["end"] < meta["window"]["end"] == meta["exam_cutoff"]
    assert meta["full_trained_on"] == NIGHT_1 and meta["evaluation_protocol"] == "after_cutoff"
    # The lineage's full retrain says how many epochs help: the night trains at most one more.
    assert meta["full_best_epoch"] == parent_meta["full_best_epoch"]
    assert trained["epochs"] <= min(IncrementalSettings.epochs, parent_meta["full_best_epoch"] + 1)
    # The model, production and the baselines on the same exam: the users' videos after the cutoff.
    metrics = pq.read_table(wh.model_metrics / NIGHT_2).to_pandas()
    exam_rows = metrics[metrics["metric"] == "users"].set_index("method")["value"]
    assert exam_rows["production"] == exam_rows["two_tower"] == exam_rows["most_popular"] > 0
    evaluated = counters["evaluate"]
    assert evaluated["gate_passed"] and "on tonight's exam" in evaluated["gate"]
    assert evaluated["evaluation_protocol"] == "after_cutoff"
    report = (wh.run_dir(NIGHT_2) / "evaluation.html").read_text()
    assert "after-cutoff" in report
    # The baselines keep the settings tuned on the full retrain's night instead of tuning again.
    tuned = first_night[1]["evaluate"]["baseline_tuning"]
    assert tuned and {record["tuned_on"] for record in evaluated["baseline_tuning"].values()} == {NIGHT_1}
    assert {m: r["chosen"] for m, r in evaluated["baseline_tuning"].items()} == {m: r["chosen"] for m, r in tuned.items()}
    assert f"Tuned on the night of {NIGHT_1}" in report and "reused tonight" in report
    # The new users and videos have rows of their own; everyone gets a list.
    grown = load_artifact(wh.models, trained["model_version"])
    assert len(grown.user_ids) > len(load_artifact(wh.models, parent).user_ids)
    lists = pq.read_table(wh.candidate_lists / NIGHT_2).to_pandas()
    assert lists["user_id"].nunique() == ratings.iloc[: int(0.85 * len(ratings))]["user_id"].nunique()


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    """A warehouse whose production model is a full retrain on the first 75% (by time) of a
    generated platform's log (`jobs.datasets.make_load_data`: 3,000 users with a favourite genre,
    800 videos), and the whole log. Unlike MovieLens-100k, where popularity and item-kNN beat the
    model on the newest ratings, here tastes persist and the model clearly leads on the exam."""
    import pandas as pd

    from jobs.datasets.make_load_data import plan_catalog, simulate_interactions

    catalog_rng, users_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(11).spawn(2))
    run_day = dt.date.fromisoformat(NIGHT_1)
    videos = plan_catalog(catalog_rng, 800, run_day)
    catalog = pd.DataFrame({"video_id": [v.video_id for v in videos], "title": [v.title for v in videos]})
    log = simulate_interactions(users_rng, videos, 3_000, 60_000, run_day)
    log["ts"] = pd.to_datetime(log["ts"]).astype("int64") // 10**9
    log = log.sort_values("ts", kind="stable").reset_index(drop=True)
    wh = config.Warehouse.at(tmp_path_factory.mktemp("platform") / "warehouse")
    _tables(wh, NIGHT_1, catalog, log[log["ts"] <= log["ts"].quantile(0.75)])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(config, "EVAL_SEQUENTIAL", "0")
        counters = _night(wh, NIGHT_1)
    return wh, counters, catalog, log


@pytest.mark.slow
@pytest.mark.parametrize("corrupted", [False, True], ids=["clean", "random-interactions"])
def test_the_gate_stops_a_model_trained_on_a_night_of_random_interactions(platform, tmp_path, monkeypatch,
                                                                          corrupted):
    import models.incremental
    from jobs.evaluate import evaluate_run
    from jobs.train import train

    monkeypatch.setattr(config, "EVAL_SEQUENTIAL", "0")
    first, _, catalog, log = platform
    wh = _copy(first, tmp_path / "warehouse")
    _tables(wh, NIGHT_2, catalog, log)
    if corrupted:
        # A model made worse on purpose: tonight's training, the tower's and the re-ranker's, sees
        # each interaction with a video drawn at random; the histories and the exam, read from the
        # tables, stay as they are.
        learn, rank = models.incremental.train_two_tower, models.incremental.fit_ranker
        draw = np.random.default_rng(3)

        def shuffle(items: np.ndarray) -> np.ndarray:
            return draw.integers(0, len(catalog), len(items))

        def shuffled_tower(content, data, n_users, **options):
            noise = data.subset(np.ones(len(data), bool))
            noise.item = shuffle(noise.item)
            return learn(content, noise, n_users, **options)

        monkeypatch.setattr(models.incremental, "train_two_tower", shuffled_tower)
        monkeypatch.setattr(models.incremental, "fit_ranker", lambda tower, context, users, targets, **options:
                            rank(tower, context, users, shuffle(targets), **options))
    trained = train(wh, NIGHT_2)
    assert trained["training_mode"] == "incremental"
    meta = json.loads((wh.models / trained["model_version"] / "model.json").read_text())
    # How sure the exam is of the ratio to production, which the verdict quotes.
    exam = meta["evaluation"][meta["published_method"]]
    low, high = exam["ndcg@10_to_production_low"], exam["ndcg@10_to_production_high"]
    certainty = f"the exam of {meta['training']['exam_users']} users puts the ratio to production between " \
                f"{low:.2f} and {high:.2f}"
    if not corrupted:
        evaluated = evaluate_run(wh, NIGHT_2)
        assert evaluated["gate_passed"] and "on tonight's exam" in evaluated["gate"]
        assert certainty in evaluated["gate"] and low < high
        return
    assert high < 0.75   # sure that it is below the floor, not only by chance
    with pytest.raises(StageError, match="BLOCKED.*on tonight's exam") as blocked:
        evaluate_run(wh, NIGHT_2)
    assert certainty in str(blocked.value)


def _with_new_interactions(data: IndexedInteractions, users: np.ndarray, at: float) -> IndexedInteractions:
    """`data` plus one interaction of each of `users` at time `at`, sorted as the tables are read."""
    user, item = np.r_[data.user, users], np.r_[data.item, np.zeros(len(users), np.int64)]
    ts = np.r_[data.ts, np.full(len(users), at)]
    order = np.lexsort((ts, user))
    return IndexedInteractions(user[order], item[order], np.ones(len(order), np.float32), ts[order])


@pytest.mark.slow
def test_the_mode_follows_the_schedule_the_request_and_the_production_model(first_night, tmp_path):
    from jobs.plumbing.model_inputs import load_model_inputs
    from jobs.train import choose_parent
    from models.content import fit_content_stats

    wh = first_night[0]
    inputs = load_model_inputs(wh)
    stats = fit_content_stats(inputs.items)
    window_end = float(inputs.data.ts.max())
    everyone = np.unique(inputs.data.user)
    later = _with_new_interactions(inputs.data, everyone, window_end + 3600)   # an hour of news from everyone

    parent, why = choose_parent(wh, NIGHT_2, "auto", False, stats, later)
    assert parent is not None and parent.version == first_night[1]["train"]["model_version"]
    assert choose_parent(wh, NIGHT_2, "full", False, stats, later) == (None, "training_mode=full")
    assert choose_parent(wh, NIGHT_2, "auto", True, stats, later) == (None, "full_refresh")
    parent, why = choose_parent(wh, "2026-11-27", "auto", False, stats, later)
    assert parent is None and why.startswith("the last full retrain was 7 days ago")
    assert choose_parent(wh, "2026-11-27", "incremental", False, stats, later)[0] is not None   # asked for
    # News from ten users only: too small an exam for auto to trust, though incremental may be asked for.
    few = _with_new_interactions(inputs.data, everyone[:10], window_end + 3600)
    parent, why = choose_parent(wh, NIGHT_2, "auto", False, stats, few)
    assert parent is None and "would hold 10 users, fewer than VREC_EVAL_MIN_USERS=100" in why
    assert choose_parent(wh, NIGHT_2, "incremental", False, stats, few)[0] is not None
    parent, why = choose_parent(wh, NIGHT_2, "auto", False, stats, inputs.data)
    assert parent is None and "no interaction arrived after" in why
    with pytest.raises(StageError, match="incremental is not possible: no interaction arrived"):
        choose_parent(wh, NIGHT_2, "incremental", False, stats, inputs.data)

    empty = config.Warehouse.at(tmp_path / "empty")
    assert choose_parent(empty, NIGHT_2, "auto", False, stats, later) == (None, "no production model to start from")
    with pytest.raises(StageError, match="no production model"):
        choose_parent(empty, NIGHT_2, "incremental", False, stats, later)
