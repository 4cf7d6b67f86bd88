"""Extract features: decode each video once and write the `video_features` and `media_quarantine` tables.

    python -m jobs.extract_features --warehouse DIR --run-date YYYY-MM-DD [--full-refresh] [--fps 1.0]
        [--max-duration-s S] [--decode-timeout-s S] [--frame-encoder PATH] [--text-precision P]

Runs over catalog partitions with `mapInPandas`, which gets only the columns it reads: no timestamps,
which pandas would hold in nanoseconds (years 1677 to 2262; the catalog's run from 0001 to 9999,
and 9999-12-31 is a common "never"). Incremental: a video's media is decoded again only
when its content hash, the extractor version, the sampling (frames a second, duration and frame
caps: `features.extract.sampling`) or the frame encoder (the SHA-256 of the optional TorchScript
file, jobs/plumbing/frame_encoder.py) changes, and its text is embedded again only when the text
changes; everything else is carried over from the previous table. A file that cannot be used
becomes a quarantine row with a reason code and keeps its text features.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from typing import TYPE_CHECKING

from jobs.plumbing import config
from jobs.plumbing.frame_encoder import FrameEncoderSpec, check_frame_encoder, worker_frame_encoder
from jobs.plumbing.stage import StageError, add_shared_arguments, base_parser, run_stage, write_counters
from jobs.plumbing.tables import restore_interrupted_swap, write_spark_table

if TYPE_CHECKING:
    from features.decode import DecodeLimits

STAGE = "extract_features"

# Media columns carried over unchanged when a video's bytes, the extractor, the sampling and the
# frame encoder are unchanged.
MEDIA_COLUMNS = ("content_sha256", "extractor_version", "sampling", "duration_s", "fps", "width", "height",
                 "vcodec", "acodec", "has_video", "has_audio", "truncated_by_cap", "visual", "thumbnail", "audio",
                 "frame_embedding", "frame_encoder_sha256", "media_status", "quarantine_reason",
                 "quarantine_detail")
TEXT_COLUMNS = ("has_text", "text_embedding")

FEATURE_SCHEMA = """
    video_id string, uri string, text_sha256 string, text_reused boolean,
    content_sha256 string, extractor_version string, sampling string, duration_s double, fps double,
    width int, height int, vcodec string, acodec string, has_video boolean, has_audio boolean,
    truncated_by_cap boolean, visual array<float>, thumbnail array<float>, audio array<float>,
    frame_embedding array<float>, frame_encoder_sha256 string,
    media_status string, quarantine_reason string, quarantine_detail string,
    has_text boolean, text_embedding array<float>
