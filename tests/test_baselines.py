"""The baselines the model is measured against: the tuning keeps the grid point that validates best,
SASRec reads sequences correctly and learns a sequential pattern, and the report shows the tuning."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from models.baselines import fit_baselines, tune_baselines
from models.evaluation import evaluate, leave_last_out
from models.sasrec import SASRecConfig, fit_sasrec, train_sasrec, training_windows, user_sequences
from models.training import IndexedInteractions


def interactions(users, items) -> IndexedInteractions:
    users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
    return IndexedInteractions(users, items, np.ones(len(users), np.float32), np.arange(len(users), dtype=np.float64))


def taste_groups(n_users=120, n_items=60, groups=4, per_user=12, seed=3) -> IndexedInteractions:
    """Each user watches videos of one group only: any method that learns anything does well."""
    rng = np.random.default_rng(seed)
    size = n_items // groups
    users, items = [], []
    for user in range(n_users):
        group = user % groups
        users += [user] * per_user
        items += list(group * size + rng.choice(size, per_user, replace=False))
    return interactions(users, items)


def cycles(n_users=64, n_items=30, seed=0) -> IndexedInteractions:
    """Every user walks the cycle 0 -> 1 -> ... -> n_items - 1 -> 0 from a random start."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for user in range(n_users):
        start, length = rng.integers(n_items), rng.integers(8, 16)
        users += [user] * length
        items += [(start + step) % n_items for step in range(length)]
    return interactions(users, items)


def test_tuning_keeps_the_setting_that_validates_best_and_fit_baselines_uses_it():
    data = taste_groups()
    n_users, n_items = 120, 60
    holdout = leave_last_out(data, n_items)
    validation = leave_last_out(holdout.train, n_items)
    # Regularization so strong that ALS learns nothing, and a BPR that never steps: known losers.
    grids = {"als": [{"factors": 8, "regularization": 1e6}, {"factors": 8, "regularization": 0.1}],
             "bpr": [{"factors": 8, "learning_rate": 0.0}, {"factors": 8, "learning_rate": 0.05}],
             "item_knn": [{"neighbours": 1}, {"neighbours": 20}]}
    tuned = tune_baselines(validation, n_users, n_items, grids=grids, log=lambda line: None)

    for name, grid in grids.items():
        assert tuned[name].chosen == grid[1], (name, tuned[name].validation_ndcg)
        bad, good = tuned[name].validation_ndcg
        assert good > bad + 0.1 and good == max(tuned[name].validation_ndcg)
        assert tuned[name].validation_users == 120
        record = tuned[name].as_record()
        assert record["chosen"] == grid[1] and [p["setting"] for p in record["grid"]] == grid

    # The choice carries over to the held-out slice: the chosen settings beat the rejected ones there.
    chosen = fit_baselines(holdout.train, n_users, n_items, settings={n: t.chosen for n, t in tuned.items()})
    rejected = fit_baselines(holdout.train, n_users, n_items, settings={n: g[0] for n, g in grids.items()})
    assert chosen["als"].model.regularization == 0.1 and chosen["bpr"].model.learning_rate == 0.05
    for name in grids:
        assert (evaluate(chosen[name], holdout, n_users, n_items)["ndcg@10"]
                > evaluate(rejected[name], holdout, n_users, n_items)["ndcg@10"] + 0.1), name


