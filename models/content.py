"""The item content matrix: text, visual and audio features of every catalog video as one array.

Each block is standardised with statistics fitted at training time and kept in the model artifact,
so scoring builds exactly the matrix the model was trained on. A video without a block (no media,
no audio stream, no text) gets zeros there plus a 0 in that block's presence flag: the model can
tell "absent" from "average".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.audio import AUDIO_DIM, MFCC_SEQUENCE_SLICE, MFCC_STEPS, N_MFCC

# (feature-table column, presence-flag column) for each content block, in matrix order.
CONTENT_BLOCKS = (("text_embedding", "has_text"), ("visual", "has_video"), ("thumbnail", "has_video"),
                  ("audio", "has_audio"))
# The blocks only a video with a readable media file has: consecutive in a row, after the text.
MEDIA_BLOCKS = ("visual", "thumbnail", "audio")
# The content modalities and their blocks; what an ablation removes together (block and flag).
MODALITY_BLOCKS = {"text": ("text_embedding",), "visual": ("visual", "thumbnail"), "audio": ("audio",)}


@dataclass
class ContentStats:
    """Per-block dimensions and standardisation fitted on the training catalog."""

    dims: dict[str, int]
    mean: dict[str, np.ndarray]
    std: dict[str, np.ndarray]

    def to_dict(self) -> dict:
        return {"dims": self.dims, "mean": {k: v.tolist() for k, v in self.mean.items()},
                "std": {k: v.tolist() for k, v in self.std.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> "ContentStats":
        return cls(dims={k: int(v) for k, v in data["dims"].items()},
                   mean={k: np.asarray(v, np.float32) for k, v in data["mean"].items()},
                   std={k: np.asarray(v, np.float32) for k, v in data["std"].items()})

    @property
    def width(self) -> int:
        return sum(self.dims.values()) + len(self.dims)

    def offset(self, block: str) -> int:
        """Where `block` starts in a content-matrix row."""
        names = [column for column, _ in CONTENT_BLOCKS]
        return sum(self.dims[name] for name in names[:names.index(block)])

    def flag_column(self, block: str) -> int:
        """Where `block`'s presence flag sits in a content-matrix row."""
        names = [column for column, _ in CONTENT_BLOCKS]
        return sum(self.dims.values()) + names.index(block)

    def modality_columns(self) -> dict[str, np.ndarray]:
        """Modality -> the columns of a content-matrix row that carry it: its blocks and their
        presence flags. Zeroing them makes a video look as if it had no such input."""
        columns = {}
        for modality, blocks in MODALITY_BLOCKS.items():
            parts = [np.arange(self.offset(b), self.offset(b) + self.dims[b]) for b in blocks]
            parts.append(np.array([self.flag_column(b) for b in blocks]))
            columns[modality] = np.concatenate(parts).astype(np.int64)
        return columns

    def modality_present(self, content: np.ndarray) -> dict[str, np.ndarray]:
        """Modality -> which rows of a content matrix have it (any of its blocks' flags set)."""
        return {modality: (content[:, [self.flag_column(b) for b in blocks]] > 0.5).any(axis=1)
                for modality, blocks in MODALITY_BLOCKS.items()}

    def branch_layout(self) -> dict[str, int]:
        """Where the model finds the parts of a row that only videos with media have: the media
        blocks (visual, thumbnail, audio) and their presence flags, the thumbnail as an RGB image
        and the MFCC sequence as a (steps, coefficients) grid (absent blocks: no branch)."""
        media_width = sum(self.dims[name] for name in MEDIA_BLOCKS)
        layout = {}
        if media_width:
            layout.update(media_offset=self.offset(MEDIA_BLOCKS[0]), media_width=media_width,
                          media_flag_offset=self.flag_column(MEDIA_BLOCKS[0]), media_flag_count=len(MEDIA_BLOCKS))
        side = int(round((self.dims.get("thumbnail", 0) / 3) ** 0.5))
        if side and 3 * side * side == self.dims["thumbnail"]:
            layout.update(thumbnail_offset=self.offset("thumbnail"), thumbnail_side=side,
                          thumbnail_flag=self.flag_column("thumbnail"))
        if self.dims.get("audio") == AUDIO_DIM:
            layout.update(mfcc_offset=self.offset("audio") + MFCC_SEQUENCE_SLICE.start,
                          mfcc_steps=MFCC_STEPS, n_mfcc=N_MFCC, mfcc_flag=self.flag_column("audio"))
        return layout


def _stack(values: pd.Series, present: np.ndarray, dim: int) -> np.ndarray:
    out = np.zeros((len(values), dim), np.float32)
    for row, vector in enumerate(values):
        if present[row] and vector is not None and len(vector) == dim:
            out[row] = np.asarray(vector, np.float32)
    return out


def _present(features: pd.DataFrame, column: str, flag: str) -> np.ndarray:
    has = features[flag].fillna(False).astype(bool).to_numpy()
    # A video absent from the feature table has NaN here, not a vector.
    return has & features[column].map(lambda v: isinstance(v, (list, tuple, np.ndarray)) and len(v) > 0).to_numpy()


def fit_content_stats(features: pd.DataFrame) -> ContentStats:
    dims, mean, std = {}, {}, {}
    for column, flag in CONTENT_BLOCKS:
        present = _present(features, column, flag)
        lengths = features.loc[present, column].map(len)
        dim = int(lengths.mode().iloc[0]) if len(lengths) else 0
        block = _stack(features[column], present, dim)[present]
        dims[column] = dim
        mean[column] = block.mean(axis=0) if len(block) else np.zeros(dim, np.float32)
        # Text embeddings are already unit vectors on a shared scale: centre them, don't stretch them.
        scale = block.std(axis=0) if len(block) > 1 and column != "text_embedding" else np.ones(dim, np.float32)
        std[column] = np.where(scale > 1e-6, scale, 1.0).astype(np.float32)
    return ContentStats(dims, mean, std)


def content_matrix(features: pd.DataFrame, stats: ContentStats) -> np.ndarray:
    """Rows in `features` order: standardised blocks, then one presence flag per block."""
    blocks, flags = [], []
    for column, flag in CONTENT_BLOCKS:
        dim = stats.dims[column]
        present = _present(features, column, flag)
        block = (_stack(features[column], present, dim) - stats.mean[column]) / stats.std[column]
        block[~present] = 0.0
        blocks.append(np.clip(block, -8.0, 8.0))
        flags.append(present.astype(np.float32)[:, None])
    matrix = np.concatenate(blocks + flags, axis=1).astype(np.float32)
    return np.nan_to_num(matrix, nan=0.0, posinf=0.0, neginf=0.0)
