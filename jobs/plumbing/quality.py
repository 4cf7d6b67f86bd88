"""Great Expectations suites that guard the tables before anything downstream uses them.

Each suite runs on a pandas frame in an ephemeral GX context (nothing written outside the
warehouse). Checks GX cannot state on a column directly (vector lengths, per-user list shape,
"never recommend a seen video") become derived boolean columns expected to be all true.
The result of every suite goes to `runs/<run_date>/validation_<suite>.json`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from jobs.plumbing import config


@dataclass
class SuiteResult:
    suite: str
    success: bool
    rows: int
    failures: list[dict] = field(default_factory=list)

    def summary(self) -> str:
        return "; ".join(f"{f['expectation']}({f.get('column', '')}): {f['observed']}" for f in self.failures)


def run_suite(name: str, frame: pd.DataFrame, expectations: list) -> SuiteResult:
    """Validate `frame` against GX expectation objects."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch_definition = (context.data_sources.add_pandas(f"{name}_source").add_dataframe_asset(name)
                        .add_batch_definition_whole_dataframe("whole_table"))
    suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=expectations))
    result = batch_definition.get_batch(batch_parameters={"dataframe": frame}).validate(suite)
    failures = []
    for item in result.results:
        if item.success:
            continue
        kwargs = item.expectation_config.kwargs
        observed = {k: v for k, v in item.result.items()
                    if k in ("observed_value", "unexpected_count", "unexpected_percent", "partial_unexpected_list")}
        failures.append({"expectation": item.expectation_config.type,
                         "column": kwargs.get("column") or kwargs.get("column_list"),
                         "observed": json.loads(json.dumps(observed, default=str))})
    return SuiteResult(name, bool(result.success), len(frame), failures)


def save_result(wh: config.Warehouse, run_date: str, result: SuiteResult) -> None:
    path = wh.run_dir(run_date) / f"validation_{result.suite}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result.__dict__, indent=1, default=str))


def _vector_ok(values: pd.Series, dim: int) -> pd.Series:
    def ok(v) -> bool:
        return v is not None and len(v) == dim and bool(np.isfinite(v).all())
    return values.map(ok)


def feature_suite(features: pd.DataFrame, min_coverage: float) -> SuiteResult:
    """Types, ranges, finite vectors of the right length, and the share of videos with features."""
    import great_expectations.expectations as gxe

    from features.audio import AUDIO_DIM
    from features.extract import THUMBNAIL_SIDE
    from features.text import TEXT_DIM
    from features.visual import VISUAL_DIM

    with_media = features["uri"].notna()
    frame = pd.DataFrame({
        "video_id": features["video_id"],
        "extractor_version": features["extractor_version"],
        "duration_s": features["duration_s"].where(features["has_video"]),
        "visual_ok": _vector_ok(features["visual"], VISUAL_DIM).where(features["has_video"], True),
        "thumbnail_ok": _vector_ok(features["thumbnail"], THUMBNAIL_SIDE ** 2 * 3).where(features["has_video"], True),
        "audio_ok": _vector_ok(features["audio"], AUDIO_DIM).where(features["has_audio"], True),
        "text_ok": _vector_ok(features["text_embedding"], TEXT_DIM).where(features["has_text"], True),
    })
    media_share = float(features.loc[with_media, "has_video"].mean()) if with_media.any() else 1.0
    coverage = pd.DataFrame({"media_coverage": [media_share], "text_coverage": [float(features["has_text"].mean())]})
    expectations = [
        gxe.ExpectColumnValuesToNotBeNull(column="video_id"),
        gxe.ExpectColumnValuesToBeUnique(column="video_id"),
        gxe.ExpectColumnValuesToNotBeNull(column="extractor_version"),
        gxe.ExpectColumnValuesToBeBetween(column="duration_s", min_value=0, max_value=24 * 3600),
        *[gxe.ExpectColumnValuesToBeInSet(column=c, value_set=[True]) for c in ("visual_ok", "thumbnail_ok", "audio_ok", "text_ok")],
    ]
    result = run_suite("video_features", frame, expectations)
    coverage_result = run_suite("video_features_coverage", coverage, [
        gxe.ExpectColumnValuesToBeBetween(column="media_coverage", min_value=min_coverage, max_value=1.0),
        gxe.ExpectColumnValuesToBeBetween(column="text_coverage", min_value=min_coverage, max_value=1.0),
    ])
    return SuiteResult("video_features", result.success and coverage_result.success, len(frame),
                       result.failures + coverage_result.failures)


