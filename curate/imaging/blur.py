"""Edge sharpness: how steep an image's steepest edges are for their height, at a fixed working
resolution. The `blurry` check scores it; the scan computes it from its one decode.

The score is the 99th percentile, over edge pixels, of |gradient| / local luma range: the central
difference (a 2-pixel step) divided by max - min over the surrounding 5x5 window, on the luma
image scaled down to a long side of at most `WORKING_SIDE` pixels. A step edge one pixel wide
scores about 1 (up to ~1.4 on diagonals); a Gaussian blur of sigma s pixels spreads every edge
over ~2.5 s pixels and brings the steepest ones down towards 0.5. Because the gradient is divided
by the range of the same neighbourhood, neither the image's contrast nor its exposure moves the
score, and because a high percentile is taken, a photo whose subject alone is in focus (shallow
depth of field) still scores as sharp.

Edge pixels are those whose 5x5 range exceeds `MIN_RANGE` luma levels; an image with fewer than
`MIN_EDGES` of them (flat, or blurred to nothing) scores 0.

The measurement needs enough pixels: the scan decodes JPEGs at the smallest DCT scale that keeps
both sides >= scan.decode_size (default 256), which leaves a 4:3 photo at least 341x256 and still
decodes a 12 MP photo at 1/8 scale (500x375). The `blurry` threshold was calibrated that way
(benchmarks/blur.py); a smaller decode_size measures blur on fewer pixels, and the threshold no
longer holds.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

WORKING_SIDE = 512  # long side of the image the score is measured on (never upscaled)
WINDOW = 5  # side of the square the local range is taken over
MIN_RANGE = 20.0  # luma levels (0-255): a pixel whose window spans less is not on an edge
MIN_EDGES = 32  # fewer edge pixels than this: no edge at all, score 0
PERCENTILE = 99.0


def working_luma(im: Image.Image) -> np.ndarray:
    """The luma of an 8-bit 'RGB' or 'L' image, scaled down to a long side of WORKING_SIDE: uint8 (H, W)."""
    gray = im if im.mode == "L" else im.convert("L")
    w, h = gray.size
    scale = WORKING_SIDE / max(w, h)
    if scale < 1:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        gray = gray.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.asarray(gray)


def _window_extreme(a: np.ndarray, op: np.ufunc) -> np.ndarray:
    """`op` (np.maximum / np.minimum) over every WINDOW x WINDOW square of `a` (valid positions only)."""
    k = WINDOW - 1
    rows = a[:, : a.shape[1] - k]
    for i in range(1, WINDOW):
        rows = op(rows, a[:, i: a.shape[1] - k + i])
    out = rows[: rows.shape[0] - k]
    for i in range(1, WINDOW):
        out = op(out, rows[i: rows.shape[0] - k + i])
    return out


def edge_sharpness(luma: np.ndarray) -> float:
    """The score of one uint8 luma image (H, W); see the module doc. Higher = sharper."""
    if min(luma.shape) < WINDOW + 2:
        return 0.0
    h, w = luma.shape
    m = WINDOW // 2  # the window's centre sits m pixels in from the valid region's border
    spread = _window_extreme(luma, np.maximum) - _window_extreme(luma, np.minimum)
    edges = spread > MIN_RANGE
    n = int(np.count_nonzero(edges))
    if n < MIN_EDGES:
        return 0.0
    # int16 differences over the whole image, floats only on the edge pixels: a third of the float work
    f = luma.astype(np.int16)
    gx = (f[m:-m, m + 1: w - m + 1] - f[m:-m, m - 1: w - m - 1])[edges].astype(np.float32)
    gy = (f[m + 1: h - m + 1, m:-m] - f[m - 1: h - m - 1, m:-m])[edges].astype(np.float32)
    s = spread[edges].astype(np.float32)
    ratio2 = (gx * gx + gy * gy) / (s * s)  # squared: the percentile commutes with sqrt
    k = int(round(PERCENTILE / 100 * (n - 1)))
    return float(np.sqrt(np.partition(ratio2, k)[k]))
