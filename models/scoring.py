"""User and item vectors of a trained two-tower model, for evaluation, re-ranking and top-N.

Items the model was trained on with interactions use their ID embeddings; every other item (new
since training, or never interacted with) stands on its content alone. Users are encoded from
their most recent videos in `data`, so a model scores tonight's histories, not the ones it saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from models.training import IndexedInteractions, last_histories
from models.two_tower import TwoTower

if TYPE_CHECKING:   # models.artifact is only needed for the annotations here
    from models.artifact import ModelArtifact


class ItemVectors:
    """Every item's vector, ready to score any block of users against.

    Pickled (a Spark broadcast), it carries only the vectors: the transposed copy and the output
    buffer are rebuilt where it lands.
    """

    def __init__(self, items: np.ndarray):
        self.items = items   # (n_items, dim) unit vectors
        self._items_t: torch.Tensor | None = None
        self._out: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.items)

    def __getstate__(self) -> dict:
        return {"items": self.items}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["items"])

    def scores(self, user_vectors: np.ndarray) -> np.ndarray:
        """Cosine scores of each row of `user_vectors` against every item, (rows, n_items) float32.

        The result is a buffer reused by the next call (copy it to keep it): writing each block
        of scores into the same memory, in torch's thread pool like the top-k that follows, is
        about twice as fast as a fresh NumPy product per block.
        """
        if self._items_t is None:
            self._items_t = torch.from_numpy(np.ascontiguousarray(self.items.T))
        shape = (len(user_vectors), self._items_t.shape[1])
        if self._out is None or self._out.shape != shape:
            self._out = torch.empty(shape)
        torch.mm(torch.from_numpy(np.ascontiguousarray(user_vectors)), self._items_t, out=self._out)
        return self._out.numpy()


@dataclass
class TowerVectors:
    users: np.ndarray   # (n_users, dim) unit vectors
    items: np.ndarray   # (n_items, dim) unit vectors

    def __post_init__(self) -> None:
        self._catalog = ItemVectors(self.items)

    def __call__(self, users: np.ndarray) -> np.ndarray:
        """Cosine scores of `users` against every item (float32): the evaluation `Scorer` protocol.
        A reused buffer, as `ItemVectors.scores`."""
        return self._catalog.scores(self.users[users])


def encode(model: TwoTower, content: np.ndarray, data: IndexedInteractions, n_users: int, *,
           model_item: np.ndarray | None = None, model_user: np.ndarray | None = None,
           use_id: np.ndarray | None = None) -> TowerVectors:
    """Vectors for every item of `content` and every user index below `n_users`.

    `model_item`/`model_user` map tonight's indices to the model's (-1: unknown to the model);
    by default they are the same. `use_id` defaults to the items with interactions in `data`.
    """
    n_items = content.shape[0]
    model_item = np.arange(n_items) if model_item is None else model_item
    model_user = np.arange(n_users) if model_user is None else model_user
    if use_id is None:
        use_id = np.bincount(data.item, minlength=n_items) > 0
    use_id = use_id & (model_item >= 0)
    model.eval()
    # On the model's device: the validation during a training on a GPU encodes the model there.
    device = next(model.parameters()).device
    on = lambda array: torch.from_numpy(array).to(device)  # noqa: E731
    with torch.inference_mode():
        items = model.encode_items(on(content), on(model_item), on(use_id))
        hist_items, hist_weights = last_histories(data, n_users, model.cfg.history_len)
        users = model.encode_users(on(model_user), on(hist_items), on(hist_weights), items)
    return TowerVectors(users.cpu().numpy(), items.cpu().numpy())


def index_of(trained_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The model's index of each id (-1: unknown); erased users' entries (NULL) match nothing."""
    known = np.flatnonzero(pd.notna(trained_ids))
    found = pd.Index(trained_ids[known]).get_indexer(ids)
    return np.where(found >= 0, known[found], -1).astype(np.int64)


@dataclass(frozen=True)
class Lineage:
    """Tonight's videos and users against a saved model's rows (-1: unknown to it)."""

    parent_item: np.ndarray
    parent_user: np.ndarray

    @classmethod
    def of(cls, artifact: ModelArtifact, video_ids: np.ndarray, user_ids: np.ndarray) -> Lineage:
        return cls(index_of(artifact.video_ids, video_ids), index_of(artifact.user_ids, user_ids))

    def use_id(self, artifact: ModelArtifact) -> np.ndarray:
        """Tonight's videos that score with the model's ID rows: those it knew, and had
        interactions with when it was trained; every other one stands on its content."""
        return (self.parent_item >= 0) & artifact.warm[np.maximum(self.parent_item, 0)]


def saved_model_vectors(artifact: ModelArtifact, content: np.ndarray, lineage: Lineage, data: IndexedInteractions,
                        n_users: int) -> TowerVectors:
    """A saved model's tower as it scores tonight: users encoded from their histories in `data`."""
    return encode(artifact.model, content, data, n_users, model_item=lineage.parent_item,
                  model_user=lineage.parent_user, use_id=lineage.use_id(artifact))
