"""Blur: the edge-sharpness measure, and `blurry` through the CLI on real photos."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageFilter

from curate.cli import main
from curate.imaging.blur import (
    MIN_EDGES,
    MIN_RANGE,
    WINDOW,
    WORKING_SIDE,
    _kth_smallest_edge,
    edge_sharpness,
    working_luma,
)
from curate.validate.checks import CHECKS

from conftest import SAMPLE, encode, write

THRESHOLD = CHECKS.get("blurry").threshold
PHOTO = SAMPLE / "train" / "coffee" / "coffee_01.jpg"  # 195x173, a real photograph


def _astronaut() -> Image.Image:
    import skimage.data

    return Image.fromarray(skimage.data.astronaut())  # 512x512


def score(im: Image.Image) -> float:
    return edge_sharpness(working_luma(np.asarray(im.convert("RGB"))))


def test_step_edge_scores_one_and_flat_scores_zero():
    step = np.zeros((40, 40), np.uint8)
    step[:, 20:] = 200
    assert score(Image.fromarray(step)) == pytest.approx(1.0)
    assert score(Image.new("L", (40, 40), 128)) == 0.0  # no edge at all
    assert score(Image.new("L", (4, 4), 128)) == 0.0  # smaller than the window


def test_blur_lowers_the_score_and_contrast_does_not_move_it():
    photo = _astronaut()
    sharp = score(photo)
    blurred = [score(photo.filter(ImageFilter.GaussianBlur(r))) for r in (1.5, 3, 6)]
    assert sharp > THRESHOLD > blurred[1]
    assert sharp > blurred[0] > blurred[1] > blurred[2]
    a = np.asarray(photo, dtype=np.float32)
    halved = Image.fromarray((a * 0.5 + 64).astype(np.uint8))  # half the contrast, brighter
    assert score(halved) == pytest.approx(sharp, abs=0.05)


def plain_score(luma: np.ndarray) -> float:
    """The module doc's definition written out in NumPy: every edge pixel's float32 ratio, one partition."""
    windows = np.lib.stride_tricks.sliding_window_view(luma, (WINDOW, WINDOW))
    spread = (windows.max(axis=(2, 3)) - windows.min(axis=(2, 3))).astype(np.float32)
    f, m = luma.astype(np.float32), WINDOW // 2
    gx = f[m:-m, m + 1:f.shape[1] - m + 1] - f[m:-m, m - 1:f.shape[1] - m - 1]
    gy = f[m + 1:f.shape[0] - m + 1, m:-m] - f[m - 1:f.shape[0] - m - 1, m:-m]
    edges = spread > MIN_RANGE
    n = int(edges.sum())
    if n < MIN_EDGES:
        return 0.0
    ratio2 = (gx[edges] ** 2 + gy[edges] ** 2) / spread[edges] ** 2
    k = int(round(0.99 * (n - 1)))
    return float(np.sqrt(np.partition(ratio2, k)[k]))


def test_the_score_is_exactly_the_plain_definition():
    """OpenCV's passes and the thresholded percentile give the same float as the definition."""
    photos = [Image.open(PHOTO).convert("RGB"), _astronaut()]
    for photo in photos:
        for im in [photo, photo.resize((500, 375)), *(photo.filter(ImageFilter.GaussianBlur(r)) for r in (1, 3))]:
            luma = working_luma(np.asarray(im))
            assert edge_sharpness(luma) == plain_score(luma)
    noise = np.random.default_rng(0).integers(0, 256, (9, 40), dtype=np.uint8)
    assert edge_sharpness(noise) == plain_score(noise) > 0


