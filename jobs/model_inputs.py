"""Reading the tables the model needs into the arrays it trains and scores on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from jobs import config
from jobs.tables import read_table
from models.training import IndexedInteractions

FEATURE_COLUMNS = ["video_id", "has_text", "has_video", "has_audio", "text_embedding", "visual", "thumbnail",
                   "audio"]


def load_items(wh: config.Warehouse) -> pd.DataFrame:
    """Every catalog video in video_id order, with its content features (absent ones as nulls)."""
    catalog = read_table(wh.catalog, [config.VIDEO_ID, config.TITLE, config.PUBLISHED_AT]).to_pandas()
    features = read_table(wh.video_features, FEATURE_COLUMNS).to_pandas() if wh.video_features.exists() \
        else pd.DataFrame(columns=FEATURE_COLUMNS)
    items = catalog.merge(features, on=config.VIDEO_ID, how="left")
    for flag in ("has_text", "has_video", "has_audio"):
        items[flag] = items[flag].astype("boolean").fillna(False).astype(bool)
    return items.sort_values(config.VIDEO_ID, kind="stable").reset_index(drop=True)


def load_interactions(wh: config.Warehouse) -> pd.DataFrame:
    frame = read_table(wh.interactions, [config.USER_ID, config.VIDEO_ID, config.TS, config.EVENT]).to_pandas()
    frame["weight"] = frame[config.EVENT].map(config.EVENT_WEIGHTS).fillna(1.0).astype(np.float32)
    # Ties in time are broken by video_id so that the order, and with it training, is reproducible.
    return frame.sort_values([config.USER_ID, config.TS, config.VIDEO_ID], kind="stable").reset_index(drop=True)


def index_interactions(interactions: pd.DataFrame, video_ids: np.ndarray,
                       user_ids: np.ndarray) -> IndexedInteractions:
    """Interactions as index arrays; rows whose video or user is not in the index are dropped."""
    item = pd.Index(video_ids).get_indexer(interactions[config.VIDEO_ID])
    user = pd.Index(user_ids).get_indexer(interactions[config.USER_ID])
    keep = (item >= 0) & (user >= 0)
    order = np.lexsort((np.arange(keep.sum()), user[keep]))  # stable by user, keeps time order
    # Seconds since the epoch whatever unit the column was stored in (Spark writes microseconds).
    ts = (pd.to_datetime(interactions[config.TS], utc=True) - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    ts = ts.to_numpy(np.float64)
    return IndexedInteractions(user=user[keep][order].astype(np.int64), item=item[keep][order].astype(np.int64),
                               weight=interactions["weight"].to_numpy(np.float32)[keep][order],
                               ts=ts[keep][order])


@dataclass
class ModelInputs:
    """Every catalog video with its features, every user with a valid interaction, and the
    interactions as index arrays over both (videos in video_id order, users sorted)."""

    items: pd.DataFrame
    video_ids: np.ndarray
    user_ids: np.ndarray
    data: IndexedInteractions


def load_model_inputs(wh: config.Warehouse) -> ModelInputs:
    items = load_items(wh)
    interactions = load_interactions(wh)
    video_ids = items[config.VIDEO_ID].to_numpy(object)
    user_ids = np.sort(interactions[config.USER_ID].unique()).astype(object)
    return ModelInputs(items, video_ids, user_ids, index_interactions(interactions, video_ids, user_ids))
