"""Score: top-N videos per user from the trained model, seen videos excluded.

    python -m jobs.score --warehouse DIR --run-date YYYY-MM-DD [--top-n 20] [--model-version V]

Every catalog video is a candidate, including videos published since training or with no
interactions yet: their vectors come from content alone. Writes `tables/candidate_lists/<run_date>/`,
which the publish stage validates and commits to the serving table.
"""

from __future__ import annotations

import sys

import numpy as np
import pyarrow as pa

from jobs.plumbing import config
from jobs.plumbing.model_inputs import load_model_inputs
from jobs.plumbing.serving import production_model
from jobs.plumbing.stage import StageError, base_parser, read_counters, run_stage, write_counters
from jobs.plumbing.tables import write_arrow_table

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
          model_version: str | None = None) -> dict:
    from models.artifact import SchemaMismatch, load_artifact
    from models.content import content_matrix, fit_content_stats
    from models.evaluation import seen_csr
    from models.fit import ranker_context
    from models.ranker import CANDIDATE_OFFSET, Reranked
    from models.scoring import encode
    from models.topn import top_n as blocked_top_n

    if top_n < 1:
        raise StageError(STAGE, f"top_n must be at least 1, got {top_n}")
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
    model_item = _lookup(artifact.video_ids, video_ids)
    use_id = (model_item >= 0) & artifact.warm[np.maximum(model_item, 0)]
    vectors = encode(artifact.model, content, data, len(user_ids), model_item=model_item,
                     model_user=_lookup(artifact.user_ids, user_ids), use_id=use_id)
    scorer = vectors
    if artifact.ranker is not None:
        # Every published row comes from the re-ranked candidates, so scores fall with rank.
        scorer = Reranked(vectors, artifact.ranker, ranker_context(data, content, len(user_ids)),
                          candidates=max(artifact.metadata.get("candidates", 200), top_n))
    indptr, seen = seen_csr(data, len(user_ids))
    best_items, best_scores = blocked_top_n(scorer, len(user_ids), indptr, seen, top_n)
    if artifact.ranker is not None:
        best_scores = np.where(best_scores >= CANDIDATE_OFFSET / 2, best_scores - CANDIDATE_OFFSET, best_scores)

    valid = best_items >= 0
    users_col = np.repeat(user_ids, valid.sum(axis=1))
    ranks = (np.cumsum(valid, axis=1))[valid].astype(np.int32)
    table = pa.table({
        config.USER_ID: pa.array(users_col, pa.string()),
        config.RANK: pa.array(ranks, pa.int32()),
        config.VIDEO_ID: pa.array(video_ids[best_items[valid]], pa.string()),
        config.SCORE: pa.array(best_scores[valid].astype(np.float64), pa.float64()),
        config.MODEL_VERSION: pa.array([version] * int(valid.sum()), pa.string()),
    })
    write_arrow_table(table, wh.candidate_lists / run_date, run_date)
    counters = {"model_version": version, "users_scored": len(user_ids), "videos_scored": len(video_ids),
                "cold_videos": int((~use_id).sum()), "rows": table.num_rows, "top_n": top_n,
                "reranked": artifact.ranker is not None}
    write_counters(wh, run_date, STAGE, counters)
    return counters


def _lookup(trained_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    import pandas as pd
    return pd.Index(trained_ids).get_indexer(ids).astype(np.int64)


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--top-n", type=int, default=config.DEFAULT_TOP_N)
    parser.add_argument("--model-version", default=None,
                        help=f"score with this model instead of tonight's "
                             f"({config.PRODUCTION_MODEL!r}: the one serving now)")
    args = parser.parse_args(argv)
    return run_stage(STAGE, args.warehouse, lambda wh: score(wh, args.run_date,
                                                             top_n=args.top_n, model_version=args.model_version))


if __name__ == "__main__":
    sys.exit(main())
