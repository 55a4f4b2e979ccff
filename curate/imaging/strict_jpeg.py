"""Decode a JPEG the way a strict reader does: libjpeg-turbo (simplejpeg), its warnings as errors.

Pillow's decoder (libjpeg-turbo too) swallows libjpeg's warnings: a file cut inside the last
scan of a progressive JPEG, or bits flipped in the entropy-coded data, decodes to wrong pixels
with no complaint, while `djpeg -strict`, TensorFlow's `decode_jpeg` and OpenCV's strict reads
refuse it. `decode_pixels(data, mode, width, height, scale)` decodes through TurboJPEG with `strict=True`, at the same
reduced DCT scale as Pillow's `draft` (the pixels are identical to Pillow's at 1/1, 1/2, 1/4 and
1/8), so the scan still decodes each file once. What libjpeg reports becomes a `JpegDamage`:

* "Premature end of JPEG file": the file ends inside the entropy-coded data (truncated);
* "Corrupt JPEG data: N extraneous bytes before marker 0xXX": bytes libjpeg skipped. Between
  header segments the pixels are right (a warning, `jpeg.extraneous` in the structure checks,
  which decide); after entropy-coded data the decoder has fallen out of step with it (corrupt);
* anything else ("premature end of data segment", "bad Huffman table", ...): corrupt.

8-bit RGB, greyscale and CMYK JPEGs take this path (CMYK and YCCK files come out of libjpeg
as stored; Pillow reads them with Adobe's inverted convention, and so does this decode); the rare
files whose header TurboJPEG does not handle (unusual sampling factors or colourspaces) keep
Pillow's decode and the structure checks.
"""
from __future__ import annotations

import io
import re

import numpy as np
import simplejpeg
from PIL import Image

_COLORSPACES = {"RGB": "RGBX", "L": "GRAY", "CMYK": "CMYK"}
_EXTRANEOUS = re.compile(r"extraneous bytes before marker")
_TRUNCATED = "Premature end of JPEG file"
# what TurboJPEG says of a header it does not handle (colourspace, sampling, precision, process):
# not damage, so Pillow decodes the file instead
_NOT_FOR_TURBOJPEG = ("Could not determine", "Invalid data returned in header", "Unsupported")


class JpegDamage(Exception):
    """libjpeg refused the file in strict mode; `truncated` when the file ends inside the scan."""

    @property
    def truncated(self) -> bool:
        return _TRUNCATED in str(self)

    @property
    def skipped_bytes(self) -> bool:
        """libjpeg skipped bytes in front of a marker (between header segments: harmless)."""
        return _EXTRANEOUS.search(str(self)) is not None


def draft_scale(width: int, height: int, decode_size: int) -> int:
    """The DCT scale (1, 2, 4 or 8) Pillow's `draft` picks to keep both sides >= `decode_size`."""
    fits = min(width // decode_size, height // decode_size)
    return next((s for s in (8, 4, 2) if fits >= s), 1)


def decodable(im: Image.Image) -> bool:
    """Whether this opened JPEG takes the strict path (8-bit RGB, greyscale or CMYK)."""
    return im.format == "JPEG" and im.mode in _COLORSPACES


def decode_pixels(data: bytes, mode: str, width: int, height: int, scale: int, *,
                  strict: bool = True) -> np.ndarray | None:
    """The JPEG's pixels at 1/`scale`, as libjpeg gives them: (H, W) for Pillow's `mode` "L", (H, W, 4)
    for "RGB" (RGBX: a padding byte after each pixel, the layout Pillow keeps RGB in, so `image`
    wraps it without a copy) and "CMYK" (as stored); None where TurboJPEG cannot read its header
    (the caller decodes with Pillow). Raises `JpegDamage` in strict mode."""
    try:
        pixels = simplejpeg.decode_jpeg(data, _COLORSPACES[mode], strict=strict,
                                        min_width=-(-width // scale), min_height=-(-height // scale))
    except ValueError as exc:
        if any(words in str(exc) for words in _NOT_FOR_TURBOJPEG):
            return None
        raise JpegDamage(str(exc)) from None
    return pixels[..., 0] if mode == "L" else pixels


def image(pixels: np.ndarray, mode: str, data: bytes) -> Image.Image:
    """A Pillow image of `decode_pixels`' result for `mode`: over the same memory for "L" and for
    "RGB" (which comes as "RGBX", the same pixels); a CMYK one carries the header's `info` (its ICC
    profile converts it for display)."""
    h, w = pixels.shape[:2]
    if mode == "L":
        return Image.frombuffer("L", (w, h), pixels, "raw", "L", 0, 1)
    if mode == "RGB":
        return Image.frombuffer("RGBX", (w, h), pixels, "raw", "RGBX", 0, 1)
    image = Image.fromarray(np.subtract(255, pixels, dtype=np.uint8), mode)  # Adobe's inverted CMYK, as Pillow reads it
    with Image.open(io.BytesIO(data)) as header:
        image.info = dict(header.info)
    return image


def decode(data: bytes, mode: str, width: int, height: int, scale: int, *, strict: bool = True) -> Image.Image | None:
    """`decode_pixels` as a Pillow `image` (RGB as "RGBX"), or None."""
    pixels = decode_pixels(data, mode, width, height, scale, strict=strict)
    return None if pixels is None else image(pixels, mode, data)
