"""The scan worker's quality statistics are the straightforward formulas' values, to the bit.

`quality_stats` computes in chunks, with OpenCV's filter, per-image histograms and in-place
variances; `reference_stats` below is the plain numpy definition (the code it replaced). Every
float32 must be the same bits, so a manifest written before and after holds the same values.
"""
from __future__ import annotations

import numpy as np
import pytest

from curate.imaging.hashes import THUMB
from curate.imaging.quality import quality_stats

from conftest import photo_like

_QUANTILES = np.array([0.05, 0.5, 0.95])


def reference_stats(rgb: np.ndarray, gray: np.ndarray) -> dict[str, np.ndarray]:
    """The definition: whole-batch numpy, as `curate.imaging.quality` computed it before."""
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


def thumbnails(n: int, size: tuple[int, int] = (THUMB, THUMB), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n RGB images and their luma, laid out as `fingerprint` passes them (views into one buffer of
    RGB then luma per image): photo-like, uniform noise, flat (0, 255, mid), one bright pixel,
    a 0/255 checkerboard (the Laplacian's extremes), grey stored as RGB, a gradient; cycled."""
    h, w = size
    rng = np.random.default_rng(seed)
    both = np.empty((n, h * w * 4), dtype=np.uint8)
    rgb, gray = both[:, :h * w * 3].reshape(n, h, w, 3), both[:, h * w * 3:].reshape(n, h, w)
    checker = (np.indices((h, w)).sum(axis=0) % 2 * 255).astype(np.uint8)
    for i in range(n):
        kind = i % 9
        if kind == 0:
            img = np.asarray(photo_like(seed * 1000 + i, (w, h)))
            rgb[i], gray[i] = img, np.asarray(photo_like(seed * 1000 + i, (w, h)).convert("L"))
            continue
        if kind == 1:
            rgb[i], gray[i] = rng.integers(0, 256, (h, w, 3)), rng.integers(0, 256, (h, w))
            continue
        plane = {2: np.zeros((h, w)), 3: np.full((h, w), 255), 4: np.full((h, w), 128), 6: checker,
                 7: rng.integers(0, 256, (h, w)), 8: np.linspace(0, 255, h * w).reshape(h, w)}.get(kind)
        if plane is None:  # one bright pixel on black
            plane = np.zeros((h, w))
            plane[h // 2, w // 3] = 255
        gray[i] = plane
        rgb[i] = gray[i][..., None] if kind != 6 else np.stack([checker, 255 - checker, checker], axis=-1)
    return rgb, gray


def assert_same_bits(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert list(got) == list(want)
    for name in want:
        assert got[name].dtype == want[name].dtype == np.float32, name
        assert got[name].shape == want[name].shape, name
        assert np.array_equal(got[name].view(np.uint32), want[name].view(np.uint32)), name


@pytest.mark.parametrize("n", [1, 50, 300])  # 300: two full chunks and a partial one
def test_quality_stats_are_the_reference_to_the_bit(n):
    rgb, gray = thumbnails(n, seed=n)
    assert_same_bits(quality_stats(rgb, gray), reference_stats(rgb, gray))


def test_quality_stats_of_other_sizes_and_contiguous_arrays():
    rgb, gray = thumbnails(20, size=(17, 23), seed=7)
    assert_same_bits(quality_stats(rgb, gray), reference_stats(rgb, gray))
    rgb, gray = (np.ascontiguousarray(a) for a in thumbnails(20, seed=8))
    assert_same_bits(quality_stats(rgb, gray), reference_stats(rgb, gray))


def test_quality_stats_of_extremes_are_the_known_values():
    rgb, gray = thumbnails(9)
    stats = quality_stats(rgb, gray)
    flat_black, flat_white, checker = 2, 3, 6
    assert stats["sharpness"][flat_black] == stats["contrast"][flat_white] == stats["entropy"][flat_black] == 0
    assert stats["brightness_p50"][flat_white] == 255 and stats["channel_spread"][flat_black] == 0
    assert stats["sharpness"][checker] == 1020 ** 2  # every interior pixel is +-1020
    assert stats["entropy"][checker] == 1 and stats["channel_spread"][checker] == 1

