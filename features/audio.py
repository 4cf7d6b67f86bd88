"""Audio features from the mono track that one decode produced: MFCC statistics, loudness,
silence, and a fixed-length MFCC sequence for the model's learned audio branch.
"""

from __future__ import annotations

import functools
import warnings

import librosa
import numpy as np

N_MFCC = 20
MFCC_STEPS = 8      # time segments of the fixed-length MFCC sequence
N_FFT = 2048
HOP = 512
SILENCE_DBFS = -50.0  # RMS below this (full scale = 0 dB) counts as silence
_FLOOR_DB = -100.0    # log of digital silence; keeps dB values finite

AUDIO_NAMES: tuple[str, ...] = (
    *(f"mfcc_mean_{k}" for k in range(N_MFCC)),
    *(f"mfcc_std_{k}" for k in range(N_MFCC)),
    *(f"mfcc_delta_std_{k}" for k in range(N_MFCC)),
    "loudness_db_mean",  # mean frame RMS in dBFS
    "loudness_db_std",
    "silence_ratio",     # share of frames quieter than SILENCE_DBFS
    # segment-major: reshape this tail to (MFCC_STEPS, N_MFCC)
    *(f"mfcc_sequence_{t}_{k}" for t in range(MFCC_STEPS) for k in range(N_MFCC)),
)
AUDIO_DIM = len(AUDIO_NAMES)
# Where the MFCC sequence sits in the vector, for models that read it as a (steps, n_mfcc) grid.
MFCC_SEQUENCE_SLICE = slice(AUDIO_DIM - MFCC_STEPS * N_MFCC, AUDIO_DIM)


def _prepare(audio: np.ndarray) -> np.ndarray:
    """Finite float32 mono, zero-padded to one FFT window so very short clips still work."""
    audio = np.nan_to_num(np.asarray(audio, dtype=np.float32).reshape(-1), nan=0.0,
                          posinf=0.0, neginf=0.0)
    if audio.size < N_FFT:
        audio = np.pad(audio, (0, N_FFT - audio.size))
    return audio


@functools.lru_cache(maxsize=8)
def _mel_basis(sr: int) -> np.ndarray:
    """The mel filter bank of `librosa.feature.mfcc` (its default slaney norm), built once per
    sample rate instead of once per clip (a few ms each)."""
    with warnings.catch_warnings():  # librosa warns about empty mel bands at low sample rates
        warnings.simplefilter("ignore", UserWarning)
        basis = librosa.filters.mel(sr=sr, n_fft=N_FFT, norm="slaney")
    basis.setflags(write=False)
    return basis


def _mfcc(audio: np.ndarray, sr: int) -> np.ndarray:
    """`librosa.feature.mfcc(y=audio, sr=sr, n_mfcc=N_MFCC, n_fft=N_FFT, hop_length=HOP)`, step by
    step as librosa computes it, with the mel filter bank cached."""
    power = np.abs(librosa.stft(audio, n_fft=N_FFT, hop_length=HOP)) ** 2.0
    mel = np.einsum("...ft,mf->...mt", power, _mel_basis(sr), optimize=True)
    return librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=N_MFCC)


def _segment_means(mfcc: np.ndarray, steps: int) -> np.ndarray:
    """Average (n_mfcc, T) into `steps` equal time segments -> (steps, n_mfcc); each segment gets at
    least one frame, so clips shorter than `steps` frames repeat frames instead of leaving holes."""
    t = mfcc.shape[1]
    edges = np.linspace(0, t, steps + 1)
    out = np.empty((steps, mfcc.shape[0]), dtype=np.float32)
    for i in range(steps):
        lo = min(int(edges[i]), t - 1)
        hi = max(int(edges[i + 1]), lo + 1)
        out[i] = mfcc[:, lo:hi].mean(axis=1)
    return out


def mfcc_sequence(audio: np.ndarray, sr: int, steps: int = MFCC_STEPS) -> np.ndarray:
    """The MFCC sequence averaged into `steps` equal segments: float32 (steps, N_MFCC)."""
    return _segment_means(_mfcc(_prepare(audio), sr), steps)


def _delta_std(mfcc: np.ndarray) -> np.ndarray:
    t = mfcc.shape[1]
    width = min(9, t if t % 2 else t - 1)  # librosa needs an odd width no longer than the clip
    if width < 3:
        return np.zeros(mfcc.shape[0], dtype=np.float32)
    return librosa.feature.delta(mfcc, width=width).std(axis=1)


def audio_features(audio: np.ndarray, sr: int) -> np.ndarray:
    """The `AUDIO_NAMES` vector (float32, `AUDIO_DIM`) of a mono float signal in [-1, 1]."""
    if sr <= 0:
        raise ValueError(f"bad sample rate {sr}")
    audio = _prepare(audio)
    mfcc = _mfcc(audio, sr)
    rms = librosa.feature.rms(y=audio, frame_length=N_FFT, hop_length=HOP)[0]
    rms_db = 20.0 * np.log10(np.maximum(rms, 10 ** (_FLOOR_DB / 20)))
    vector = np.concatenate([
        mfcc.mean(axis=1), mfcc.std(axis=1), _delta_std(mfcc),
        [rms_db.mean(), rms_db.std(), (rms_db < SILENCE_DBFS).mean()],
        _segment_means(mfcc, MFCC_STEPS).reshape(-1),
    ]).astype(np.float32)
    assert vector.shape == (AUDIO_DIM,)
    return np.nan_to_num(vector, nan=0.0, posinf=0.0, neginf=0.0)