def test_the_percentile_falls_back_where_the_sample_misses_the_top():
    """Edge pixels none of the sampled rows hold, largest values the sample misses, or a sample
    holding only the largest values (its threshold leaves too few pixels): still the k-th
    smallest of all the edge pixels."""
    rng = np.random.default_rng(1)
    shape = (60, 80)
    every = np.full(shape, 255, np.uint8)
    every[5] = every[7] = 0
    unsampled = np.zeros(shape, np.uint8)
    unsampled[1::4] = 255
    rows, grid = np.zeros(shape, bool), np.zeros(shape, bool)
    rows[1::4] = True  # rows the sample skips
    grid[::4, ::4] = True  # exactly the sampled pixels
    random_edges = (rng.random(shape) < 0.3).astype(np.uint8) * 255
    for edges, largest in ((unsampled, rows), (every, rows), (every, grid), (random_edges, rows)):
        values = rng.random(shape).astype(np.float32) + np.where(largest, np.float32(10), np.float32(0))
        ratio2 = np.where(edges > 0, values, np.float32(0))
        ratio2[7, edges[7] == 0] = np.nan  # off the edges: 0 where there is a gradient, NaN where no range
        on = values[edges > 0]
        for k in (0, len(on) // 2, int(round(0.99 * (len(on) - 1))), len(on) - 1):
            assert _kth_smallest_edge(ratio2, edges, len(on), k) == np.partition(on, k)[k]


def test_working_luma_scales_down_only():
    assert working_luma(np.zeros((640, 1024, 3), np.uint8)).shape == (320, WORKING_SIDE)
    assert working_luma(np.zeros((173, 195, 3), np.uint8)).shape == (173, 195)


def test_working_luma_is_pillows_luma_within_a_level_and_the_score_within_1e_3():
    """RGB, the decoder's RGBX and grey pixels give the same luma; OpenCV's rounding of the
    601 weights moves a pixel by at most one level from Pillow's "L", and the score by < 1e-3."""
    for photo in (Image.open(PHOTO).convert("RGB"), _astronaut()):
        rgb = np.asarray(photo)
        rgbx = np.asarray(photo.convert("RGBX"))
        pillow = np.asarray(photo.convert("L"))
        luma = working_luma(rgb)
        np.testing.assert_array_equal(working_luma(rgbx), luma)
        np.testing.assert_array_equal(working_luma(pillow), pillow)
        assert np.abs(luma.astype(int) - pillow).max() <= 1
        assert abs(edge_sharpness(luma) - edge_sharpness(pillow)) < 1e-3


@pytest.mark.parametrize("name", ["sample_data", "astronaut"])
def test_cli_flags_the_blurred_copy_not_the_photo(tmp_path, runner, name):
    photo = Image.open(PHOTO).convert("RGB") if name == "sample_data" else _astronaut()
    src = tmp_path / "src"
    write(src / "a" / "photo.jpg", encode(photo, quality=90))
    write(src / "a" / "photo_r3.jpg", encode(photo.filter(ImageFilter.GaussianBlur(3)), quality=90))
    out = tmp_path / "out"
    for cmd in (["scan", str(src), "-o", str(out), "--workers", "1"], ["validate", str(out), "--workers", "1"]):
        result = runner.invoke(main, cmd)
        assert result.exit_code == 0, result.output
    issues = pq.read_table(out / "issues").to_pandas()
    blurry = issues[issues["check"] == "blurry"]
    assert list(blurry["path"]) == ["a/photo_r3.jpg"]
    assert blurry["threshold"].iloc[0] == THRESHOLD and blurry["score"].iloc[0] < THRESHOLD


def test_an_older_manifest_without_the_column_is_rescanned(tmp_path, runner):
    """A manifest written before `edge_sharpness` existed: validate says blur was not scored (no
    traceback); the next scan decodes those files again and fills the column."""
    src = tmp_path / "src"
    write(src / "a" / "photo_r3.jpg", encode(Image.open(PHOTO).filter(ImageFilter.GaussianBlur(3)), quality=90))
    out = tmp_path / "out"
    assert runner.invoke(main, ["scan", str(src), "-o", str(out), "--workers", "1"]).exit_code == 0
    part = next(Path(out / "manifest").glob("part-*.parquet"))
    pq.write_table(pq.read_table(part).drop(["edge_sharpness"]), part)  # as an older curate wrote it
    result = runner.invoke(main, ["validate", str(out), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "rerun `curate scan`" in result.output
    assert "blurry" not in set(pq.read_table(out / "issues").column("check").to_pylist())
    result = runner.invoke(main, ["scan", str(src), "-o", str(out), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert pq.read_table(out / "manifest").column("edge_sharpness").null_count == 0
    assert runner.invoke(main, ["validate", str(out), "--workers", "1"]).exit_code == 0
    assert "blurry" in set(pq.read_table(out / "issues").column("check").to_pylist())
