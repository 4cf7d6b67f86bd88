"""Weight averaging: the first training's greedy soup of its best epochs (only those near the best
epoch's training loss), and fine-tunings that return the mean of their starting weights and their
epochs' when early stopping ended the first training."""

from __future__ import annotations

import numpy as np
import torch

from models.evaluation import evaluate, leave_last_out
from models.scoring import encode
from models.fit import FitSettings, fit_and_evaluate
from models.training import soup_ingredients, train_two_tower
from tests.test_sequential_tower import chained_sessions

QUIET = dict(log=lambda line: None)


def _setup():
    data, n_users, n_items = chained_sessions(n_users=200, n_items=40, steps=12)
    content = np.random.default_rng(0).normal(size=(n_items, 8)).astype(np.float32)
    holdout = leave_last_out(data, n_items)

    def validate(model) -> float:
        return evaluate(encode(model, content, holdout.train, n_users), holdout, n_users, n_items)["ndcg@10"]

    return content, holdout.train, n_users, validate


def test_the_soup_scores_at_least_its_best_epoch_and_says_what_it_kept():
    content, train, n_users, validate = _setup()
    # 16 epochs: the validation score has levelled off by the last few (measured: a soup of 4).
    _, single = train_two_tower(content, train, n_users, epochs=16, seed=7, validate=validate, patience=16, **QUIET)
    souped, facts = train_two_tower(content, train, n_users, epochs=16, seed=7, validate=validate, patience=16,
                                    soup=4, **QUIET)
    # The same epochs ran (the soup only changes which weights are returned).
    assert facts["validation"] == single["validation"]
    assert 2 <= facts["soup_epochs"] <= 4
    assert facts["soup_validation"] >= max(facts["validation"])
    # The returned weights are the soup that was scored.
    assert abs(validate(souped) - facts["soup_validation"]) < 1e-4


def test_an_averaged_fine_tuning_returns_the_mean_of_its_start_and_its_epochs():
    content, train, n_users, _ = _setup()
    start, _ = train_two_tower(content, train, n_users, epochs=1, seed=7, **QUIET)
    before = {name: weight.clone() for name, weight in start.state_dict().items()}
    plain, _ = train_two_tower(content, train, n_users, epochs=1, seed=8, init=start, **QUIET)
    averaged, facts = train_two_tower(content, train, n_users, epochs=1, seed=8, init=start,
                                      average_with_init=True, **QUIET)
    assert facts["averaged_weights"] == 2
    for name, weight in averaged.state_dict().items():
        expected = (start.state_dict()[name] + plain.state_dict()[name]) / 2
        assert torch.allclose(weight, expected, atol=1e-6), name
    assert not torch.equal(before["item_id.weight"], plain.state_dict()["item_id.weight"])
    # The starting model itself is left as it was.
    assert all(torch.equal(weight, before[name]) for name, weight in start.state_dict().items())


def test_the_soup_leaves_out_epochs_far_from_the_best_epochs_training_loss():
    # A small log's best epoch (loss 6.48) and a later one after the loss fell steeply (3.83): the
    # generated platform's first simulated night, where their soup scored well on validation and
    # badly on the next period.
    best, near, far = {"w": 1}, {"w": 2}, {"w": 3}
    kept = [(0.0656, best, 6.48), (0.0577, far, 3.83), (0.0492, near, 6.41)]
    assert soup_ingredients(kept) == [(0.0656, best), (0.0492, near)]
    assert soup_ingredients(kept, tolerance=1.0) == [(0.0656, best), (0.0577, far), (0.0492, near)]
    assert soup_ingredients([]) == []


def test_fine_tunings_are_averaged_only_after_early_stopping():
    data, n_users, n_items = chained_sessions(n_users=200, n_items=40, steps=12)
    content = np.random.default_rng(0).normal(size=(n_items, 8)).astype(np.float32)
    # Two epochs: the budget ends the first training, which was still improving.
    budget = fit_and_evaluate(content, data, n_users, FitSettings(epochs=2), **QUIET).training
    assert budget["epochs"] == budget["max_epochs"] == 2
    assert budget["averaged_fine_tunes"] is False
    # Early stopping ends it: its start is near its best, and the fine-tunings average with it.
    stopped = fit_and_evaluate(content, data, n_users, FitSettings(epochs=24, patience=2), **QUIET).training
    assert stopped["epochs"] < stopped["max_epochs"]
    assert stopped["averaged_fine_tunes"] is True
