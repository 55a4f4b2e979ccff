"""Container-structure checks that strict decoders agree with, over bytes already in memory.

Pillow decodes files that libpng, libjpeg-turbo (strict), giflib and libtiff reject: PNG chunks
with a wrong CRC, JPEGs whose restart markers are out of sequence, GIFs without a trailer, and
so on. `inspect(data, decoded)` walks the container of the bytes the scan has already read
(one pass, no second decode) and returns `Finding`s:

* severity `error` where the pixels are wrong or a strict decoder refuses the file: the scan
  row becomes `corrupt`, the message names the chunk or marker and its byte offset;
* severity `warning` where the file breaks its format's rules but decoders still produce the
  right pixels (an ancillary chunk out of place, a duplicate sRGB): recorded in the manifest's
  `structure_warnings` and reported by the `nonconforming` validate check.

Each format's module documents its rules with the strict decoder's behaviour.
"""
from __future__ import annotations

from typing import Callable

from PIL import Image

from curate.imaging.structure import gif, jpeg, png, tiff, webp
from curate.imaging.structure.finding import Finding

__all__ = ["Finding", "inspect", "verdict"]

_CHECKS: dict[str, Callable[[bytes, Image.Image], list[Finding]]] = {
    "PNG": png.check, "JPEG": jpeg.check, "MPO": jpeg.check, "GIF": gif.check, "TIFF": tiff.check,
    "WEBP": webp.check,
}


def inspect(data: bytes, decoded: Image.Image, fmt: str | None = None) -> list[Finding]:
    """The structural findings for `data`, whose frame 0 is decoded into `decoded` (`fmt`, by
    default its `format`, chooses the rules; formats without rules here give no findings)."""
    check = _CHECKS.get(fmt or decoded.format or "")
    return check(data, decoded) if check else []


def verdict(findings: list[Finding]) -> tuple[str | None, list[str] | None]:
    """`inspect`'s findings summed up for a manifest row: (error message, warnings): the first
    error (and how many more), and every warning's message; None where there are none."""
    errors = [f.message for f in findings if f.error]
    warnings = [f.message for f in findings if not f.error]
    error = errors[0] + (f" (and {len(errors) - 1} more structural errors)" if len(errors) > 1 else "") \
        if errors else None
    return error, warnings or None