# What to do about the videos quarantined for each reason, for the error when media coverage is too low.
QUARANTINE_FIXES = {
    "outside_media_roots": "put the files under {landing_media} or add their directory to VREC_MEDIA_ROOTS "
                           "(`jobs.import_dataset --media DIR` places them there)",
    "missing": "the files are not there: check that the catalog uris name existing files "
               "(relative uris are read from {landing_media})",
    "empty": "the files are empty (0 bytes): copy them again",
    "truncated": "the files are cut short: copy them again",
    "not_media": "these are not media files ffmpeg accepts: check what the catalog uris point at",
    "no_video_stream": "the files hold no video stream (audio only?): point the uris at the videos",
    "unsafe_container": "playlists and concat lists are refused: point the uris at the media files themselves",
    "timeout": "decoding ran out of time: raise --decode-timeout-s (VREC_DECODE_TIMEOUT_S)",
    "frame_too_large": "the frames are larger than VREC_MAX_PIXELS: raise it or downscale the files",
}


def media_coverage_hint(reasons: dict[str, int], landing_media: Path | str, quarantine_path: Path | str) -> str:
    """One sentence for a failed media coverage: the most common quarantine reason, its count and the fix."""
    if not reasons:
        return f"no video was quarantined ({quarantine_path} is empty or absent)"
    reason, count = max(reasons.items(), key=lambda item: (item[1], item[0]))
    fix = QUARANTINE_FIXES.get(reason, "see the detail column of {quarantine_path}")
    return (f"{count} of {sum(reasons.values())} quarantined videos are {reason} ({quarantine_path}): "
            + fix.format(landing_media=landing_media, quarantine_path=quarantine_path))


def recommendation_suite(lists: pd.DataFrame, interactions: pd.DataFrame, catalog_ids: pd.Series,
                         top_n: int) -> SuiteResult:
    """The serving-table contract, checked on the new lists before they are published."""
    import great_expectations.expectations as gxe

    lists = lists.sort_values([config.USER_ID, config.RANK], kind="stable").reset_index(drop=True)
    seen = pd.MultiIndex.from_frame(interactions[[config.USER_ID, config.VIDEO_ID]].drop_duplicates())
    seen_per_user = interactions.loc[interactions[config.VIDEO_ID].isin(catalog_ids)] \
        .groupby(config.USER_ID)[config.VIDEO_ID].nunique()
    expected_rows = (len(catalog_ids) - seen_per_user).clip(lower=0, upper=top_n)
    by_user = lists.groupby(config.USER_ID, sort=False)
    frame = lists.assign(
        rank_consecutive=lists[config.RANK] == by_user.cumcount() + 1,
        score_non_increasing=by_user[config.SCORE].diff().fillna(0) <= 1e-9,
        unseen=~pd.MultiIndex.from_frame(lists[[config.USER_ID, config.VIDEO_ID]]).isin(seen),
        known_video=lists[config.VIDEO_ID].isin(catalog_ids),
        full_list=by_user[config.RANK].transform("size") == lists[config.USER_ID].map(expected_rows),
    )
    active = expected_rows[expected_rows > 0].index
    covered = pd.DataFrame({"active_user_covered": pd.Index(active).isin(lists[config.USER_ID].unique())})
    checks = ("rank_consecutive", "score_non_increasing", "unseen", "known_video", "full_list")
    result = run_suite("recommendations", frame, [
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in (config.USER_ID, config.VIDEO_ID, config.SCORE)],
        gxe.ExpectColumnValuesToBeBetween(column=config.RANK, min_value=1, max_value=top_n),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=[config.USER_ID, config.VIDEO_ID]),
        *[gxe.ExpectColumnValuesToBeInSet(column=c, value_set=[True]) for c in checks],
    ])
    coverage = run_suite("recommendations_coverage", covered, [
        gxe.ExpectColumnValuesToBeInSet(column="active_user_covered", value_set=[True])])
    return SuiteResult("recommendations", result.success and coverage.success, len(frame),
                       result.failures + coverage.failures)
