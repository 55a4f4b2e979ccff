"""Image bytes -> a square of RGB pixels at a given size: what models and augmentations consume.

EXIF orientation applied, frame 0, converted to 8-bit RGB the way the scan sees the image (CMYK
through its ICC profile, 16-bit scaled, alpha over the scan's background), the shorter side
resized to `size` and the centre cropped to a square. JPEGs are decoded at the smallest DCT
scale that keeps both sides at least `size` (`Image.draft`), so a large photo costs a fraction
of a full decode.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps

from curate.imaging.formats import png_bit_depth
from curate.imaging.probe import to_display


def square_rgb(data: bytes, size: int, background: str) -> np.ndarray:
    """Image bytes -> uint8 array (size, size, 3)."""
    with Image.open(io.BytesIO(data)) as im:
        im.seek(0)
        if im.format == "JPEG":
            im.draft(None, (size, size))
        oriented = ImageOps.exif_transpose(im)
        rgb = to_display(oriented, png_bit_depth(data) or 8, background).convert("RGB")
    fitted = ImageOps.fit(rgb, (size, size), Image.Resampling.BICUBIC)
    return np.array(fitted, dtype=np.uint8)
