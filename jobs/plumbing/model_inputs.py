"""Reading the tables the model needs into the arrays it trains and scores on.

Times reach pandas and numpy only as float seconds since the epoch, computed in Arrow from the
stored integer count (`epoch_seconds`): never as datetime64[ns], which holds only the years 1677 to
2262, while the tables hold any time from 0001 to 9999 (a catalog's 9999-12-31 "never", an
interaction in year 0001). Float seconds are exact to the microsecond from the year 1685 to 2255,
and to some 30 microseconds at the ends of the range.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from jobs.plumbing import config
from jobs.plumbing.tables import read_table
from models.training import IndexedInteractions

FEATURE_COLUMNS = ["video_id", "has_text", "has_video", "has_audio", "text_embedding", "visual", "thumbnail",
                   "audio"]
# The items' publication time, seconds since the epoch (NaN when unknown).
PUBLISHED_AT_S = "published_at_s"
_PER_SECOND = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}


def epoch_seconds(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Float seconds since the epoch of a timestamp column of any unit and zone; NaN for nulls
    (and for a column of no type at all, which Parquet gives a column without values)."""
    import pyarrow.compute as pc

    if pa.types.is_null(column.type):
        return np.full(len(column), np.nan)
    if not pa.types.is_timestamp(column.type):
        raise TypeError(f"expected a timestamp column, got {column.type}")
    counts = pc.cast(column, pa.int64())
    per_second = _PER_SECOND[column.type.unit]
    # Whole seconds and the fraction apart: year 0001 in microseconds is past float64's exact integers.
    whole, fraction = np.divmod(pc.fill_null(counts, 0).to_numpy(zero_copy_only=False), per_second)
    result = whole.astype(np.float64) + fraction / per_second
    result[~pc.is_valid(counts).to_numpy(zero_copy_only=False)] = np.nan
    return result


def load_items(wh: config.Warehouse) -> pd.DataFrame:
    """Every catalog video in video_id order, with its content features (absent ones as nulls) and
    its publication time in seconds (`published_at_s`)."""
    table = read_table(wh.catalog, [config.VIDEO_ID, config.TITLE, config.PUBLISHED_AT])
    catalog = table.drop_columns([config.PUBLISHED_AT]).to_pandas()
    catalog[PUBLISHED_AT_S] = epoch_seconds(table[config.PUBLISHED_AT])
    features = read_table(wh.video_features, FEATURE_COLUMNS).to_pandas() if wh.video_features.exists() \
        else pd.DataFrame(columns=FEATURE_COLUMNS)
    items = catalog.merge(features, on=config.VIDEO_ID, how="left")
    for flag in ("has_text", "has_video", "has_audio"):
        items[flag] = items[flag].astype("boolean").fillna(False).astype(bool)
    return items.sort_values(config.VIDEO_ID, kind="stable").reset_index(drop=True)


def load_interactions(wh: config.Warehouse) -> pd.DataFrame:
    """The valid interactions, `ts` in seconds since the epoch, each user's in time order."""
    table = read_table(wh.interactions, [config.USER_ID, config.VIDEO_ID, config.TS, config.EVENT])
    frame = table.drop_columns([config.TS]).to_pandas()
    frame[config.TS] = epoch_seconds(table[config.TS])
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
    # Seconds already (load_interactions), or datetimes of any unit from another caller.
    ts = interactions[config.TS]
    ts = ts.to_numpy(np.float64) if pd.api.types.is_numeric_dtype(ts) else epoch_seconds(pa.array(ts))
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
