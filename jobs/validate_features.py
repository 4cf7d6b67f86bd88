"""Validate features: the Great Expectations suite over `video_features`, before any training.

    python -m jobs.validate_features --warehouse DIR --run-date YYYY-MM-DD [--min-coverage 0.5]

Fails the run when types, ranges or vectors are wrong, or when the share of videos with usable
features falls below `--min-coverage`. When too few media files decoded, the error names the most
common reason in `tables/media_quarantine/<run_date>` and what to do about it.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from jobs.plumbing import config
from jobs.plumbing.quality import feature_suite, media_coverage_hint, save_result
from jobs.plumbing.stage import StageError, add_shared_arguments, base_parser, run_stage, write_counters
from jobs.plumbing.tables import read_table

STAGE = "validate_features"


def quarantine_reasons(quarantine: Path) -> dict[str, int]:
    """How many videos of one night's quarantine table have each reason (empty when there is none)."""
    try:
        reasons = read_table(quarantine, columns=[config.REASON]).column(config.REASON).to_pylist()
    except (OSError, ValueError):  # absent, or no rows written: the hint says so, the failure stands
        return {}
    return dict(Counter(reason or "unknown" for reason in reasons))


def validate_features(wh: config.Warehouse, run_date: str,
                      min_coverage: float = config.DEFAULT_MIN_FEATURE_COVERAGE) -> dict:
    if not wh.video_features.exists():
        raise StageError(STAGE, f"no feature table at {wh.video_features}; run extract_features first")
    features = read_table(wh.video_features).to_pandas()
    result = feature_suite(features, min_coverage)
    save_result(wh, run_date, result)
    if not result.success:
        message = f"video_features failed validation: {result.summary()}"
        if any(failure.get("column") == "media_coverage" for failure in result.failures):
            quarantine = wh.media_quarantine / run_date
            message += f"; {media_coverage_hint(quarantine_reasons(quarantine), wh.landing_media, quarantine)}"
        raise StageError(STAGE, message)
    counters = {"videos_checked": result.rows, "suite": result.suite, "success": result.success}
    write_counters(wh, run_date, STAGE, counters)
    return counters


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    add_shared_arguments(parser, "--min-coverage")
    args = parser.parse_args(argv)
    return run_stage(STAGE, args.warehouse, lambda wh: validate_features(wh, args.run_date, args.min_coverage))


if __name__ == "__main__":
    sys.exit(main())
