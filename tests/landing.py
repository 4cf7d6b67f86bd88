"""Generated text-only landing zones: the demo generator's catalog and simulated users without
rendering clips, for tests about the model, the serving table and Airflow rather than media."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path

import numpy as np

from jobs.plumbing import config
from jobs.datasets.make_demo_data import catalog_jsonl, interactions_csv, plan_catalog, simulate_users

RUN_DAY = date(2026, 11, 20)


def text_only_catalog(seed: int, n_videos: int, n_users: int):
    """(videos without media, users with their genre tastes, interaction rows), deterministic."""
    catalog_rng, users_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    videos = [dataclasses.replace(v, has_media=False) for v in plan_catalog(catalog_rng, n_videos, RUN_DAY)]
    users, rows = simulate_users(users_rng, videos, n_users, RUN_DAY, clip_seconds=3.0)
    return videos, users, rows


def write_landing(wh: config.Warehouse, videos, rows: list[dict]) -> None:
    """Write the catalog and interactions as landing files (replacing earlier ones)."""
    wh.landing_catalog.mkdir(parents=True, exist_ok=True)
    wh.landing_interactions.mkdir(parents=True, exist_ok=True)
    (wh.landing_catalog / "catalog.jsonl").write_text(catalog_jsonl(videos))
    (wh.landing_interactions / "interactions.csv").write_text(interactions_csv(rows))


def publish_first_night(spark, wh: config.Warehouse, run_date: str, *, top_n: int, epochs: int) -> str:
    """ingest, extract, train, score and publish in this process; returns the model version."""
    from jobs.extract_features import extract
    from jobs.ingest import ingest
    from jobs.publish import publish
    from jobs.score import score
    from jobs.train import train

    ingest(spark, wh, run_date)
    extract(spark, wh, run_date)
    model_version = train(wh, run_date, epochs=epochs)["model_version"]
    score(wh, run_date, top_n=top_n)
    publish(wh, run_date, top_n=top_n)
    return model_version


def publish_night(wh: config.Warehouse, run_date: str, *, top_n: int, model_version: str) -> None:
    """A night that trains nothing: score with `model_version` and publish, in this process."""
    from jobs.publish import publish
    from jobs.score import score

    score(wh, run_date, top_n=top_n, model_version=model_version)
    publish(wh, run_date, top_n=top_n)


def warehouse_after_first_night(spark, root: Path, run_date: str,
                                serving_table: str | None = None) -> tuple[config.Warehouse, str]:
    """A warehouse at `root` after one full night (lists of 5) of a generated catalog of 120 videos
    watched by 50 users, its serving table at `serving_table` (a directory or s3://bucket/prefix;
    default: in the warehouse); and the model that night trained."""
    wh = config.Warehouse.at(root, serving_table)
    videos, _, rows = text_only_catalog(seed=3, n_videos=120, n_users=50)
    write_landing(wh, videos, rows)
    return wh, publish_first_night(spark, wh, run_date, top_n=5, epochs=3)
