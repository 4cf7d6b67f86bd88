"""The fused two-tower model.

Item tower: an MLP over the item's content (text, visual and audio features), a small CNN over the
video's thumbnail, a 1-D CNN over its MFCC sequence (the media parts computed only for the videos
that have media), plus an ID embedding for warm items. During training the ID embedding is dropped
at random, so the content path alone learns to place a video, which is what a video published today (no interactions, no trained ID)
relies on. User tower: a weighted pooling of the item vectors of the user's recent videos plus a
user embedding, through an MLP; with `sequence_layers`, self-attention over the newest
`sequence_len` of those videos in their order (a SASRec-style encoder: pooling forgets which video
came last, and on platforms whose users watch in sessions the last few videos say most about the
next). Both towers end on the unit sphere; a score is a cosine / tau.
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
    # The media blocks' columns in a row and their presence flags (see ContentStats.branch_layout).
    # On a platform most videos are text-only: the media columns and branches are computed only
    # for the rows that have them, not multiplied by zeros. 0 / -1: every row (older artifacts).
    media_offset: int = 0
    media_width: int = 0
    media_flag_offset: int = 0
    media_flag_count: int = 0
    thumbnail_flag: int = -1
    mfcc_flag: int = -1
    # Self-attention blocks over the user's newest `sequence_len` history videos (0: pooling only,
    # as in artifacts made before the sequential encoder). One block over ten videos: on
    # MovieLens-100k two blocks or 20-30 videos were no better and cost more (docs/benchmarks.md, "Model quality").
    sequence_layers: int = 1
    sequence_len: int = 10
    sequence_heads: int = 2

    def to_dict(self) -> dict:
        return asdict(self)


def _rows_with(content: torch.Tensor, flag: int, count: int = 1) -> torch.Tensor:
    """Indices of the rows with any of `count` presence flags from column `flag` set (every row
    when there is no flag column)."""
    if flag < 0:
        return torch.arange(len(content), device=content.device)
    return torch.nonzero((content[:, flag:flag + count] > 0.5).any(dim=1)).squeeze(1)


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
        self.sequence = None
        if cfg.sequence_layers:
            if not 0 < cfg.sequence_len <= cfg.history_len:
                raise ValueError(f"sequence_len {cfg.sequence_len} must be within the history's {cfg.history_len} videos")
            self.position = nn.Embedding(cfg.sequence_len, cfg.dim)
            block = nn.TransformerEncoderLayer(cfg.dim, cfg.sequence_heads, dim_feedforward=2 * cfg.dim,
                                               dropout=cfg.dropout, activation="gelu", batch_first=True,
                                               norm_first=True)
            self.sequence = nn.TransformerEncoder(block, cfg.sequence_layers, enable_nested_tensor=False)
            nn.init.normal_(self.position.weight, std=0.01)

    def item_vectors(self, items: torch.Tensor, use_id: torch.Tensor) -> torch.Tensor:
        """Unit vectors of training items; `use_id` (bool) says which add their ID embedding."""
        return self.encode_items(self.content[items], items, use_id)

    def encode_items(self, content: torch.Tensor, items: torch.Tensor, use_id: torch.Tensor) -> torch.Tensor:
        """Unit item vectors from content rows; `items` index the ID table where `use_id` is set."""
        cfg = self.cfg
        vectors = self.content_mlp[1:](self._content_layer(content))
        if self.thumbnail_cnn is not None:
            rows = _rows_with(content, cfg.thumbnail_flag)
            pixels = content[rows, cfg.thumbnail_offset: cfg.thumbnail_offset + 3 * cfg.thumbnail_side ** 2]
            image = pixels.reshape(-1, cfg.thumbnail_side, cfg.thumbnail_side, 3).permute(0, 3, 1, 2)
            vectors = vectors.index_add(0, rows, self.thumbnail_cnn(image).to(vectors.dtype))
        if self.mfcc_cnn is not None:
            rows = _rows_with(content, cfg.mfcc_flag)
            grid = content[rows, cfg.mfcc_offset: cfg.mfcc_offset + cfg.mfcc_steps * cfg.n_mfcc]
            sequence = grid.reshape(-1, cfg.mfcc_steps, cfg.n_mfcc).transpose(1, 2)
            vectors = vectors.index_add(0, rows, self.mfcc_cnn(sequence).to(vectors.dtype))
        ids = self.item_id(items.clamp_min(0))
        return F.normalize(vectors + ids * use_id.unsqueeze(-1).to(vectors.dtype), dim=-1)

    def _content_layer(self, content: torch.Tensor) -> torch.Tensor:
        """The content MLP's first layer: the same linear map over the whole row, with the media
        columns multiplied only for the rows that have media (elsewhere they are zeros)."""
        cfg, layer = self.cfg, self.content_mlp[0]
        if not cfg.media_width:
            return layer(content)
        media = slice(cfg.media_offset, cfg.media_offset + cfg.media_width)
        text_and_flags = torch.cat([content[:, :media.start], content[:, media.stop:]], dim=1)
        weight = torch.cat([layer.weight[:, :media.start], layer.weight[:, media.stop:]], dim=1)
        hidden = F.linear(text_and_flags, weight, layer.bias)
        rows = _rows_with(content, cfg.media_flag_offset, cfg.media_flag_count)
        return hidden.index_add(0, rows, F.linear(content[rows, media], layer.weight[:, media]).to(hidden.dtype))

    def user_vectors(self, users: torch.Tensor, history_vectors: torch.Tensor,
                     history_weights: torch.Tensor) -> torch.Tensor:
        """Unit user vectors from (B, L, dim) history item vectors and (B, L) weights (0 = padding).

        A user index of -1 (a user the model was not trained on) gets no user embedding.
        """
        total = history_weights.sum(dim=1, keepdim=True).clamp_min(1e-6)
        pooled = (history_vectors * history_weights.unsqueeze(-1)).sum(dim=1) / total
        if self.sequence is not None:
            pooled = pooled + self._sequence_summary(history_vectors, history_weights)
        user_emb = self.user_id(users.clamp_min(0)) * (users >= 0).unsqueeze(-1).to(pooled.dtype)
        mixed = self.user_mlp(torch.cat([pooled, user_emb], dim=-1))
        return F.normalize(pooled + mixed, dim=-1)

    def _sequence_summary(self, history_vectors: torch.Tensor, history_weights: torch.Tensor) -> torch.Tensor:
        """The attention encoder's output at the newest video (histories are newest first); zeros
        for a user without history."""
        length = self.cfg.sequence_len
        vectors, present = history_vectors[:, :length], history_weights[:, :length] > 0
        # The newest slot always attends, so a user without history gets no all-masked (NaN) row.
        padding = torch.cat([torch.zeros_like(present[:, :1]), ~present[:, 1:]], dim=1)
        encoded = self.sequence(vectors + self.position.weight[: vectors.shape[1]], src_key_padding_mask=padding)
        return encoded[:, 0] * present[:, :1].to(encoded.dtype)

    def encode_users(self, users: torch.Tensor, history_items: torch.Tensor, history_weights: torch.Tensor,
                     item_vectors: torch.Tensor, block_size: int = 4096) -> torch.Tensor:
        """User vectors for scoring, in blocks, from precomputed item vectors (no ID dropout)."""
        return torch.cat([
            self.user_vectors(users[b:b + block_size], item_vectors[history_items[b:b + block_size]],
                              history_weights[b:b + block_size])
            for b in range(0, len(users), block_size)])
