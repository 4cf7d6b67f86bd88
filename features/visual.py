"""Hand-made visual features over the frames that one decode sampled: colour, texture, motion and
shot changes as one fixed-length vector, plus a tiny thumbnail for the model's convolutional branch.
"""

from __future__ import annotations

import cv2
import numpy as np

HUE_BINS, SAT_BINS, VAL_BINS = 8, 4, 4
# Two consecutive samples whose colour histograms are further apart than this (Bhattacharyya
# distance, 0 = same, 1 = disjoint) are counted as a cut.
SHOT_CHANGE_DISTANCE = 0.5
# Hue is undefined for grey pixels (OpenCV gives them hue 0 = red); only pixels at least this
# saturated and bright count in the hue histogram, so black or grey video does not look red.
_MIN_CHROMA = 32

VISUAL_NAMES: tuple[str, ...] = (
    # share of ALL pixels that are coloured with that hue; bin 0 is centred on red. The bins sum
    # to the coloured share of the video (grey pixels are in no hue bin).
    *(f"hue_{i}" for i in range(HUE_BINS)),
    *(f"saturation_{i}" for i in range(SAT_BINS)),  # shares, sum to 1
    *(f"value_{i}" for i in range(VAL_BINS)),       # shares, sum to 1
    "brightness_mean",   # mean grey level in [0, 1]
    "brightness_std",    # std over time of each frame's mean brightness
    "contrast",          # mean over frames of the grey-level std, [0, 1]
    "edge_density",      # share of Canny edge pixels
    "colourfulness",     # Hasler & Suesstrunk (2003) metric / 100
    "motion_mean",       # mean abs grey difference of consecutive samples, [0, 1]
    "motion_std",
    "shot_change_rate",  # cuts per second of sampled video
)
VISUAL_DIM = len(VISUAL_NAMES)


def _check(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected frames of shape (N, H, W, 3), got {frames.shape}")
    if len(frames) == 0:
        raise ValueError("no frames")
    return frames.astype(np.uint8, copy=False)


def _bin_lookup(bins: int, of_range: int) -> np.ndarray:
    """Bin of each 8-bit value: value * bins // 256 (saturation and value)."""
    return np.arange(256, dtype=np.int64) * bins // of_range


# OpenCV hue is 0..179; shift by half a bin so reds on both sides of 0 share bin 0. Computed once
# for all 256 byte values with the float32 arithmetic the per-pixel version used.
_HUE_BIN = ((np.arange(256, dtype=np.float32) + 90.0 / HUE_BINS) % 180.0
            * HUE_BINS / 180.0).astype(np.int64)
_SAT_BIN, _VAL_BIN = _bin_lookup(SAT_BINS, 256), _bin_lookup(VAL_BINS, 256)


def _binned(values: np.ndarray, lookup: np.ndarray, bins: int) -> np.ndarray:
    """Counts of uint8 `values` per bin: a 256-bin count of the bytes, then summed by bin (the
    same counts as binning every pixel, without converting every pixel)."""
    per_byte = np.bincount(values, minlength=256)
    return np.bincount(lookup, weights=per_byte, minlength=bins + 1)[:bins]


def _hsv_hist(hsv: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hue (chromatic pixels only), saturation and value histograms as pixel shares."""
    h, s, v = (hsv[..., i].ravel() for i in range(3))
    n = h.size
    chromatic = (s >= _MIN_CHROMA) & (v >= _MIN_CHROMA)
    hue = _binned(h[chromatic], _HUE_BIN, HUE_BINS) / n
    sat = _binned(s, _SAT_BIN, SAT_BINS) / n
    val = _binned(v, _VAL_BIN, VAL_BINS) / n
    return hue, sat, val


def _colourfulness(rgb: np.ndarray) -> float:
    r, g, b = (rgb[..., i].astype(np.float32) for i in range(3))
    rg, yb = r - g, 0.5 * (r + g) - b
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def _shot_changes(hsv_frames: np.ndarray) -> int:
    hists = []
    for hsv in hsv_frames:
        hist = cv2.calcHist([hsv], [0, 1], None, [16, 8], [0, 180, 0, 256])
        hists.append(cv2.normalize(hist, hist).astype(np.float32))
    return sum(cv2.compareHist(a, b, cv2.HISTCMP_BHATTACHARYYA) > SHOT_CHANGE_DISTANCE
               for a, b in zip(hists, hists[1:]))


def visual_features(frames: np.ndarray, fps: float = 1.0) -> np.ndarray:
    """The `VISUAL_NAMES` vector (float32, `VISUAL_DIM`) of RGB frames sampled at `fps`."""
    frames = _check(frames)
    hsv = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2HSV) for f in frames])
    gray = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])
    hue, sat, val = _hsv_hist(hsv)

    gray_f = gray.astype(np.float32) / 255.0
    frame_brightness = gray_f.mean(axis=(1, 2))
    contrast = gray_f.std(axis=(1, 2)).mean()
    edges = np.mean([(cv2.Canny(g, 100, 200) > 0).mean() for g in gray])
    colourfulness = np.mean([_colourfulness(f) for f in frames]) / 100.0
    if len(frames) > 1:
        diffs = np.abs(np.diff(gray_f, axis=0)).mean(axis=(1, 2))
        motion_mean, motion_std = diffs.mean(), diffs.std()
        # N samples span N / fps seconds of video (each sample stands for 1 / fps seconds).
        shot_rate = _shot_changes(hsv) * fps / len(frames)
    else:
        motion_mean = motion_std = shot_rate = 0.0

    vector = np.concatenate([
        hue, sat, val,
        [frame_brightness.mean(), frame_brightness.std(), contrast, edges, colourfulness,
         motion_mean, motion_std, shot_rate],
    ]).astype(np.float32)
    assert vector.shape == (VISUAL_DIM,)
    return np.nan_to_num(vector, nan=0.0, posinf=0.0, neginf=0.0)


def thumbnail(frames: np.ndarray, side: int = 16) -> np.ndarray:
    """The frame nearest the middle, area-resized to side x side: float32 (side*side*3,) in [0, 1],
    row-major with RGB last (reshape to (side, side, 3))."""
    frames = _check(frames)
    middle = frames[len(frames) // 2]
    small = cv2.resize(middle, (side, side), interpolation=cv2.INTER_AREA)
    return (small.astype(np.float32) / 255.0).reshape(-1)