def test_als_on_every_core_learns_the_factors_one_thread_learns():
    """ALS runs on every core: its factors must not depend on how many there are."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    from models.baselines import MatrixFactorisation, user_item_matrix

    data = taste_groups(n_users=300, n_items=120, per_user=20)
    matrix = user_item_matrix(data, 300, 120)
    every_core = MatrixFactorisation("als", matrix, factors=16, seed=5).model
    with threadpool_limits(limits=1):
        one = AlternatingLeastSquares(factors=16, regularization=0.05, iterations=15, random_state=5, num_threads=1)
        one.fit(matrix, show_progress=False)
    np.testing.assert_array_equal(every_core.user_factors, one.user_factors)
    np.testing.assert_array_equal(every_core.item_factors, one.item_factors)


def test_tuning_breaks_ties_towards_the_earlier_setting():
    from models.baselines import Tuning

    assert Tuning([{"k": 1}, {"k": 2}, {"k": 3}], [0.2, 0.3, 0.3], 0.0, 5).chosen == {"k": 2}


def test_sasrec_sequences_and_training_windows_exact():
    data = interactions([0, 0, 0, 0, 0, 2, 2], [5, 6, 7, 8, 9, 1, 3])
    # Rows are video + 1, left-padded with 0; user 1 has no interactions.
    assert user_sequences(data, 3, 3).tolist() == [[8, 9, 10], [0, 0, 0], [0, 2, 4]]
    inputs, targets = training_windows(data, 3)
    # User 0's five videos make two windows from the newest end; user 2's two videos one.
    assert inputs.tolist() == [[7, 8, 9], [0, 0, 6], [0, 0, 2]]
    assert targets.tolist() == [[8, 9, 10], [0, 0, 7], [0, 0, 4]]


def test_sasrec_is_deterministic_for_a_seed():
    data = cycles(n_users=16, n_items=12)
    cfg = SASRecConfig(max_len=8, batch_size=8)
    first, _ = train_sasrec(data, 16, 12, cfg, epochs=2, seed=5, log=lambda line: None)
    second, _ = train_sasrec(data, 16, 12, cfg, epochs=2, seed=5, log=lambda line: None)
    other, _ = train_sasrec(data, 16, 12, cfg, epochs=2, seed=6, log=lambda line: None)
    for name, weights in first.state_dict().items():
        assert torch.equal(weights, second.state_dict()[name]), name
    assert not torch.equal(first.item_embedding.weight, other.item_embedding.weight)


def test_sasrec_on_two_threads_is_deterministic_and_leaves_torch_as_it_was():
    data = cycles(n_users=16, n_items=12)
    cfg = SASRecConfig(max_len=8, batch_size=8, threads=2)
    before = torch.get_num_threads()
    first, facts = train_sasrec(data, 16, 12, cfg, epochs=2, seed=5, log=lambda line: None)
    second, _ = train_sasrec(data, 16, 12, cfg, epochs=2, seed=5, log=lambda line: None)
    assert torch.get_num_threads() == before
    for name, weights in first.state_dict().items():
        assert torch.equal(weights, second.state_dict()[name]), name


@pytest.mark.parametrize("loss", ["ce", "bce"])
def test_sasrec_learns_what_comes_next_in_a_cycle(loss):
    """From any start, the next video is the following one on the cycle: SASRec finds it (a method
    blind to order sees both neighbours of a user's run of videos as equally likely)."""
    data = cycles()
    n_users, n_items = 64, 30
    holdout = leave_last_out(data, n_items)
    validation = leave_last_out(holdout.train, n_items)
    cfg = SASRecConfig(max_len=16, batch_size=16, max_epochs=40, patience=3, loss=loss)
    scorer, facts = fit_sasrec(validation, holdout.train, n_users, n_items, cfg, log=lambda line: None)
    metrics = evaluate(scorer, holdout, n_users, n_items)
    assert metrics["hr@10"] >= 0.95 and metrics["ndcg@10"] >= 0.8, (metrics, facts)
    assert facts["best_epoch"] <= facts["search_epochs"] <= 40 and facts["final_epochs"] == facts["best_epoch"]


def test_sequential_baseline_runs_at_small_sizes_or_when_asked(monkeypatch):
    from jobs.plumbing import config
    from jobs.evaluate import sequential_runs

    monkeypatch.setattr(config, "DEFAULT_SEQUENTIAL_MAX_INTERACTIONS", 200_000)
    monkeypatch.setattr(config, "EVAL_SEQUENTIAL", "auto")
    assert sequential_runs(98_114)[0] and not sequential_runs(914_326)[0]
    monkeypatch.setattr(config, "EVAL_SEQUENTIAL", "1")
    assert sequential_runs(914_326)[0]
    monkeypatch.setattr(config, "EVAL_SEQUENTIAL", "0")
    assert not sequential_runs(1_000)[0]


def test_report_lists_the_grid_and_marks_the_chosen_settings():
    from jobs.plumbing.evaluation_report import render

    tonight = pd.DataFrame([("2026-11-20", "v1", method, metric, value, method == "two_tower")
                            for method, value in (("two_tower", 0.09), ("als", 0.06), ("sasrec", 0.07))
                            for metric in ("ndcg@10", "hr@10")],
                           columns=["run_date", "model_version", "method", "metric", "value", "is_published"])
    tuning = {"als": {"chosen": {"factors": 64, "regularization": 10.0}, "validation_users": 943, "seconds": 1.0,
                      "usual": {"factors": 64, "regularization": 0.05},
                      "grid": [{"setting": {"factors": 64, "regularization": 0.05}, "validation_ndcg@10": 0.0612},
                               {"setting": {"factors": 64, "regularization": 10.0}, "validation_ndcg@10": 0.0733}]}}
    sequential = {"ran": True, "max_len": 200, "hidden": 64, "blocks": 2, "heads": 1, "dropout": 0.2,
                  "loss": "ce", "best_epoch": 31, "search_epochs": 36, "validation_ndcg@10": 0.0951,
                  "final_from": "scratch", "train_seconds": 80.5}
    page = render("2026-11-20", "v1", tonight, tonight, "passed", {}, tuning=tuning, sequential=sequential)
    assert "<h2>Tuned baselines</h2>" in page
    assert "<td>als</td><td>factors=64, regularization=0.05</td><td>0.0612</td><td>usual setting</td>" in page
    assert "<td><b>factors=64, regularization=10.0</b></td><td><b>0.0733</b></td><td><b>chosen</b></td>" in page
    assert "max_len=200, hidden=64, blocks=2, heads=1, dropout=0.2, loss=ce" in page
    assert "31 epochs (best of 36 tried), then trained again on all the training data; 80.5s in all" in page
    assert "(943 users)" in page