"""
FEATURE_FIELDS = dict(field.split() for field in FEATURE_SCHEMA.split(","))  # name -> Spark type
# The catalog columns the Python workers read (`extract_partition`, `_media_row`), beside the prev_ ones.
WORKER_CATALOG_COLUMNS = ("video_id", "uri", "title", "description", "tags")
# Quarantine reasons worth another try next night even when the bytes are unchanged.
RETRY_REASONS = {"timeout"}


# Part of the text hash: a different embedding model must embed every text again. The precision
# is not: bfloat16 and int8 vectors of a text agree with float32 to a cosine above 0.99 (0.999 and 0.993
# on every text measured; tests/test_text_embedding.py),
# so a table may mix them and a change of precision re-embeds nothing.
TEXT_MODEL = "all-MiniLM-L6-v2"
_text_embedder = None


def text_sha256(text: str) -> str:
    return hashlib.sha256(f"{TEXT_MODEL}\n{text}".encode()).hexdigest()


def text_embedder(precision: str = config.DEFAULT_TEXT_PRECISION):
    """One embedder per Python worker: Spark reuses workers, and loading takes seconds. Inside a
    Spark task torch gets the task's cores (`spark.task.cpus`), not one thread per core of the
    machine: with a task on every core those would oversubscribe it."""
    global _text_embedder
    from pyspark import TaskContext

    context = TaskContext.get()
    if context is not None:
        import torch
        torch.set_num_threads(max(1, context.cpus()))
    if _text_embedder is None or _text_embedder[0] != precision:
        from features.text import TextEmbedder
        _text_embedder = (precision, TextEmbedder(precision=precision))
    return _text_embedder[1]


def _text_or_none(value) -> str | None:
    """A string column value from pandas: None and NaN (a missing value) are both None."""
    return value if isinstance(value, str) and value else None


def _media_row(row, media_roots, limits, fps: float, full_refresh: bool,
               encoder: FrameEncoderSpec | None = None) -> dict:
    """Decode one video (or decide to reuse last night's result): the media half of its row."""
    from features.decode import MediaError, file_sha256, resolve_media
    from features.extract import DEFAULT_SAMPLING, EXTRACTOR_VERSION, extract_media_features, sampling
    from features.frame_embedding import FrameEncoderError

    encoder_sha = encoder.sha256 if encoder else None
    sampled = sampling(fps, limits)
    empty = {"has_video": False, "has_audio": False, "extractor_version": EXTRACTOR_VERSION,
             "sampling": sampled, "frame_encoder_sha256": encoder_sha}
    if not row.uri:
        return {**empty, "media_status": "no_media"}
    try:
        path = resolve_media(row.uri, media_roots)
        sha = file_sha256(path)
    except MediaError as err:
        return {**empty, "media_status": "quarantined", "quarantine_reason": err.reason,
                "quarantine_detail": err.detail}
    # Rows written before the frame encoder existed have no encoder hash: valid while none is set.
    # Rows written before the sampling was stored have none: they were sampled with the defaults.
    unchanged = (sha == row.prev_content_sha256 and row.prev_extractor_version == EXTRACTOR_VERSION
                 and (_text_or_none(row.prev_sampling) or DEFAULT_SAMPLING) == sampled
                 and _text_or_none(row.prev_frame_encoder_sha256) == encoder_sha
                 and row.prev_quarantine_reason not in RETRY_REASONS)
    if unchanged and not full_refresh:
        return {"content_sha256": sha, "media_status": "reused"}
    try:
        media = extract_media_features(path, limits, fps=fps,
                                       frame_encoder=worker_frame_encoder(encoder) if encoder else None)
    except MediaError as err:
        return {**empty, "content_sha256": sha, "media_status": "quarantined",
                "quarantine_reason": err.reason, "quarantine_detail": err.detail}
    except FrameEncoderError as err:  # the encoder, not the media: stop the stage, name both
        raise RuntimeError(f"frame encoder {encoder.path} failed on video {row.video_id!r} ({path}): "
                           f"{err}") from err
    return {**media, "content_sha256": sha, "extractor_version": EXTRACTOR_VERSION, "sampling": sampled,
            "frame_encoder_sha256": encoder_sha, "media_status": "decoded"}


def extract_partition(batches, media_roots, limits, fps: float, full_refresh: bool,
                      encoder: FrameEncoderSpec | None = None,
                      text_precision: str = config.DEFAULT_TEXT_PRECISION):
    """mapInPandas body: one output row per catalog row of the partition."""
    import pandas as pd

    from features.text import video_text

    columns = list(FEATURE_FIELDS)
    for batch in batches:
        rows = []
        for row in batch.itertuples(index=False):
            text = video_text(row.title, row.description, row.tags)
            text_hash = text_sha256(text)
            out = {"video_id": row.video_id, "uri": row.uri, "text_sha256": text_hash,
                   "text_reused": text_hash == row.prev_text_sha256 and not full_refresh,
                   "has_text": bool(text.strip()), "_text": text}
            out.update(_media_row(row, media_roots, limits, fps, full_refresh, encoder))
            rows.append(out)
        to_embed = [r for r in rows if not r["text_reused"]]
        if to_embed:
            vectors = text_embedder(text_precision).embed([r["_text"] for r in to_embed])
            for r, vector in zip(to_embed, vectors):
                r["text_embedding"] = vector.astype("float32") if r["has_text"] else None
        yield pd.DataFrame([{c: r.get(c) for c in columns} for r in rows], columns=columns)


def media_size_bins(videos, media_roots, partitions: int):
    """Assign videos to `partitions` bins of about equal work: equal media bytes, then equal numbers
    of videos.

    Decode time grows with file size, so media files go largest first to the bin with the fewest
    bytes, and one huge file cannot make one task the straggler of the stage. Every video also has
    its text embedded, which costs about the same per video: the videos without media (most of a
    large catalog) then go to the bin with the fewest videos. Weighing them as bytes instead would
    put all of them in the one bin with the least media. Files the driver cannot see count as
    videos without media.
    """
    import heapq

    import pandas as pd

    from features.decode import MediaError, resolve_media

    def size(uri) -> int:
        try:
            return resolve_media(uri, media_roots).stat().st_size if uri else 0
        except (MediaError, OSError):
            return 0

    sizes = videos.assign(size=videos["uri"].map(size)).sort_values(["size", "video_id"], ascending=[False, True])
    with_media = sizes[sizes["size"] > 0]
    by_bytes = [(0, b) for b in range(partitions)]
    videos_in = [0] * partitions
    assignment = []
    for nbytes in with_media["size"]:
        load, b = heapq.heappop(by_bytes)
        assignment.append(b)
        videos_in[b] += 1
        heapq.heappush(by_bytes, (load + int(nbytes), b))
    by_count = [(count, b) for b, count in enumerate(videos_in)]
    heapq.heapify(by_count)
    for _ in range(len(sizes) - len(with_media)):
        count, b = heapq.heappop(by_count)
        assignment.append(b)
        heapq.heappush(by_count, (count + 1, b))
    return pd.DataFrame({"video_id": sizes["video_id"].to_numpy(), "media_bin": assignment})


def _previous_columns(previous, names) -> list:
    """`prev_<name>` for each column of the previous table; null for columns it predates."""
    from pyspark.sql import functions as F

    present = set(previous.columns)
    return [(F.col(c) if c in present else F.lit(None).cast(FEATURE_FIELDS.get(c, "string"))).alias(f"prev_{c}")
            for c in names]


def extract(spark, wh: config.Warehouse, run_date: str, *, full_refresh: bool = False, fps: float = 1.0,
            limits: DecodeLimits | None = None, partitions: int | None = None,
            frame_encoder: str | None = config.DEFAULT_FRAME_ENCODER,
            text_precision: str = config.DEFAULT_TEXT_PRECISION) -> dict:
    """Run the stage; `frame_encoder` is a TorchScript file path, or None/empty for none;
    `text_precision` is one of features.text.TEXT_PRECISIONS ("auto": decided on each executor)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from features.text import TEXT_PRECISIONS

    # Checked before anything else: a bad encoder file is one clear error, not a failure per video.
    encoder = check_frame_encoder(frame_encoder, STAGE) if frame_encoder else None
    if text_precision not in TEXT_PRECISIONS:
        raise StageError(STAGE, f"text precision {text_precision!r} (VREC_TEXT_PRECISION or --text-precision): "
                                f"expected one of {', '.join(TEXT_PRECISIONS)}")
    if not wh.catalog.exists():
        raise StageError(STAGE, f"no catalog table at {wh.catalog}; run ingest first")
    restore_interrupted_swap(wh.video_features)
    limits = limits or config.decode_limits()
    media_roots = wh.media_roots()
    catalog = spark.read.parquet(str(wh.catalog)).select(*WORKER_CATALOG_COLUMNS)

    prev_names = ("content_sha256", "extractor_version", "sampling", "frame_encoder_sha256", "text_sha256",
                  "quarantine_reason")
    if wh.video_features.exists():
        previous = spark.read.parquet(str(wh.video_features))
        catalog = catalog.join(previous.select("video_id", *_previous_columns(previous, prev_names)),
                               "video_id", "left")
    else:
        previous = None
        catalog = catalog.select("*", *[F.lit(None).cast("string").alias(f"prev_{c}") for c in prev_names])

    n_videos = catalog.count()
    partitions = partitions or max(1, min(n_videos // 16 + 1, spark.sparkContext.defaultParallelism * 4))
    bins = media_size_bins(catalog.select("video_id", "uri").toPandas(), media_roots, partitions)
    catalog = catalog.join(spark.createDataFrame(bins, "video_id string, media_bin int"), "video_id", "left")
    # Persisted so that the decode runs once, for both the counters and the table.
    extracted = catalog.repartitionByRange(partitions, "media_bin").drop("media_bin").mapInPandas(
        lambda batches: extract_partition(batches, media_roots, limits, fps, full_refresh, encoder,
                                           text_precision), FEATURE_SCHEMA
    ).persist(StorageLevel.MEMORY_AND_DISK)
    statuses = {r["media_status"]: r["n"] for r in
                extracted.groupBy("media_status").agg(F.count("*").alias("n")).collect()}

    if previous is not None:
        prev = previous.select("video_id", *_previous_columns(previous, MEDIA_COLUMNS + TEXT_COLUMNS))
        joined = extracted.join(prev, "video_id", "left")
        media_reused = F.col("media_status") == "reused"
        carried = [F.when(media_reused, F.col(f"prev_{c}")).otherwise(F.col(c)).alias(c) for c in MEDIA_COLUMNS]
        carried += [F.when(F.col("text_reused"), F.col(f"prev_{c}")).otherwise(F.col(c)).alias(c)
                    for c in TEXT_COLUMNS]
        features = joined.select("video_id", "uri", "text_sha256", *carried)
    else:
        features = extracted.drop("text_reused")
    write_spark_table(features, wh.video_features, run_date)
    extracted.unpersist()

    # The quarantine rows come from the table just written, so reused quarantine verdicts repeat.
    written = spark.read.parquet(str(wh.video_features))
    quarantine = written.where(F.col("media_status") == "quarantined").select(
        "video_id", "uri", F.col("quarantine_reason").alias(config.REASON),
        F.col("quarantine_detail").alias(config.DETAIL), F.lit(run_date).cast("date").alias(config.RUN_DATE))
    write_spark_table(quarantine.coalesce(1), wh.media_quarantine / run_date, run_date)

    reasons = {r[config.REASON]: r["n"] for r in
               quarantine.groupBy(config.REASON).agg(F.count("*").alias("n")).collect()}
    counters = {
        "videos": n_videos,
        "videos_decoded": statuses.get("decoded", 0),
        "videos_skipped": statuses.get("reused", 0),
        "videos_quarantined": sum(reasons.values()),
        "videos_without_media": statuses.get("no_media", 0),
        "videos_with_text": written.where("has_text").count(),
        "quarantine_reasons": reasons,
        "extractor_version": _extractor_version(),
        "frame_encoder": None if encoder is None else
        {"path": encoder.path, "sha256": encoder.sha256, "dim": encoder.dim},
    }
    write_counters(wh, run_date, STAGE, counters)
    return counters


def _extractor_version() -> str:
    from features.extract import EXTRACTOR_VERSION
    return EXTRACTOR_VERSION


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--full-refresh", action=argparse.BooleanOptionalAction, default=False,
                        help="decode every video again")
    parser.add_argument("--fps", type=float, default=1.0,
                        help="frames sampled per second of video (a change decodes every video again)")
    add_shared_arguments(parser, "--decode-timeout-s")
    parser.add_argument("--max-duration-s", type=float, default=config.decode_limits().max_duration_s,
                        help="seconds of each video decoded, the rest left out (a change decodes every "
                             "video again; default: $VREC_MAX_DURATION_S or 600)")
    parser.add_argument("--frame-encoder", metavar="PATH", default=config.DEFAULT_FRAME_ENCODER,
                        help="TorchScript frame encoder whose mean-pooled output becomes the "
                             "frame_embedding column ('' for none; default: $VREC_FRAME_ENCODER)")
    parser.add_argument("--text-precision", default=config.DEFAULT_TEXT_PRECISION,
                        help="arithmetic of the text embedding: auto (int8 on a CPU with VNNI, else bfloat16 "
                             "where the hardware has it), float32, bfloat16 or int8 "
                             "(default: $VREC_TEXT_PRECISION or auto)")
    args = parser.parse_args(argv)

    def body(wh: config.Warehouse) -> dict:
        from jobs.plumbing.spark import get_spark
        limits = config.decode_limits(timeout_s=args.decode_timeout_s, max_duration_s=args.max_duration_s)
        return extract(get_spark("vrec-extract-features"), wh, args.run_date,
                       full_refresh=args.full_refresh, fps=args.fps, limits=limits,
                       frame_encoder=args.frame_encoder or None, text_precision=args.text_precision)

    return run_stage(STAGE, args.warehouse, body)


if __name__ == "__main__":
    sys.exit(main())
