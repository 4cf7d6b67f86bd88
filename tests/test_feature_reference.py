"""Today's extractor against the features stored from the extractor before the decode was made
faster (`tests/data/feature_reference.npz`, written by `tests/feature_reference.py` from main at
0738f76, EXTRACTOR_VERSION 3), clip by clip over the 34 real clips in ../shared/data/media.

The tolerances, and why (docs/benchmarks.md, "Feature extraction benchmark"):

* audio (223 floats): the same audio decode, so equal to 1e-5 relative, +1e-3 absolute: on an AMD
  EPYC (AVX2, no AVX-512) one MFCC statistic of a clip came out 1.2e-4 where the reference has 0,
  float rounding at a scale of 1e3;
* visual (24 floats, shares and [0, 1] statistics): within 0.05 absolute. The decode now skips the
  in-loop deblocking filter (decode.SKIP_LOOP_FILTER); the largest move on these clips is 0.033,
  a hue share of pixels near the chroma threshold. EXTRACTOR_VERSION 4 re-extracts stored rows;
* thumbnail (16x16x3): cosine >= 0.999 and a mean absolute difference <= 2/255;
* duration: within 0.006 s (ffmpeg's log states it to the centisecond, ffprobe to the
  microsecond); fps within 0.01 (two decimals in the log); size, codecs, audio presence equal.

Skips when ../shared/data/media is absent.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.feature_reference import REFERENCE_PATH, SHARED_MEDIA, extract_clip, load_reference

AUDIO_RTOL, AUDIO_ATOL = 1e-5, 1e-3
VISUAL_ATOL = 0.05
THUMBNAIL_MIN_COSINE = 0.999
THUMBNAIL_MAX_MEAN_ABS = 2.0  # in pixel levels (0..255)
DURATION_ATOL_S = 0.006
FPS_ATOL = 0.01


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    if not (SHARED_MEDIA / "MANIFEST.tsv").is_file():
        pytest.skip(f"no shared media at {SHARED_MEDIA}")
    return load_reference(REFERENCE_PATH)


def test_reference_covers_the_shared_clips(reference):
    from tests.feature_reference import manifest_clips

    assert reference["clip"].tolist() == manifest_clips(SHARED_MEDIA)
    assert reference["extractor_version"] == "3"
    assert reference["visual"].shape == (34, 24) and reference["audio"].shape == (34, 223)


def test_features_stay_within_tolerance_of_the_reference(reference):
    worst = {"visual": 0.0, "thumbnail_mad": 0.0, "duration": 0.0}
    for i, clip in enumerate(reference["clip"].tolist()):
        row = extract_clip(SHARED_MEDIA, clip)
        assert (row["width"], row["height"]) == (reference["width"][i], reference["height"][i]), clip
        assert (row["vcodec"] or "", row["acodec"] or "") == (reference["vcodec"][i],
                                                              reference["acodec"][i]), clip
        assert row["has_audio"] == reference["has_audio"][i], clip
        assert row["truncated_by_cap"] == reference["truncated_by_cap"][i], clip
        assert row["fps"] == pytest.approx(reference["fps"][i], abs=FPS_ATOL), clip
        assert row["duration_s"] == pytest.approx(reference["duration_s"][i],
                                                  abs=DURATION_ATOL_S), clip

        np.testing.assert_allclose(row["audio"], reference["audio"][i], rtol=AUDIO_RTOL,
                                   atol=AUDIO_ATOL, err_msg=clip)
        np.testing.assert_allclose(row["visual"], reference["visual"][i], rtol=0,
                                   atol=VISUAL_ATOL, err_msg=clip)

        thumb = np.round(np.asarray(row["thumbnail"]) * 255)
        ref_thumb = reference["thumbnail"][i].astype(np.float64)
        cosine = thumb @ ref_thumb / (np.linalg.norm(thumb) * np.linalg.norm(ref_thumb))
        mad = np.abs(thumb - ref_thumb).mean()
        assert cosine >= THUMBNAIL_MIN_COSINE, (clip, cosine)
        assert mad <= THUMBNAIL_MAX_MEAN_ABS, (clip, mad)

        worst["visual"] = max(worst["visual"],
                              float(np.abs(np.subtract(row["visual"], reference["visual"][i])).max()))
        worst["thumbnail_mad"] = max(worst["thumbnail_mad"], float(mad))
        worst["duration"] = max(worst["duration"],
                                abs(row["duration_s"] - float(reference["duration_s"][i])))
    print("largest differences from the reference:", worst)
