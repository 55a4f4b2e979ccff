"""Cheap image-quality statistics for a batch of thumbnails, vectorised.

The validate stage scores these; computing them in the scan keeps validation free of a second
decode.
"""
from __future__ import annotations

import cv2
import numpy as np

_QUANTILES = np.array([0.05, 0.5, 0.95])
# The 4-neighbour Laplacian; on uint8 its values are integers within +-1020 (exact in int16).
_LAPLACIAN = np.array([[0, -1, 0], [-1, 4, -1], [0, -1, 0]], dtype=np.float32)
# Images computed at a time: each temporary is then at most a few MB (64x64 thumbnails), stays in
# cache and is reused by malloc instead of being mapped afresh (a partition at once is ~2x slower).
_CHUNK = 128


def quality_stats(rgb: np.ndarray, gray: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image statistics of uint8 RGB thumbnails (N, H, W, 3) and their uint8 luma (N, H, W), N >= 1.

    brightness_p05/p50/p95: luma percentiles (0-255); contrast: luma standard deviation;
    entropy: of the 256-bin luma histogram (bits, 0-8); sharpness: variance of the 4-neighbour
    Laplacian of luma (detail at 64 px; the blur score is `curate.imaging.blur`'s);
    channel_spread: mean of max(R,G,B) - min(R,G,B) scaled to 0-1 (0 = grayscale, even when
    stored as RGB). All float32 (N,).
    """
    parts = [_chunk_stats(rgb[s:s + _CHUNK], gray[s:s + _CHUNK]) for s in range(0, len(gray), _CHUNK)]
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def _chunk_stats(rgb: np.ndarray, gray: np.ndarray) -> dict[str, np.ndarray]:
    """`quality_stats` of a few images."""
    n, h, w = gray.shape
    hist = _histograms(gray)
    cdf = np.cumsum(hist, axis=1)
    total = cdf[:, -1:]
    pct = [(cdf < q * total).sum(axis=1).astype(np.float32) for q in _QUANTILES]
    return {
        "brightness_p05": pct[0], "brightness_p50": pct[1], "brightness_p95": pct[2],
        "contrast": np.sqrt(_variance(gray.astype(np.float32).reshape(n, h * w))),
        "entropy": _entropy(hist, h * w).astype(np.float32),
        "sharpness": _variance(_laplacian(gray).reshape(n, -1)),
        "channel_spread": _channel_spread(rgb).astype(np.float32),
    }


def _histograms(gray: np.ndarray) -> np.ndarray:
    """The 256-bin histogram of each uint8 image (N, H, W): int64 (N, 256). One bincount per image
    (one over the whole batch needs an int64 index per pixel, slower)."""
    flat = gray.reshape(len(gray), -1)
    hist = np.empty((len(gray), 256), dtype=np.int64)
    for i, pixels in enumerate(flat):
        hist[i] = np.bincount(pixels, minlength=256)
    return hist


def _entropy(hist: np.ndarray, pixels: int) -> np.ndarray:
    """Entropy in bits of each histogram (N, 256) of `pixels` pixels: float64 (N,).

    -sum(p * log2(p)) over the non-empty bins, p = count / pixels; each term depends only on the
    count, so it is computed once per possible count (0..pixels) and looked up."""
    p = np.arange(pixels + 1, dtype=np.int64) / np.int64(pixels)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log2(p), 0.0)
    return -terms[hist].sum(axis=1)


def _variance(x: np.ndarray) -> np.ndarray:
    """Each row's variance of a float32 (N, M) array, overwriting `x`: float32 (N,).

    The same reductions and divisions as numpy's `x.var(axis=1)` (`numpy._core._methods._var`),
    so the same float32 to the bit, without its temporaries."""
    count = np.intp(x.shape[1])
    mean = np.add.reduce(x, axis=1, keepdims=True)
    np.true_divide(mean, count, out=mean, casting="unsafe")
    np.subtract(x, mean, out=x)
    np.square(x, out=x)
    var = np.add.reduce(x, axis=1)
    return np.true_divide(var, count, out=var, casting="unsafe")


def _laplacian(gray: np.ndarray) -> np.ndarray:
    """The 4-neighbour Laplacian of each uint8 image (N, H, W) inside its 1-pixel border: float32
    (N, H-2, W-2). The images are filtered as one tall image: the rows kept never read a
    neighbouring image's pixels."""
    n, h, w = gray.shape
    lap = cv2.filter2D(np.ascontiguousarray(gray).reshape(n * h, w), cv2.CV_16S, _LAPLACIAN).reshape(n, h, w)
    return lap[:, 1:-1, 1:-1].astype(np.float32)


def _channel_spread(rgb: np.ndarray) -> np.ndarray:
    """Mean over each RGB image (N, H, W, 3) of max(R,G,B) - min(R,G,B), scaled to 0-1: float64 (N,).

    The channels are first made contiguous planes (a strided max/min is slower); the per-image
    sums are exact integers, so the mean is numpy's uint8 mean to the bit."""
    planes = np.ascontiguousarray(rgb.reshape(len(rgb), -1, 3).transpose(0, 2, 1))
    r, g, b = planes[:, 0], planes[:, 1], planes[:, 2]
    spread = np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)
    sums = spread.sum(axis=1, dtype=np.uint32)  # at most 255 per pixel: exact below 16 M pixels
    return sums / np.intp(planes.shape[2]) / 255.0
