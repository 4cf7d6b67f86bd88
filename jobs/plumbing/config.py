"""One place for the pipeline's configuration: warehouse layout, column names and defaults.

Every value here can be overridden by an environment variable (``VREC_<NAME>``) and most by a
CLI flag of the job that uses it. The jobs read names from here instead of repeating string
literals, so the contracts in DESIGN.md live in exactly one module (features/ and models/ take
what they need as arguments and never import it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.plumbing.table_location import TableLocation

if TYPE_CHECKING:
    from features.decode import DecodeLimits

# ---- column names (DESIGN.md contracts) -------------------------------------------------------
VIDEO_ID = "video_id"
USER_ID = "user_id"
URI = "uri"
TITLE = "title"
DESCRIPTION = "description"
TAGS = "tags"
PUBLISHED_AT = "published_at"
UPDATED_AT = "updated_at"
TS = "ts"
EVENT = "event"
WATCH_SECONDS = "watch_seconds"
REASON = "reason"
DETAIL = "detail"
RUN_DATE = "run_date"

RANK = "rank"
SCORE = "score"
MODEL_VERSION = "model_version"
GENERATED_AT = "generated_at"
RECOMMENDATION_COLUMNS = (USER_ID, RANK, VIDEO_ID, SCORE, MODEL_VERSION, RUN_DATE, GENERATED_AT)
# The explanations side table (DESIGN.md): keyed like the serving table, one row per listed video.
BECAUSE_VIDEO_ID = "because_video_id"
BECAUSE_SIMILARITY = "because_similarity"
SHARE_PREFIX = "share_"
SHARE_COLUMNS = tuple(SHARE_PREFIX + m for m in ("text", "visual", "audio", "collaborative"))
RANKER_TOP_FEATURES = "ranker_top_features"
EXPLANATION_COLUMNS = (USER_ID, RANK, VIDEO_ID, RUN_DATE, MODEL_VERSION, BECAUSE_VIDEO_ID, BECAUSE_SIMILARITY,
                       REASON, *SHARE_COLUMNS, RANKER_TOP_FEATURES)
# The explanations table sits beside the serving table, in the same storage, under this name.
EXPLANATIONS_TABLE_NAME = "recommendation_explanations"

DEFAULT_EVENT = "view"
# A model version that means "the model whose lists are being served now".
PRODUCTION_MODEL = "production"
# How strongly each event says "this user wants this kind of video"; unknown events count as a view.
EVENT_WEIGHTS = {"view": 1.0, "complete": 1.5, "like": 2.0, "share": 2.0, "skip": 0.25}


def _env(name: str, default: str) -> str:
    return os.environ.get(f"VREC_{name}", default)


DEFAULT_WAREHOUSE = _env("WAREHOUSE", "./warehouse")
# The serving table may live apart from the warehouse, on an S3-compatible object store
# (s3://bucket/prefix); empty: <warehouse>/tables/recommendations. Its endpoint, region and
# credentials come from the environment (AWS_*), or from this Airflow connection when one is named.
DEFAULT_SERVING_TABLE = _env("SERVING_TABLE", "")
SERVING_TABLE_CONN_ID = _env("SERVING_TABLE_CONN_ID", "")
DEFAULT_TOP_N = int(_env("TOP_N", "20"))
# Past this share of bad interaction (or catalog) rows, ingest fails before anything is published.
DEFAULT_MAX_BAD_ROW_SHARE = float(_env("MAX_BAD_ROW_SHARE", "0.2"))
# The feature suite fails the run when fewer videos than this share have usable features.
DEFAULT_MIN_FEATURE_COVERAGE = float(_env("MIN_FEATURE_COVERAGE", "0.5"))
# The gate: tonight's model is not published when its held-out NDCG@10 falls more than this share
# below the production model's (measured on its own night). Night-to-night noise on a small
# evaluation slice is a few percent; a broken model loses most of it.
DEFAULT_GATE_TOLERANCE = float(_env("GATE_TOLERANCE", "0.25"))
# Most epochs of the first training; early stopping on a validation slice usually ends it sooner.
DEFAULT_EPOCHS = int(_env("EPOCHS", "24"))
# Training modes (jobs.train): "full" retrains from scratch on the whole history; "incremental"
# updates the production model with the interactions since its window (models.incremental); "auto"
# is incremental except every VREC_FULL_RETRAIN_DAYS days and when incremental cannot apply.
TRAINING_MODES = ("auto", "full", "incremental")
DEFAULT_TRAINING_MODE = _env("TRAINING_MODE", "auto") or "auto"
DEFAULT_FULL_RETRAIN_DAYS = float(_env("FULL_RETRAIN_DAYS", "7"))
# An incremental night's exam: the interactions of the newest VREC_EVAL_DAYS days (earlier when
# fewer than VREC_EVAL_MIN_USERS users have one), which the model of the night does not train on.
# The model published is the model examined, so it is as stale as its exam is long: with a day's
# exam and nights a day apart it never learnt the newest day. On the generated platform's daily
# replay it averaged 0.2568 next-period NDCG@10 against the full retrains' 0.2602
# (docs/benchmarks.md, "Simulated nights"). 72 minutes (in practice the newest slice holding
# VREC_EVAL_MIN_USERS users) keeps it fresh: 0.2621 against 0.2600.
DEFAULT_EVAL_DAYS = float(_env("EVAL_DAYS", "0.05"))
DEFAULT_EVAL_MIN_USERS = int(_env("EVAL_MIN_USERS", "100"))
# Earlier nights of the serving table stay readable (and can be rolled back to) this long; older
# files are vacuumed after each publish and rollback.
DEFAULT_RETENTION_DAYS = float(_env("RETENTION_DAYS", "30"))
# run_nightly refuses to start with less free space than this in the warehouse's file system.
DEFAULT_MIN_FREE_MIB = int(_env("MIN_FREE_MIB", "100"))
# Held-out evaluation (and early stopping) measures at most this many users, a seeded sample.
DEFAULT_MAX_EVAL_USERS = int(_env("MAX_EVAL_USERS", "20000"))
# Evaluate tunes item-kNN, ALS and BPR on a validation slice (VREC_TUNE_BASELINES=0: usual settings),
# measured on at most this many users (a seeded sample): enough to rank a small grid, and at 200,000
# users the grid's evaluations stay a small part of the stage.
DEFAULT_TUNE_BASELINES = _env("TUNE_BASELINES", "1") != "0"
DEFAULT_TUNING_EVAL_USERS = int(_env("TUNING_EVAL_USERS", "5000"))
# The sequential baseline (SASRec) trains in the nightly evaluation when the log has at most this
# many interactions (MovieLens-100k has 100,000), or always with VREC_EVAL_SEQUENTIAL=1 (never with 0).
DEFAULT_SEQUENTIAL_MAX_INTERACTIONS = int(_env("SEQUENTIAL_MAX_INTERACTIONS", "200000"))
EVAL_SEQUENTIAL = _env("EVAL_SEQUENTIAL", "auto")
# How many of a user's latest videos SASRec reads, and its objective: "ce" (softmax over the whole
# catalog, the stronger) or "bce" (one sampled negative per position, cheaper at large catalogs).
DEFAULT_SASREC_MAX_LEN = int(_env("SASREC_MAX_LEN", "50"))
DEFAULT_SASREC_LOSS = _env("SASREC_LOSS", "ce")
# After choosing its epochs on the validation slice, SASRec is trained again from scratch on all the
# training data (0, the stronger) or the early-stopped model is fine-tuned this many epochs (about
# half the time: MovieLens-100k 4.7 min instead of 9.3, held-out NDCG@10 0.11 instead of 0.12).
DEFAULT_SASREC_FINE_TUNE_EPOCHS = int(_env("SASREC_FINE_TUNE_EPOCHS", "0"))
# SASRec's torch threads: one keeps its figures independent of the machine; more shorten it at
# large catalogs (make bench-sparse runs it on two).
DEFAULT_SASREC_THREADS = int(_env("SASREC_THREADS", "1"))
DEFAULT_SPARK_MASTER = _env("SPARK_MASTER", "local[*]")
# Where the score stage computes the lists: "local" (one process) or "spark" (users as Spark
# partitions, the model broadcast); both give the same lists. The DAG sets it per run.
SCORING_ENGINES = ("local", "spark")
DEFAULT_SCORING_ENGINE = _env("SCORING_ENGINE", "local") or "local"
DEFAULT_SEED = int(_env("SEED", "7"))
# An optional pretrained frame encoder: a TorchScript file (torch.jit.save) that maps float
# (n, 3, H, W) frames in [0, 1] to one output per frame. Empty: no `frame_embedding` column values.
# The file's SHA-256 is stored with each feature row; a different file re-extracts every video.
DEFAULT_FRAME_ENCODER = _env("FRAME_ENCODER", "") or None
# The text embedding's arithmetic (features.text.TEXT_PRECISIONS): "auto" is int8 (ONNX Runtime) on
# a CPU with VNNI, else bfloat16 on hardware that multiplies it natively (CPUs with AMX or
# AVX512-BF16, recent GPUs), float32 elsewhere. The int8 model is built once per machine into
# $VREC_TEXT_MODEL_CACHE (default ~/.cache/video-recs/text-model; features/text_int8.py).
DEFAULT_TEXT_PRECISION = _env("TEXT_PRECISION", "auto") or "auto"


# Environment overrides of the decoder's bounds; the bounds and their defaults live with the
# decoder (features.decode.DecodeLimits).
DECODE_LIMIT_OVERRIDES = {field: cast(os.environ[f"VREC_{name}"]) for field, name, cast in (
    ("timeout_s", "DECODE_TIMEOUT_S", float), ("max_duration_s", "MAX_DURATION_S", float),
    ("max_frames", "MAX_FRAMES", int), ("max_pixels", "MAX_PIXELS", int),
) if f"VREC_{name}" in os.environ}


def decode_limits(**changes) -> DecodeLimits:
    """The decoder's bounds with the environment's overrides, then `changes` (e.g. CLI flags)."""
    from features.decode import DecodeLimits  # numpy and ffmpeg-python load only when a job decodes

    return DecodeLimits(**{**DECODE_LIMIT_OVERRIDES, **changes})


@dataclass(frozen=True)
class Warehouse:
    """Paths of the warehouse layout of DESIGN.md, from one root directory, and where the serving
    table lives (None: in the warehouse, `tables/recommendations`)."""

    root: Path
    serving_table: TableLocation | None = None

    @classmethod
    def at(cls, root: str | os.PathLike | None, serving_table: str | None = None) -> "Warehouse":
        """The warehouse at `root`; the serving table at `serving_table`, else $VREC_SERVING_TABLE,
        else inside the warehouse. Every other table stays under the (local) root."""
        location = serving_table or DEFAULT_SERVING_TABLE
        return cls(Path(root or DEFAULT_WAREHOUSE).expanduser().resolve(),
                   TableLocation.parse(location, connection_id=SERVING_TABLE_CONN_ID) if location else None)

    # landing zone, written by upstream systems
    @property
    def landing_catalog(self) -> Path:
        return self.root / "landing" / "catalog"

    @property
    def landing_interactions(self) -> Path:
        return self.root / "landing" / "interactions"

    @property
    def landing_media(self) -> Path:
        return self.root / "landing" / "media"

    # tables the pipeline keeps
    def table(self, name: str) -> Path:
        return self.root / "tables" / name

    @property
    def catalog(self) -> Path:
        return self.table("catalog")

    @property
    def interactions(self) -> Path:
        return self.table("interactions")

    @property
    def rejected_rows(self) -> Path:
        return self.table("rejected_rows")

    @property
    def video_features(self) -> Path:
        return self.table("video_features")

    @property
    def media_quarantine(self) -> Path:
        return self.table("media_quarantine")

    @property
    def models(self) -> Path:
        return self.table("models")

    @property
    def candidate_lists(self) -> Path:
        return self.table("candidate_lists")

    @property
    def candidate_explanations(self) -> Path:
        return self.table("candidate_explanations")

    @property
    def model_metrics(self) -> Path:
        return self.table("model_metrics")

    @property
    def recommendations(self) -> TableLocation:
        """The serving table (Delta): a local directory or an object-store location."""
        return self.serving_table or TableLocation.local(self.table("recommendations"))

    @property
    def explanations(self) -> TableLocation:
        """The explanations side table (Delta), beside the serving table in the same storage:
        `<warehouse>/tables/recommendation_explanations`, or next to an S3 serving table."""
        return self.recommendations.sibling(EXPLANATIONS_TABLE_NAME)

    def published_tables(self) -> dict[str, TableLocation]:
        """Every Delta table a night publishes (explanations first, the order of the commits);
        rollback, retention and erasure go over all of them."""
        return {"explanations": self.explanations, "recommendations": self.recommendations}

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def run_dir(self, run_date: str) -> Path:
        """Per-run bookkeeping: each stage's counters, validation results."""
        return self.runs / run_date

    def media_roots(self) -> list[Path]:
        """Directories a catalog uri may point into; extra roots come from VREC_MEDIA_ROOTS."""
        extra = [Path(p).expanduser().resolve() for p in _env("MEDIA_ROOTS", "").split(os.pathsep) if p]
        return [self.landing_media.resolve(), *extra]
