"""All media features of one file from a single decode: the row body that the feature job stores."""

from __future__ import annotations

from pathlib import Path

from threadpoolctl import threadpool_limits

from features.audio import audio_features
from features.decode import DecodeLimits, decode
from features.frame_embedding import frame_embedding
from features.visual import thumbnail, visual_features

# Stored with every feature row; bump it when any extractor's output changes, so the incremental
# job decodes every video again instead of mixing old and new features.
EXTRACTOR_VERSION = "4"  # 2: video decoded with skip_frame=noref (decode.SKIP_FRAME)
# 3: an upload cut short is quarantined as truncated (decode._check_complete), not decoded in part
# 4: the decode skips the deblocking filter (decode.SKIP_LOOP_FILTER; visual features move by up
#    to 0.033, tests/test_feature_reference.py) and reads the header from its own log, no
#    ffprobe (durations to the centisecond)
THUMBNAIL_SIDE = 16
FRAME_SIZE = (112, 112)  # (width, height) of the sampled frames every extractor reads


def sampling(fps: float, limits: DecodeLimits) -> str:
    """The settings that choose which frames and audio the features describe, as stored with each
    row beside EXTRACTOR_VERSION: the incremental job decodes a video again when they change, so a
    table never mixes features sampled at 1 and 2 frames a second without anyone knowing."""
    return f"fps={fps:g} max_duration_s={limits.max_duration_s:g} max_frames={limits.max_frames}"


# Rows written before the sampling was stored were sampled with the defaults.
DEFAULT_SAMPLING = sampling(1.0, DecodeLimits())


def extract_media_features(path: Path, limits: DecodeLimits = DecodeLimits(),
                           fps: float = 1.0, frame_encoder=None) -> dict:
    """Decode `path` once and return its metadata and feature vectors as plain Python values.

    `audio` is None when the file has no (decodable) audio stream, never zeros, which would read
    as silence; `has_audio` says the same. `frame_encoder`, a loaded TorchScript module (or any
    callable on a float NCHW tensor), gets the same decoded frames; `frame_embedding` is its
    mean-pooled output, None without an encoder.
    Raises features.decode.MediaError for files that belong in quarantine.
    """
    decoded = decode(path, fps=fps, size=FRAME_SIZE, limits=limits)
    meta = decoded.meta
    # The jobs run one file per core, so BLAS/OpenMP threads here only contend with the other
    # workers (idle OpenBLAS threads spin): with them, 2 workers on 2 cores took ~15% longer.
    with threadpool_limits(limits=1):
        audio = None
        # An audio stream that yields no samples (broken track) is treated as absent, not silence.
        if decoded.audio is not None and decoded.audio.size:
            audio = audio_features(decoded.audio, decoded.sample_rate).tolist()
        visual = visual_features(decoded.frames, fps=fps).tolist()
        thumb = thumbnail(decoded.frames, side=THUMBNAIL_SIDE).tolist()
        embedding = (frame_embedding(decoded.frames, frame_encoder).tolist()
                     if frame_encoder is not None else None)
    return {
        "duration_s": float(meta.duration_s),
        "fps": float(meta.fps),
        "width": int(meta.width),
        "height": int(meta.height),
        "vcodec": meta.vcodec,
        "acodec": meta.acodec,
        "has_video": bool(meta.has_video),
        "has_audio": audio is not None,
        "truncated_by_cap": bool(meta.truncated_by_cap),
        "visual": visual,
        "thumbnail": thumb,
        "audio": audio,
        "frame_embedding": embedding,
    }
