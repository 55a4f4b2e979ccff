"""Augmented pixels -> image bytes (Pillow, deterministic). Sources are brought to the output
size before batching (`curate.imaging.pixels.square_rgb`), so every batch is full whatever the
source sizes.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

EXTENSIONS = {"jpeg": "jpg", "png": "png"}


def encode(pixels: np.ndarray, fmt: str, quality: int) -> bytes:
    """uint8 array (H, W, 3) -> JPEG (at `quality`) or PNG bytes."""
    buf = io.BytesIO()
    image = Image.fromarray(pixels, "RGB")
    if fmt == "png":
        image.save(buf, "PNG")
    else:
        image.save(buf, "JPEG", quality=quality)
    return buf.getvalue()
