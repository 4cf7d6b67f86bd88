"""The optional pretrained frame encoder of the feature job: a TorchScript file named by
`--frame-encoder PATH` or `VREC_FRAME_ENCODER` (jobs/plumbing/config.py).

The driver checks it once before any video is decoded (`check_frame_encoder`: the file is read,
hashed, loaded and tried on blank frames, so a missing or broken file stops the stage with one
clear line instead of failing video by video); each Python worker then loads it once and keeps it
(`worker_frame_encoder`), as the text embedder is kept. The file's SHA-256 is stored with every
feature row, so a different encoder (even at the same path) makes the job extract every video again.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

from jobs.plumbing.stage import StageError


@dataclass(frozen=True)
class FrameEncoderSpec:
    """What the workers need to load the encoder the driver checked."""

    path: str     # absolute
    sha256: str   # of the file's bytes
    dim: int      # length of the pooled vector


def load_frame_encoder(path: str | Path):
    """(module, sha256 of the file) for a TorchScript file, on the CPU, in eval mode.

    The bytes are read once and hashed and loaded from memory, so the module is exactly what the
    hash names even if the file is replaced meanwhile.
    """
    import torch

    data = Path(path).read_bytes()
    with warnings.catch_warnings():
        # torch 2.13 deprecates TorchScript, but it is the file format deployments hand us.
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(io.BytesIO(data), map_location="cpu")
    module.eval()
    return module, hashlib.sha256(data).hexdigest()


def check_frame_encoder(path: str | Path, stage: str) -> FrameEncoderSpec:
    """On the driver: load the encoder and run it on two blank frames of the decode size.

    Raises StageError naming the path when the file is missing, is not TorchScript, or its output
    is not one finite vector per frame.
    """
    from features.extract import FRAME_SIZE
    from features.frame_embedding import frame_embedding

    resolved = Path(path).expanduser().resolve()
    if not resolved.is_file():
        raise StageError(stage, f"frame encoder {resolved} does not exist or is not a file "
                                "(--frame-encoder / VREC_FRAME_ENCODER)")
    try:
        module, sha = load_frame_encoder(resolved)
    # torch.jit.load reports a bad file with RuntimeError, ValueError or others depending on how it
    # is broken; every one of them means the same thing here: this file cannot be the encoder.
    except Exception as exc:  # noqa: BLE001
        raise StageError(stage, f"frame encoder {resolved} cannot be loaded with torch.jit.load "
                                f"(expected a TorchScript file from torch.jit.save): {exc}") from exc
    import numpy as np

    width, height = FRAME_SIZE
    try:
        dim = len(frame_embedding(np.zeros((2, height, width, 3), dtype=np.uint8), module))
    except Exception as exc:  # noqa: BLE001 - anything the module raises on valid input
        raise StageError(stage, f"frame encoder {resolved} fails on float (2, 3, {height}, {width}) "
                                f"frames in [0, 1]: {exc}") from exc
    return FrameEncoderSpec(path=str(resolved), sha256=sha, dim=dim)


_worker_encoder: tuple[str, object] | None = None  # (sha256, module) of this Python worker


def worker_frame_encoder(spec: FrameEncoderSpec):
    """The encoder, loaded once per Python worker (Spark reuses workers; loading can take seconds)."""
    global _worker_encoder
    if _worker_encoder is None or _worker_encoder[0] != spec.sha256:
        import torch

        module, sha = load_frame_encoder(spec.path)
        if sha != spec.sha256:
            raise RuntimeError(f"frame encoder {spec.path} changed during the run (sha256 {sha}, "
                               f"checked {spec.sha256}); run the stage again")
        # One file per core: more torch threads would only contend with the other workers.
        torch.set_num_threads(1)
        _worker_encoder = (sha, module)
    return _worker_encoder[1]
