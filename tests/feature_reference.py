"""The stored features of the real clips, to hold the extractor to them when its decode changes.

`tests/data/feature_reference.npz` holds, for every clip listed in ../shared/data/media/MANIFEST.tsv,
what `features.extract.extract_media_features(path, DecodeLimits(), fps=1.0)` returned: the visual
vector (24 floats), the audio vector (223 floats), the duration, the 16x16 thumbnail (as uint8) and
the metadata. It was written by the extractor of main at 0738f76 (EXTRACTOR_VERSION 3: one ffprobe
process, then one ffmpeg decode with skip_frame=noref on ffmpeg's default threads), before the decode
was made faster, and `tests/test_feature_reference.py` compares today's extractor with it.

Rewrite it only on purpose (an intended change of the features, with EXTRACTOR_VERSION bumped):

    python -m tests.feature_reference [--media-dir DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from tests.conftest import PROJECT_ROOT, SHARED_DATA

REFERENCE_PATH = PROJECT_ROOT / "tests" / "data" / "feature_reference.npz"
SHARED_MEDIA = SHARED_DATA / "media"
THUMBNAIL_LEN = 16 * 16 * 3


def manifest_clips(media_dir: Path) -> list[str]:
    """The clip paths (relative to `media_dir`) in MANIFEST.tsv, in its order."""
    rows = (media_dir / "MANIFEST.tsv").read_text().splitlines()[1:]
    return [row.split("\t")[0] for row in rows if row.strip()]


def extract_clip(media_dir: Path, clip: str) -> dict:
    """Today's features of one clip, as the feature job computes them."""
    from features.decode import DecodeLimits, resolve_media
    from features.extract import extract_media_features

    return extract_media_features(resolve_media(clip, [media_dir]), DecodeLimits(), fps=1.0)


def build_reference(media_dir: Path) -> dict[str, np.ndarray]:
    """The arrays stored in the reference file, one row per clip."""
    from features.extract import EXTRACTOR_VERSION

    clips = manifest_clips(media_dir)
    rows = [extract_clip(media_dir, clip) for clip in clips]
    nan_audio = [np.nan] * len(next(r["audio"] for r in rows if r["audio"] is not None))
    return {
        "clip": np.array(clips),
        "extractor_version": np.array(EXTRACTOR_VERSION),
        "visual": np.array([r["visual"] for r in rows], dtype=np.float32),
        "audio": np.array([r["audio"] if r["audio"] is not None else nan_audio for r in rows],
                          dtype=np.float32),
        "duration_s": np.array([r["duration_s"] for r in rows], dtype=np.float64),
        # thumbnails are pixel values / 255: uint8 stores them exactly
        "thumbnail": np.array([np.round(np.array(r["thumbnail"]) * 255) for r in rows],
                              dtype=np.uint8),
        "fps": np.array([r["fps"] for r in rows], dtype=np.float64),
        "width": np.array([r["width"] for r in rows], dtype=np.int32),
        "height": np.array([r["height"] for r in rows], dtype=np.int32),
        "vcodec": np.array([r["vcodec"] or "" for r in rows]),
        "acodec": np.array([r["acodec"] or "" for r in rows]),
        "has_audio": np.array([r["has_audio"] for r in rows]),
        "truncated_by_cap": np.array([r["truncated_by_cap"] for r in rows]),
    }


def load_reference(path: Path = REFERENCE_PATH) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media-dir", type=Path, default=SHARED_MEDIA)
    parser.add_argument("--out", type=Path, default=REFERENCE_PATH)
    args = parser.parse_args(argv)
    if not (args.media_dir / "MANIFEST.tsv").is_file():
        print(f"feature_reference: no MANIFEST.tsv in {args.media_dir}", file=sys.stderr)
        return 2
    reference = build_reference(args.media_dir)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **reference)
    print(f"wrote {len(reference['clip'])} clips to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
