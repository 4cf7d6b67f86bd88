"""The Great Expectations suites: clean tables pass, each kind of defect fails with its check named."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from features.audio import AUDIO_DIM
from features.text import TEXT_DIM
from features.visual import VISUAL_DIM
from jobs.plumbing import config
from jobs.plumbing.quality import feature_suite, media_coverage_hint, recommendation_suite
from jobs.plumbing.stage import StageError
from jobs.plumbing.tables import write_arrow_table
from jobs.validate_features import validate_features


def _features(n=4) -> pd.DataFrame:
    return pd.DataFrame({
        "video_id": [f"v{i}" for i in range(n)], "uri": [f"{i}.mp4" for i in range(n)],
        "extractor_version": ["1"] * n, "duration_s": [3.0] * n,
        "has_video": [True] * n, "has_audio": [True] * n, "has_text": [True] * n,
        "visual": [np.zeros(VISUAL_DIM)] * n, "thumbnail": [np.zeros(768)] * n,
        "audio": [np.zeros(AUDIO_DIM)] * n, "text_embedding": [np.ones(TEXT_DIM)] * n,
    })


def test_feature_suite_passes_clean_features_and_names_each_defect():
    assert feature_suite(_features(), min_coverage=0.5).success

    broken = _features()
    broken.at[1, "visual"] = np.full(VISUAL_DIM, np.nan)
    broken.at[2, "audio"] = np.zeros(AUDIO_DIM - 1)
    result = feature_suite(broken, min_coverage=0.5)
    assert not result.success
    assert {f["column"] for f in result.failures} == {"visual_ok", "audio_ok"}

    sparse = _features()
    sparse.loc[1:, "has_video"] = False   # 1 of 4 videos with media features
    result = feature_suite(sparse, min_coverage=0.5)
    assert [f["column"] for f in result.failures] == ["media_coverage"]


def test_media_coverage_failure_names_the_main_quarantine_reason_and_the_fix(tmp_path):
    wh = config.Warehouse.at(tmp_path / "wh")
    features = _features()
    features["has_video"] = False
    features["has_audio"] = False
    write_arrow_table(pa.Table.from_pandas(features, preserve_index=False), wh.video_features, "2026-11-20")
    quarantine = pa.table({"video_id": ["v0", "v1", "v2", "v3"], "uri": ["/clips/0.mp4"] * 3 + ["3.mp4"],
                           "reason": ["outside_media_roots"] * 3 + ["missing"], "detail": ["-"] * 4})
    write_arrow_table(quarantine, wh.media_quarantine / "2026-11-20", "2026-11-20")

    with pytest.raises(StageError) as failure:
        validate_features(wh, "2026-11-20")
    message = str(failure.value)
    assert message.startswith("[validate_features] video_features failed validation: ")
    assert "media_coverage" in message
    assert (f"3 of 4 quarantined videos are outside_media_roots ({wh.media_quarantine / '2026-11-20'}): "
            f"put the files under {wh.landing_media} or add their directory to VREC_MEDIA_ROOTS") in message
    assert "\n" not in message

    # Another night, nothing quarantined: the hint says so instead of guessing.
    with pytest.raises(StageError, match="no video was quarantined"):
        validate_features(wh, "2026-11-21")


@pytest.mark.parametrize(("reason", "fix"), [
    ("missing", "the files are not there"),
    ("empty", "copy them again"),
    ("timeout", "--decode-timeout-s"),
    ("no_video_stream", "no video stream"),
    ("a_new_reason", "see the detail column of /wh/tables/media_quarantine/d"),
])
def test_media_coverage_hint_gives_a_fix_for_each_common_reason(reason, fix):
    hint = media_coverage_hint({reason: 5, "empty": 1} if reason != "empty" else {"empty": 5},
                               "/wh/landing/media", "/wh/tables/media_quarantine/d")
    assert hint.startswith(f"5 of {6 if reason != 'empty' else 5} quarantined videos are {reason} ")
    assert fix in hint


def _lists():
    lists = pd.DataFrame({"user_id": ["u1"] * 2 + ["u2"] * 2, "rank": [1, 2, 1, 2],
                          "video_id": ["b", "c", "a", "c"], "score": [0.9, 0.5, 0.8, 0.1]})
    interactions = pd.DataFrame({"user_id": ["u1", "u2"], "video_id": ["a", "b"]})
    return lists, interactions, pd.Series(["a", "b", "c"])


def test_recommendation_suite_catches_seen_videos_gaps_and_rising_scores():
    lists, interactions, catalog = _lists()
    assert recommendation_suite(lists, interactions, catalog, top_n=2).success

    seen = lists.copy()
    seen.loc[0, "video_id"] = "a"
    assert {f["column"] for f in recommendation_suite(seen, interactions, catalog, 2).failures} == {"unseen"}

    gap = lists.copy()
    gap.loc[1, "rank"] = 3
    failed = {f["column"] for f in recommendation_suite(gap, interactions, catalog, 3).failures}
    assert "rank_consecutive" in failed

    rising = lists.copy()
    rising.loc[3, "score"] = 0.95
    failed = {f["column"] for f in recommendation_suite(rising, interactions, catalog, 2).failures}
    assert failed == {"score_non_increasing"}

    missing_user = lists[lists["user_id"] == "u1"]
    failed = {f["column"] for f in recommendation_suite(missing_user, interactions, catalog, 2).failures}
    assert failed == {"active_user_covered"}
