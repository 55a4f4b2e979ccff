"""Cheap image-quality statistics for a batch of thumbnails, vectorised.

The validate stage scores these; computing them in the scan keeps validation free of a second
decode.
"""
from __future__ import annotations

import numpy as np

_QUANTILES = np.array([0.05, 0.5, 0.95])


def quality_stats(rgb: np.ndarray, gray: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image statistics of uint8 RGB thumbnails (N, H, W, 3) and their uint8 luma (N, H, W).

    brightness_p05/p50/p95: luma percentiles (0-255); contrast: luma standard deviation;
    entropy: of the 256-bin luma histogram (bits, 0-8); sharpness: variance of the 4-neighbour
    Laplacian of luma (detail at 64 px; the blur score is `curate.imaging.blur`'s);
    channel_spread: mean of max(R,G,B) - min(R,G,B) scaled to 0-1 (0 = grayscale, even when
    stored as RGB).
    """
    n = len(gray)
    offsets = (256 * np.arange(n, dtype=np.int64))[:, None]
    hist = np.bincount((gray.reshape(n, -1) + offsets).ravel(), minlength=256 * n).reshape(n, 256)
    cdf = np.cumsum(hist, axis=1)
    total = cdf[:, -1:]
    pct = [(cdf < q * total).sum(axis=1).astype(np.float32) for q in _QUANTILES]
    p = hist / total
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(p > 0, p * np.log2(p), 0.0).sum(axis=1)
    f = gray.astype(np.float32)
    lap = 4 * f[:, 1:-1, 1:-1] - f[:, :-2, 1:-1] - f[:, 2:, 1:-1] - f[:, 1:-1, :-2] - f[:, 1:-1, 2:]
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    spread = (np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)).reshape(n, -1).mean(axis=1) / 255.0
    return {
        "brightness_p05": pct[0], "brightness_p50": pct[1], "brightness_p95": pct[2],
        "contrast": f.reshape(n, -1).std(axis=1),
        "entropy": entropy.astype(np.float32),
        "sharpness": lap.reshape(n, -1).var(axis=1),
        "channel_spread": spread.astype(np.float32),
    }
