"""The user tower's sequential encoder: it reads the order of a history, old models still load."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from models.evaluation import evaluate, leave_last_out
from models.scoring import encode
from models.training import IndexedInteractions, train_two_tower
from models.two_tower import TowerConfig, TwoTower


def chained_sessions(n_users: int = 300, n_items: int = 60, steps: int = 24, session: int = 3, seed: int = 3):
    """Each video has one fixed successor, but a user's session of `session` videos starts at a
    random one: only the latest video says what comes next; the rest of the history is noise."""
    rng = np.random.default_rng(seed)
    successor = rng.permutation(n_items)
    users, items = [], []
    for user in range(n_users):
        for _ in range(steps // session):
            item = int(rng.integers(n_items))
            for _ in range(session):
                users.append(user)
                items.append(item)
                item = int(successor[item])
    n = len(users)
    data = IndexedInteractions(np.array(users, np.int64), np.array(items, np.int64), np.ones(n, np.float32),
                               np.arange(n, dtype=np.float64))
    return data, n_users, n_items


def test_the_sequential_encoder_learns_what_follows_the_latest_video_where_pooling_cannot():
    data, n_users, n_items = chained_sessions()
    content = np.random.default_rng(0).normal(size=(n_items, 8)).astype(np.float32)
    # Hold out each user's last video, which follows their latest one two times out of three.
    holdout = leave_last_out(data, n_items)
    results = {}
    for layers in (0, 1):
        model, _ = train_two_tower(content, holdout.train, n_users, epochs=6, seed=7,
                                   cfg_overrides={"sequence_layers": layers}, log=lambda line: None)
        results[layers] = evaluate(encode(model, content, holdout.train, n_users), holdout, n_users, n_items)["hr@10"]
    # Measured: 0.68 against 0.24 (the best possible is about 0.67 plus chance).
    assert results[1] > 0.6 and results[1] > 2 * results[0], results


def test_a_user_without_history_gets_a_finite_unit_vector():
    model = TwoTower(TowerConfig(n_items=5, n_users=2, content_dim=3), torch.zeros(5, 3)).eval()
    history = torch.zeros(2, model.cfg.history_len, dtype=torch.long)
    weights = torch.zeros(2, model.cfg.history_len)
    weights[1, :2] = 1.0
    vectors = model.encode_users(torch.tensor([0, -1]), history, weights, torch.randn(5, model.cfg.dim))
    assert torch.isfinite(vectors).all() and torch.allclose(vectors.norm(dim=1), torch.ones(2))


def test_the_sequence_cannot_be_longer_than_the_history():
    with pytest.raises(ValueError, match="sequence_len"):
        TwoTower(TowerConfig(n_items=5, n_users=2, content_dim=3, history_len=5, sequence_len=10), torch.zeros(5, 3))


def test_a_model_saved_before_the_sequential_encoder_loads_as_it_was(tmp_path):
    from models.artifact import load_artifact, save_artifact
    from models.content import fit_content_stats

    items = pd.DataFrame({"video_id": ["a", "b", "c"], "has_text": True, "text_embedding": list(np.eye(3, dtype=np.float32)),
                          "has_video": False, "visual": None, "thumbnail": None, "has_audio": False, "audio": None})
    stats = fit_content_stats(items)
    model = TwoTower(TowerConfig(n_items=3, n_users=1, content_dim=stats.width, sequence_layers=0), torch.zeros(3, stats.width))
    version = save_artifact(tmp_path, "2026-11-20", model, stats, np.array(["a", "b", "c"], object),
                            np.ones(3, bool), np.array(["u"], object), {})
    document = tmp_path / version / "model.json"
    tower = json.loads(document.read_text())
    for key in ("sequence_layers", "sequence_len", "sequence_heads"):   # as an older release wrote it
        tower["tower"].pop(key)
    document.write_text(json.dumps(tower))
    loaded = load_artifact(tmp_path, version)
    assert loaded.model.cfg.sequence_layers == 0 and loaded.model.sequence is None
