"""Training cost that follows the data: the media parts of the item tower run only for videos with
media, and the first training's budget shrinks as the interaction log grows."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from models.fit import EXAMPLE_BUDGET, FitSettings, VALIDATION_USERS, plan_fit
from models.two_tower import TowerConfig, TwoTower

TEXT, VISUAL, SIDE, AUDIO = 12, 5, 16, 7


def _catalog(n_items: int, media_share: float, seed: int = 0) -> tuple[TowerConfig, torch.Tensor, torch.Tensor]:
    """A content matrix laid out as models.content builds it: text, visual, thumbnail, audio, then the
    four presence flags; a video without media has zeros in its media blocks and flags."""
    generator = torch.Generator().manual_seed(seed)
    thumbnail = 3 * SIDE * SIDE
    media_width = VISUAL + thumbnail + AUDIO
    width = TEXT + media_width + 4
    content = torch.randn(n_items, width, generator=generator)
    has_media = torch.rand(n_items, generator=generator) < media_share
    content[~has_media, TEXT:TEXT + media_width] = 0.0
    content[:, TEXT + media_width] = 1.0                                  # has_text
    content[:, TEXT + media_width + 1:] = has_media[:, None].float()      # has_video (x2), has_audio
    cfg = TowerConfig(n_items=n_items, n_users=4, content_dim=width, thumbnail_offset=TEXT + VISUAL,
                      thumbnail_side=SIDE, thumbnail_flag=TEXT + media_width + 2, media_offset=TEXT,
                      media_width=media_width, media_flag_offset=TEXT + media_width + 1, media_flag_count=3)
    return cfg, content, has_media


def test_media_columns_computed_only_for_videos_with_media_give_the_same_vectors():
    cfg, content, has_media = _catalog(64, media_share=0.2)
    sparse = TwoTower(cfg, content).eval()
    # The same weights reading every row through the whole first layer (media_width 0).
    dense = TwoTower(dataclasses.replace(cfg, media_width=0), content).eval()
    dense.load_state_dict(sparse.state_dict())
    items, use_id = torch.arange(64), torch.zeros(64, dtype=torch.bool)
    with torch.no_grad():
        assert torch.allclose(sparse.encode_items(content, items, use_id),
                              dense.encode_items(content, items, use_id), atol=1e-6)
    assert 0 < int(has_media.sum()) < 64


def test_text_only_videos_never_reach_the_media_branches():
    cfg, content, has_media = _catalog(32, media_share=0.25)
    model = TwoTower(cfg, content).train()
    reached = []
    model.thumbnail_cnn.register_forward_hook(lambda module, inputs, output: reached.append(len(inputs[0])))
    vectors = model.item_vectors(torch.arange(32), torch.ones(32, dtype=torch.bool))
    vectors.sum().backward()   # gradients flow through the rows that did take the branch
    assert reached == [int(has_media.sum())]
    assert model.thumbnail_cnn[0].weight.grad.abs().sum() > 0
    # A catalog without any media: the branch sees no rows and nothing fails.
    cfg, content, _ = _catalog(8, media_share=0.0)
    assert TwoTower(cfg, content).item_vectors(torch.arange(8), torch.ones(8, dtype=torch.bool)).shape == (8, 64)


def test_the_first_trainings_budget_shrinks_as_the_log_grows():
    settings = FitSettings()
    small, sparse, large = (plan_fit(settings, n) for n in (98_000, 281_000, 900_000))
    # MovieLens-100k's size keeps the full schedule; larger logs get fewer epochs, less patience
    # and larger batches.
    assert (small.epochs, small.patience, small.batch_size) == (24, 5, 512)
    assert (sparse.epochs, sparse.patience, sparse.batch_size) == (EXAMPLE_BUDGET // 281_000, 2, 1024)
    assert (large.epochs, large.patience, large.batch_size) == (3, 1, 1024)
    assert plan_fit(settings, 5_000_000).batch_size == 2048
    assert large.validation_users == VALIDATION_USERS
    # What an operator sets explicitly wins where it is smaller.
    assert plan_fit(FitSettings(epochs=2, batch_size=64), 98_000).epochs == 2
    assert plan_fit(FitSettings(epochs=2, batch_size=64), 98_000).batch_size == 64
    assert all(np.diff([plan_fit(settings, n).epochs for n in (10**5, 3 * 10**5, 10**6, 10**7)]) <= 0)
