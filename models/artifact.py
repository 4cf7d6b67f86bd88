"""Versioned model artifacts: weights, configuration, training metrics and the feature schema.

    <warehouse>/tables/models/<model_version>/
        model.pt        the two-tower weights (state_dict)
        model.json      tower config, content statistics, feature schema, training and evaluation metrics
        ranker.txt      the LightGBM re-ranker, when it improved on the tower alone
        items.parquet   video_id per item index, and whether the item had interactions (warm)
        users.parquet   user_id per user index

The version is derived from the run date and a hash of the weights, so the same data, code and
seed give the same version.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from models.content import ContentStats
from models.ranker import FEATURES as RANKER_FEATURES
from models.two_tower import TowerConfig, TwoTower


class SchemaMismatch(ValueError):
    """The feature table no longer has the shape the model was trained on."""


@dataclass
class ModelArtifact:
    version: str
    model: TwoTower
    stats: ContentStats
    video_ids: np.ndarray
    warm: np.ndarray
    user_ids: np.ndarray
    metadata: dict
    ranker: object | None = None   # a lightgbm.Booster

    def check_schema(self, current: ContentStats) -> None:
        expected, found = self.stats.dims, current.dims
        for block, dim in expected.items():
            if found.get(block) not in (dim, 0):
                raise SchemaMismatch(f"model {self.version} expects {block} of {dim} values, "
                                     f"the feature table has {found.get(block)}; retrain the model")
        if self.ranker is not None and list(self.ranker.feature_name()) != list(RANKER_FEATURES):
            raise SchemaMismatch(f"model {self.version}'s re-ranker reads {self.ranker.feature_name()}, this "
                                 f"code computes {list(RANKER_FEATURES)}; retrain the model")


def save_artifact(models_dir: Path, run_date: str, model: TwoTower, stats: ContentStats, video_ids: np.ndarray,
                  warm: np.ndarray, user_ids: np.ndarray, metadata: dict, ranker=None) -> str:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    weights = buffer.getvalue()
    version = f"two-tower-{run_date}-{hashlib.sha256(weights).hexdigest()[:10]}"
    target = models_dir / version
    target.mkdir(parents=True, exist_ok=True)
    (target / "model.pt").write_bytes(weights)
    pq.write_table(pa.table({"video_id": pa.array(video_ids, pa.string()), "warm": pa.array(warm)}),
                   target / "items.parquet")
    pq.write_table(pa.table({"user_id": pa.array(user_ids, pa.string())}), target / "users.parquet")
    if ranker is not None:
        # A fitted LGBMRanker, or a Booster carried over from the parent model (models.incremental).
        (target / "ranker.txt").write_text(getattr(ranker, "booster_", ranker).model_to_string())
    document = {"model_version": version, "run_date": run_date, "tower": model.cfg.to_dict(),
                "content_stats": stats.to_dict(), "feature_schema": stats.dims, **metadata}
    # model.json is written last: a directory without it is an unfinished save and is never loaded.
    (target / "model.json").write_text(json.dumps(document, indent=1))
    return version


def load_artifact(models_dir: Path, version: str) -> ModelArtifact:
    source = models_dir / version
    if not (source / "model.json").exists():
        raise FileNotFoundError(f"no model {version!r} in {models_dir}")
    document = json.loads((source / "model.json").read_text())
    stats = ContentStats.from_dict(document["content_stats"])
    # Artifacts from before the sequential user encoder pool their histories only.
    cfg = TowerConfig(**{"sequence_layers": 0, **document["tower"]})
    model = TwoTower(cfg, torch.zeros(cfg.n_items, cfg.content_dim))
    model.load_state_dict(torch.load(source / "model.pt", map_location="cpu", weights_only=True))
    model.eval()
    items = pq.read_table(source / "items.parquet")
    users = pq.read_table(source / "users.parquet")
    ranker = None
    if (source / "ranker.txt").exists():
        import lightgbm as lgb
        ranker = lgb.Booster(model_str=(source / "ranker.txt").read_text())
    return ModelArtifact(version, model, stats, np.asarray(items["video_id"].to_pylist(), object),
                         np.asarray(items["warm"].to_pylist(), bool),
                         np.asarray(users["user_id"].to_pylist(), object), document, ranker)


def erase_users(source: Path, user_ids: set[str]) -> int:
    """Remove users from a saved model: their ids in `users.parquet` become NULL and their rows of
    the user embedding are zeroed, so nothing in the artifact is theirs any more (scoring treats
    them as users the model has never seen). The version name is kept. Returns how many users."""
    users = pq.read_table(source / "users.parquet")
    ids = users["user_id"].to_pylist()
    rows = [i for i, user_id in enumerate(ids) if user_id is not None and user_id in user_ids]
    if not rows:
        return 0
    state = torch.load(source / "model.pt", map_location="cpu", weights_only=True)
    state["user_id.weight"][rows] = 0.0
    buffer = io.BytesIO()
    torch.save(state, buffer)
    (source / "model.pt.erasing").write_bytes(buffer.getvalue())
    (source / "model.pt.erasing").replace(source / "model.pt")
    kept = [None if i in set(rows) else user_id for i, user_id in enumerate(ids)]
    pq.write_table(pa.table({"user_id": pa.array(kept, pa.string())}), source / "users.parquet.erasing")
    (source / "users.parquet.erasing").replace(source / "users.parquet")
    return len(rows)
