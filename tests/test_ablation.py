"""The nightly modality ablation: what removing an input at scoring time does to held-out metrics,
on a small tower trained on synthetic tastes where only the text says what a video is."""

from __future__ import annotations

import numpy as np
import pandas as pd

from jobs.plumbing.evaluation_report import render
from models.evaluation import evaluate, leave_last_out
from models.fit import ablate_modalities
from models.scoring import encode
from models.training import IndexedInteractions, train_two_tower

GENRES, VIDEOS, USERS, TEXT = 6, 120, 90, 8


def _synthetic():
    """(content, interactions): each video's text is its genre (a noisy one-hot), 4 zero 'audio'
    columns that no video has, and the presence flags; each user watches one genre."""
    rng = np.random.default_rng(3)
    genre = np.arange(VIDEOS) % GENRES
    text = np.eye(GENRES, TEXT)[genre] * 3 + rng.normal(0, 0.1, (VIDEOS, TEXT))
    content = np.concatenate([text, np.zeros((VIDEOS, 4)), np.ones((VIDEOS, 1)), np.zeros((VIDEOS, 1))], axis=1)
    users, items = [], []
    for user in range(USERS):
        picks = rng.choice(np.flatnonzero(genre == user % GENRES), 8, replace=False)
        users += [user] * len(picks)
        items += list(picks)
    data = IndexedInteractions(np.array(users, np.int64), np.array(items, np.int64),
                               np.ones(len(users), np.float32), np.arange(len(users), dtype=np.float64))
    return content.astype(np.float32), data


def test_removing_text_hurts_and_removing_an_input_no_video_has_changes_nothing():
    content, data = _synthetic()
    holdout = leave_last_out(data, VIDEOS)
    tower, _ = train_two_tower(content, holdout.train, USERS, epochs=6, log=lambda line: None)
    full = evaluate(encode(tower, content, holdout.train, USERS), holdout, USERS, VIDEOS)
    text_columns = np.r_[np.arange(TEXT), TEXT + 4]
    audio_columns = np.r_[np.arange(TEXT, TEXT + 4), TEXT + 5]
    modalities = {"text": (text_columns, np.ones(VIDEOS, bool)),
                  "audio": (audio_columns, np.zeros(VIDEOS, bool))}
    ablation = ablate_modalities(tower, content, holdout, USERS, modalities)

    assert ablation["audio"] == {"videos_with_modality": 0.0}          # nothing to remove: "no media"
    assert ablation["text"]["videos_with_modality"] == VIDEOS
    assert ablation["text"]["ndcg@10"] < 0.5 * full["ndcg@10"]        # the text is what says the genre
    assert ablation["collaborative"]["videos_with_modality"] == VIDEOS

    rows = [("d", "v", "two_tower", m, full[m], True) for m in ("ndcg@10", "hr@10")]
    rows += [("d", "v", f"ablation_without_{modality}", metric, value, False)
             for modality, metrics in ablation.items() for metric, value in metrics.items()]
    tonight = pd.DataFrame(rows, columns=["run_date", "model_version", "method", "metric", "value", "is_published"])
    page = render("d", "v", tonight, tonight, "passed", {})
    assert "Which modality earns its keep" in page and "<td>audio</td><td>0</td><td>no media</td>" in page
    assert f"<td>text</td><td>{VIDEOS}</td><td>{ablation['text']['ndcg@10']:.4f}</td>" in page
