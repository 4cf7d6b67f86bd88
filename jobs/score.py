"""Score: top-N videos per user from the trained model, seen videos excluded.

    python -m jobs.score --warehouse DIR --run-date YYYY-MM-DD [--top-n 20] [--model-version V] \
        [--engine local|spark] [--master URL]
    spark-submit [--master URL] jobs/score.py --warehouse DIR --run-date YYYY-MM-DD --engine spark ...

Every catalog video is a candidate, including videos published since training or with no
interactions yet: their vectors come from content alone. Writes `tables/candidate_lists/<run_date>/`,
which the publish stage validates and commits to the serving table, and beside it
`tables/candidate_explanations/<run_date>/`: one explanation per listed (user, video)
(`models.explanations`), which publish commits to the explanations table.

Two engines give the same lists (`models.candidate_lists` computes every block of users for both):
`local` (the default, or `VREC_SCORING_ENGINE`) scores all users in this process; `spark` makes
users Spark partitions and broadcasts the item vectors, the re-ranker and its per-video features
(`jobs.plumbing.spark_scoring`). Both encode the user and item vectors here, in the driver. The
explanations are computed here too, from the lists as written, so both engines give the same ones.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from jobs.plumbing import config
from jobs.plumbing.model_inputs import load_model_inputs
from jobs.plumbing.serving import production_model
from jobs.plumbing.stage import StageError, add_shared_arguments, base_parser, read_counters, run_stage, write_counters
from jobs.plumbing.tables import read_table, write_arrow_table, write_spark_table

STAGE = "score"


def resolve_model_version(wh: config.Warehouse, run_date: str, pinned: str | None) -> str:
    """A pinned version; `production` for the model serving now; else the one trained tonight."""
    if pinned == config.PRODUCTION_MODEL:
        current = production_model(wh)
        if current is None:
            raise StageError(STAGE, f"no production model: nothing is published at {wh.recommendations} yet")
        return current
    if pinned:
        return pinned
    trained = read_counters(wh, run_date).get("train", {}).get("model_version")
    if not trained:
        raise StageError(STAGE, f"no model trained for {run_date}; run train first or pass --model-version")
    return trained


def score(wh: config.Warehouse, run_date: str, *, top_n: int = config.DEFAULT_TOP_N,
          model_version: str | None = None, engine: str = config.DEFAULT_SCORING_ENGINE,
          master: str | None = None) -> dict:
    from models.artifact import SchemaMismatch, load_artifact
    from models.candidate_lists import ScoringModel, Users
    from models.content import content_matrix, fit_content_stats
    from models.evaluation import seen_csr
    from models.explanations import MIN_SUPPORT_WEIGHT, Explainer, ablated_item_vectors, popular_recently
    from models.fit import catalog_features
    from models.scoring import ItemVectors, Lineage, saved_model_vectors

    if top_n < 1:
        raise StageError(STAGE, f"top_n must be at least 1, got {top_n}")
    if engine not in config.SCORING_ENGINES:
        raise StageError(STAGE, f"unknown scoring engine {engine!r} (VREC_SCORING_ENGINE or --engine): "
                                f"use one of {', '.join(config.SCORING_ENGINES)}")
    version = resolve_model_version(wh, run_date, model_version)
    try:
        artifact = load_artifact(wh.models, version)
        inputs = load_model_inputs(wh)
        artifact.check_schema(fit_content_stats(inputs.items))
    except (FileNotFoundError, SchemaMismatch) as err:
        raise StageError(STAGE, str(err)) from err

    items, video_ids, user_ids, data = inputs.items, inputs.video_ids, inputs.user_ids, inputs.data
    content = content_matrix(items, artifact.stats)

    # Items and users the model was trained on use their ID embeddings; new ones stand on content.
    lineage = Lineage.of(artifact, video_ids, user_ids)
    use_id = lineage.use_id(artifact)
    vectors = saved_model_vectors(artifact, content, lineage, data, len(user_ids))
    reranked = artifact.ranker is not None
    model = ScoringModel(ItemVectors(vectors.items), artifact.ranker,
                         catalog_features(data, content, len(user_ids)) if reranked else None,
                         candidates=max(artifact.metadata.get("candidates", 200), top_n))
    users = Users(vectors.users, *seen_csr(data, len(user_ids)))
    write_lists = _write_spark_lists if engine == "spark" else _write_local_lists
    rows, ranked_features = write_lists(model, users, user_ids, video_ids, version, top_n,
                                        wh.candidate_lists / run_date, run_date, master=master)

    started = time.perf_counter()
    explainer = Explainer(
        vectors.items,
        ablated_item_vectors(artifact.model, content, lineage.parent_item, use_id, artifact.stats.modality_columns(),
                             artifact.stats.modality_present(content)),
        use_id, popular_recently(data, len(video_ids)), model if reranked else None)
    supports = seen_csr(data.subset(data.weight >= MIN_SUPPORT_WEIGHT), len(user_ids))
    explained = write_explanations(explainer, users, supports, user_ids, video_ids, version, top_n,
                                   wh.candidate_lists / run_date, wh.candidate_explanations / run_date, run_date,
                                   ranked_features)
    counters = {"model_version": version, "users_scored": len(user_ids), "videos_scored": len(video_ids),
                "cold_videos": int((~use_id).sum()), "rows": rows, "top_n": top_n, "reranked": reranked,
                "engine": engine, "explanations": explained,
                "explain_seconds": round(time.perf_counter() - started, 2)}
    write_counters(wh, run_date, STAGE, counters)
    return counters


def _write_local_lists(model, users, user_ids: np.ndarray, video_ids: np.ndarray, version: str, top_n: int,
                       target: Path, run_date: str, master: str | None = None) -> tuple[int, np.ndarray | None]:
    """The local engine: every user in this process, one Parquet file. Returns the rows and, with
    a re-ranker, the features each listed video was ranked with (the explanations read them)."""
    from models.candidate_lists import candidate_lists

    lists = candidate_lists(model, users, top_n, keep_features=True)
    best, scores = lists.videos, lists.scores
    valid = best >= 0
    table = pa.table({
        config.USER_ID: pa.array(np.repeat(user_ids, valid.sum(axis=1)), pa.string()),
        config.RANK: pa.array(np.cumsum(valid, axis=1)[valid].astype(np.int32), pa.int32()),
        config.VIDEO_ID: pa.array(video_ids[best[valid]], pa.string()),
        config.SCORE: pa.array(scores[valid], pa.float64()),
        config.MODEL_VERSION: pa.array([version] * int(valid.sum()), pa.string()),
    })
    write_arrow_table(table, target, run_date)
    return table.num_rows, lists.features


def _write_spark_lists(model, users, user_ids: np.ndarray, video_ids: np.ndarray, version: str, top_n: int,
                       target: Path, run_date: str, master: str | None = None) -> tuple[int, None]:
    """The Spark engine: users as partitions, one Parquet file per partition, the same columns.
    The features stay on the executors: the explanations compute them again."""
    from pyspark.sql import functions as F

    from jobs.plumbing.spark import get_spark
    from jobs.plumbing.spark_scoring import spark_candidate_lists, user_partitions, users_frame

    spark = get_spark("vrec-score", master)
    frame = users_frame(spark, user_ids, users, user_partitions(spark, len(users)))
    lists = spark_candidate_lists(frame, model, video_ids, top_n)
    write_spark_table(lists.withColumn(config.MODEL_VERSION, F.lit(version)), target, run_date)
    return read_table(target, [config.USER_ID]).num_rows, None


def write_explanations(explainer, users, supports, user_ids: np.ndarray, video_ids: np.ndarray, version: str,
                       top_n: int, lists_dir: Path, target: Path, run_date: str,
                       ranked_features: np.ndarray | None = None) -> int:
    """Explain the lists in `lists_dir` (either engine's) and write them to `target`, one row per
    listed (user, video), in the explanations table's columns less run_date; returns the rows.
    `ranked_features`: the ranker's features of the lists as written (the local engine's), in
    user and rank order; None: computed again."""
    from models.explanations import explain_lists
    from models.scoring import index_of

    lists = read_table(lists_dir, [config.USER_ID, config.RANK, config.VIDEO_ID]).to_pandas()
    user = index_of(user_ids, lists[config.USER_ID].to_numpy(object))
    video = index_of(video_ids, lists[config.VIDEO_ID].to_numpy(object))
    width = max(top_n, int(lists[config.RANK].max()) if len(lists) else 0)
    best = np.full((len(user_ids), width), -1, np.int64)
    best[user, lists[config.RANK].to_numpy() - 1] = video
    explained = explain_lists(explainer, users, supports, best, features=ranked_features)
    valid = best >= 0
    table = explanation_rows(explained, np.repeat(user_ids, valid.sum(axis=1)),
                             np.cumsum(valid, axis=1)[valid], video_ids[best[valid]], video_ids, version)
    write_arrow_table(table, target, run_date)
    return table.num_rows


def explanation_rows(explained, user_ids: np.ndarray, ranks: np.ndarray, videos: np.ndarray,
                     video_ids: np.ndarray, version: str) -> pa.Table:
    """The explanations as Arrow columns (`jobs.plumbing.serving.EXPLANATIONS_SCHEMA` less run_date)."""
    from models.explanations import MODALITIES
    from models.ranker import FEATURES

    from jobs.plumbing.serving import RANKER_FEATURE_TYPE

    n = len(user_ids)
    because = explained.because
    columns = {
        config.USER_ID: pa.array(user_ids, pa.string()),
        config.RANK: pa.array(np.asarray(ranks, np.int32), pa.int32()),
        config.VIDEO_ID: pa.array(videos, pa.string()),
        config.MODEL_VERSION: pa.array([version] * n, pa.string()),
        config.BECAUSE_VIDEO_ID: pa.array(np.where(because >= 0, video_ids[np.maximum(because, 0)], None),
                                          pa.string()),
        config.BECAUSE_SIMILARITY: pa.array(explained.because_similarity, pa.float64(),
                                            mask=np.isnan(explained.because_similarity)),
        config.REASON: pa.array(explained.reason, pa.string()),
        **{config.SHARE_PREFIX + m: pa.array(explained.shares[:, i], pa.float64()) for i, m in enumerate(MODALITIES)},
    }
    if explained.top_features is None:
        columns[config.RANKER_TOP_FEATURES] = pa.nulls(n, RANKER_FEATURE_TYPE)
    else:
        k = explained.top_features.shape[1]
        names = np.asarray(FEATURES, object)[explained.top_features.reshape(-1)]
        values = pa.StructArray.from_arrays(
            [pa.array(names, pa.string()), pa.array(explained.top_contributions.reshape(-1), pa.float64())],
            fields=list(RANKER_FEATURE_TYPE.value_type))
        columns[config.RANKER_TOP_FEATURES] = pa.ListArray.from_arrays(
            pa.array(np.arange(0, n * k + 1, k, dtype=np.int32)), values, type=RANKER_FEATURE_TYPE)
    return pa.table(columns)


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    add_shared_arguments(parser, "--top-n")
    parser.add_argument("--model-version", default=None,
                        help=f"score with this model instead of tonight's "
                             f"({config.PRODUCTION_MODEL!r}: the one serving now)")
    parser.add_argument("--engine", choices=config.SCORING_ENGINES, default=config.DEFAULT_SCORING_ENGINE,
                        help="where the lists are computed, with the same result: 'local', this process, or "
                             "'spark', users as Spark partitions with the model broadcast (default: "
                             "$VREC_SCORING_ENGINE or local)")
    parser.add_argument("--master", default=None,
                        help="Spark master of the spark engine, e.g. spark://host:7077 (default: spark-submit's, "
                             "else $VREC_SPARK_MASTER or local[*])")
    args = parser.parse_args(argv)
    return run_stage(STAGE, args.warehouse, lambda wh: score(wh, args.run_date, top_n=args.top_n,
                                                             model_version=args.model_version,
                                                             engine=args.engine, master=args.master))


if __name__ == "__main__":
    sys.exit(main())
