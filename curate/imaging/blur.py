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

import cv2
import numpy as np
from PIL import Image

WORKING_SIDE = 512  # long side of the image the score is measured on (never upscaled)
WINDOW = 5  # side of the square the local range is taken over
MIN_RANGE = 20.0  # luma levels (0-255): a pixel whose window spans less is not on an edge
MIN_EDGES = 32  # fewer edge pixels than this: no edge at all, score 0
PERCENTILE = 99.0
SAMPLE = 4  # the percentile's threshold is drawn from every SAMPLE-th row and column...
MARGIN = 2  # ...aimed at MARGIN times the pixels above the percentile (a check, not a guess)
_WINDOW_KERNEL = np.ones((WINDOW, WINDOW), np.uint8)


def working_luma(pixels: np.ndarray) -> np.ndarray:
    """The luma of 8-bit pixels, (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBX, scaled down to a long
    side of WORKING_SIDE: uint8 (H, W). OpenCV's RGB-to-grey weights (ITU-R 601, as Pillow's "L");
    its fixed-point rounding differs from Pillow's by one level on a few pixels in 100,000, which
    moves the score by less than 1e-3 (benchmarks/blur.py holds the calibrated figures)."""
    if pixels.ndim == 2:
        gray = pixels
    else:
        gray = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY if pixels.shape[2] == 3 else cv2.COLOR_RGBA2GRAY)
    h, w = gray.shape
    scale = WORKING_SIDE / max(w, h)
    if scale < 1:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        gray = np.asarray(Image.fromarray(gray).resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0))
    return gray


def edge_sharpness(luma: np.ndarray) -> float:
    """The score of one uint8 luma image (H, W); see the module doc. Higher = sharper.

    OpenCV's compiled passes over the valid region (5x5 max - min, central differences, the
    squared ratio in float32); the percentile is then taken among the few edge pixels above a
    threshold drawn from a subsample, checked to hold the percentile and otherwise among all
    edge pixels: the same float as a plain partition of every edge pixel's ratio.
    """
    if min(luma.shape) < WINDOW + 2:
        return 0.0
    m = WINDOW // 2  # the window's centre sits m pixels in from the valid region's border
    valid = (slice(m, -m), slice(m, -m))
    spread = cv2.morphologyEx(luma, cv2.MORPH_GRADIENT, _WINDOW_KERNEL)[valid]  # 5x5 max - min
    edges = cv2.threshold(spread, MIN_RANGE, 255, cv2.THRESH_BINARY)[1]  # 255 where spread > MIN_RANGE
    n = cv2.countNonZero(edges)
    if n < MIN_EDGES:
        return 0.0
    # |gradient|^2 on the edge pixels, 0 elsewhere: exact integers in float32 (at most 2 * 255^2)
    grad2 = np.zeros(spread.shape, np.float32)
    for dx, dy in ((1, 0), (0, 1)):
        cv2.accumulateSquare(cv2.Sobel(luma, cv2.CV_32F, dx, dy, ksize=1)[valid], grad2, edges)
    # squared: the percentile commutes with sqrt. Off the edges 0, or NaN where the range is 0.
    ratio2 = cv2.divide(grad2, cv2.multiply(spread, spread, dtype=cv2.CV_32F))
    k = int(round(PERCENTILE / 100 * (n - 1)))
    return float(np.sqrt(_kth_smallest_edge(ratio2, edges, n, k)))


def _kth_smallest_edge(ratio2: np.ndarray, edges: np.ndarray, n: int, k: int) -> np.float32:
    """The k-th smallest (0-based) of `ratio2` over the n pixels where `edges` is set.

    The n - k largest are what matter: a threshold t > 0 low enough that at least n - k edge
    pixels reach it (off the edges `ratio2` is 0 or NaN, below any t) leaves the answer at the
    same rank from the top among the pixels >= t. t comes from every SAMPLE-th row and column,
    aimed at MARGIN times n - k pixels; where too few reach it, every edge pixel is partitioned.
    """
    above = n - k
    sample = ratio2[::SAMPLE, ::SAMPLE][edges[::SAMPLE, ::SAMPLE] > 0]
    j = int(sample.size * (1 - MARGIN * above / n))
    if 0 <= j < sample.size:
        t = np.partition(sample, j)[j]
        if t > 0:
            top = ratio2[ratio2 >= t]
            if top.size >= above:
                return np.partition(top, top.size - above)[top.size - above]
    return np.partition(ratio2[edges > 0], k)[k]
