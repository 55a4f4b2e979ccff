"""One structural finding: which rule, where in the file, and whether the pixels can be trusted."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Finding:
    """A broken format rule at a byte offset.

    `error`: the pixels are wrong or a strict decoder (libpng, libjpeg-turbo, giflib, libtiff,
    libwebp) refuses the file; otherwise decoders tolerate it and it is a warning.
    """

    rule: str  # e.g. "png.crc"
    where: str  # the chunk, marker, block or tag, e.g. "IDAT", "RST3", "IFD 0"
    offset: int  # byte offset of `where` in the file
    detail: str
    error: bool

    @property
    def message(self) -> str:
        return f"{self.where} at offset {self.offset}: {self.detail} [{self.rule}]"
