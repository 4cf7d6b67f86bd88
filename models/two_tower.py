"""The fused two-tower model.

Item tower: an MLP over the item's content (text, visual and audio features), a small CNN over the
video's thumbnail, a 1-D CNN over its MFCC sequence, plus an ID embedding for warm items. During training the ID embedding is dropped at random, so the content path alone
learns to place a video, which is what a video published today (no interactions, no trained ID)
relies on. User tower: a weighted pooling of the item vectors of the user's recent videos plus a
user embedding, through an MLP. Both towers end on the unit sphere; a score is a cosine / tau.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class TowerConfig:
    n_items: int
    n_users: int
    content_dim: int
    dim: int = 64
    hidden: int = 256
    history_len: int = 30
    id_dropout: float = 0.5
    temperature: float = 0.07
    dropout: float = 0.1
    # Learned branches over parts of the content row (see ContentStats.branch_layout); 0: none.
    thumbnail_offset: int = 0
    thumbnail_side: int = 0
    mfcc_offset: int = 0
    mfcc_steps: int = 0
    n_mfcc: int = 0
    branch_dim: int = 32

    def to_dict(self) -> dict:
        return asdict(self)


class TwoTower(nn.Module):
    def __init__(self, cfg: TowerConfig, content: torch.Tensor):
        super().__init__()
        self.cfg = cfg
        # Content is a fixed input, not a parameter: kept on the module so it moves with .to(device).
        self.register_buffer("content", content, persistent=False)
        self.content_mlp = nn.Sequential(
            nn.Linear(cfg.content_dim, cfg.hidden), nn.GELU(), nn.Dropout(cfg.dropout),
            nn.Linear(cfg.hidden, cfg.dim))
        self.thumbnail_cnn = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.GELU(), nn.MaxPool2d(2),
            nn.Conv2d(16, cfg.branch_dim, 3, padding=1), nn.GELU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(cfg.branch_dim, cfg.dim)) if cfg.thumbnail_side else None
        self.mfcc_cnn = nn.Sequential(
            nn.Conv1d(cfg.n_mfcc, cfg.branch_dim, 3, padding=1), nn.GELU(), nn.AdaptiveMaxPool1d(1),
            nn.Flatten(), nn.Linear(cfg.branch_dim, cfg.dim)) if cfg.mfcc_steps else None
        # Sparse gradients: a step touches the rows of its batch, not every user and video (at
        # 200,000 users a dense update of the tables was most of a training step).
        self.item_id = nn.Embedding(cfg.n_items, cfg.dim, sparse=True)
        self.user_id = nn.Embedding(cfg.n_users, cfg.dim, sparse=True)
        self.user_mlp = nn.Sequential(
            nn.Linear(2 * cfg.dim, cfg.hidden), nn.GELU(), nn.Dropout(cfg.dropout),
            nn.Linear(cfg.hidden, cfg.dim))
        nn.init.normal_(self.item_id.weight, std=0.01)
        nn.init.normal_(self.user_id.weight, std=0.01)

    def item_vectors(self, items: torch.Tensor, use_id: torch.Tensor) -> torch.Tensor:
        """Unit vectors of training items; `use_id` (bool) says which add their ID embedding."""
        return self.encode_items(self.content[items], items, use_id)

    def encode_items(self, content: torch.Tensor, items: torch.Tensor, use_id: torch.Tensor) -> torch.Tensor:
        """Unit item vectors from content rows; `items` index the ID table where `use_id` is set."""
        vectors = self.content_mlp(content)
        cfg = self.cfg
        if self.thumbnail_cnn is not None:
            pixels = content[:, cfg.thumbnail_offset: cfg.thumbnail_offset + 3 * cfg.thumbnail_side ** 2]
            image = pixels.reshape(-1, cfg.thumbnail_side, cfg.thumbnail_side, 3).permute(0, 3, 1, 2)
            vectors = vectors + self.thumbnail_cnn(image)
        if self.mfcc_cnn is not None:
            grid = content[:, cfg.mfcc_offset: cfg.mfcc_offset + cfg.mfcc_steps * cfg.n_mfcc]
            vectors = vectors + self.mfcc_cnn(grid.reshape(-1, cfg.mfcc_steps, cfg.n_mfcc).transpose(1, 2))
        ids = self.item_id(items.clamp_min(0))
        return F.normalize(vectors + ids * use_id.unsqueeze(-1).to(vectors.dtype), dim=-1)

    def user_vectors(self, users: torch.Tensor, history_vectors: torch.Tensor,
                     history_weights: torch.Tensor) -> torch.Tensor:
        """Unit user vectors from (B, L, dim) history item vectors and (B, L) weights (0 = padding).

        A user index of -1 (a user the model was not trained on) gets no user embedding.
        """
        total = history_weights.sum(dim=1, keepdim=True).clamp_min(1e-6)
        pooled = (history_vectors * history_weights.unsqueeze(-1)).sum(dim=1) / total
        user_emb = self.user_id(users.clamp_min(0)) * (users >= 0).unsqueeze(-1).to(pooled.dtype)
        mixed = self.user_mlp(torch.cat([pooled, user_emb], dim=-1))
        return F.normalize(pooled + mixed, dim=-1)

    def encode_users(self, users: torch.Tensor, history_items: torch.Tensor, history_weights: torch.Tensor,
                     item_vectors: torch.Tensor, block_size: int = 4096) -> torch.Tensor:
        """User vectors for scoring, in blocks, from precomputed item vectors (no ID dropout)."""
        return torch.cat([
            self.user_vectors(users[b:b + block_size], item_vectors[history_items[b:b + block_size]],
                              history_weights[b:b + block_size])
            for b in range(0, len(users), block_size)])
