"""Optional normalisation of shard images: odd modes and formats to RGB JPEG/PNG, resized.

Off by default (image bytes are copied as they are). When on, the choice is recorded in
dataset.json.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageOps

from curate.imaging import formats


@dataclass(frozen=True)
class Normalize:
    max_side: int  # 0 = keep the size
    format: str  # "jpeg" or "png"
    quality: int


def normalize(data: bytes, settings: Normalize) -> tuple[bytes, int, int]:
    """Re-encode `data` (frame 0, EXIF orientation applied) as RGB in the configured format."""
    from curate.imaging.probe import to_display

    with Image.open(io.BytesIO(data)) as im:
        im.seek(0)
        oriented = ImageOps.exif_transpose(im)
        shown = to_display(oriented, formats.png_bit_depth(data) or 8, "white")
        rgb = shown.convert("RGB")
    if settings.max_side and max(rgb.size) > settings.max_side:
        rgb.thumbnail((settings.max_side, settings.max_side), Image.Resampling.LANCZOS)
    return formats.encode(rgb, settings.format, settings.quality), rgb.width, rgb.height
