"""An optional pretrained frame encoder over the frames that one decode sampled: each frame goes
through a loaded TorchScript module and the per-frame outputs are mean-pooled into one vector.

Pure: takes the frames and an already loaded module (jobs/plumbing/frame_encoder.py finds, checks and loads
it once per worker). torch is imported only when an encoder is used.
"""

from __future__ import annotations

import numpy as np


class FrameEncoderError(ValueError):
    """The encoder ran but its output cannot be pooled (wrong shape, not a tensor, not finite)."""


def frame_embedding(frames: np.ndarray, encoder, batch_size: int = 64) -> np.ndarray:
    """Mean over frames of `encoder(batch)`: float32 (D,).

    `frames` are uint8 (N, H, W, 3) RGB as decoded; the module gets float32 (n, 3, H, W) in
    [0, 1] at that size, n <= `batch_size`, and must return a tensor whose first dimension is n
    (one output per frame, any shape after it; it is flattened to D values before pooling).
    Runs on the CPU without autograd.
    """
    import torch

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"expected frames of shape (N, H, W, 3) with N > 0, got {frames.shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    total, count = None, 0
    with torch.inference_mode():
        for start in range(0, len(frames), batch_size):
            # A copy: decoded frames may sit in a read-only buffer, which torch will not wrap.
            chunk = np.array(frames[start:start + batch_size], dtype=np.uint8)
            batch = torch.from_numpy(chunk).permute(0, 3, 1, 2).to(torch.float32).div_(255.0)
            out = encoder(batch)
            if not isinstance(out, torch.Tensor) or out.ndim < 1 or out.shape[0] != len(chunk):
                shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise FrameEncoderError(f"frame encoder returned {shape} for {len(chunk)} frames; "
                                        "expected one output per frame (n, ...)")
            # float64 sums, so pooling many batches loses nothing to rounding
            summed = out.reshape(len(chunk), -1).to(torch.float64).sum(dim=0)
            total = summed if total is None else total + summed
            count += len(chunk)
    pooled = (total / count).to(torch.float32).numpy()
    if pooled.size == 0 or not np.isfinite(pooled).all():
        raise FrameEncoderError(f"frame encoder output is empty or not finite (size {pooled.size})")
    return pooled
