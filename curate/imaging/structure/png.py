"""PNG chunk structure: CRCs, IHDR, chunk order and multiplicity, IEND, trailing bytes.

Rules (PNG 3rd edition §5.3-5.6, §11) and what libpng 1.6 does with a file that breaks them:

- `png.crc` (error) on a critical chunk (IHDR, PLTE, IDAT, IEND). libpng: "CRC error": png_chunk_error, no image.
- `png.crc` (warning) on an ancillary chunk. libpng: warns and discards the chunk.
- `png.chunk` (error) type not four ASCII letters, length over 2^31-1, chunk past the end. libpng: error (pngcheck:
  "invalid chunk name", EOF).
- `png.ihdr` (error) not first, not once, not 13 bytes, invalid size/depth/colour/method. libpng: "IHDR: out of
  place" / "Invalid IHDR data".
- `png.critical` (error) unknown critical chunk. libpng: "unknown critical chunk".
- `png.plte` (error) duplicate PLTE, PLTE missing for a palette image. libpng: "duplicate" / "Missing PLTE before
  IDAT".
- `png.plte` (warning) PLTE after IDAT or in a greyscale image. libpng: benign error: a warning, chunk ignored.
- `png.idat` (error) no IDAT, IDATs not consecutive. libpng: "Not enough image data" (pixels missing).
- `png.iend` (error) missing IEND. libpng: png_read_end reads past the end: error.
- `png.order` (warning) ancillary chunk in the wrong place (gAMA after PLTE, tRNS after IDAT). libpng: "out of
  place": warns, ignores it.
- `png.duplicate` (warning) a second sRGB, gAMA, tRNS or other once-only chunk. libpng: "duplicate": warns, ignores it.
- `png.srgb_iccp` (warning) both sRGB and iCCP. libpng: warns ("profile mismatch"/ignored).
- `png.trailing` (warning) bytes after IEND. libpng: never read.

pngcheck treats every one of these as an error. The IDAT zlib stream (its header, data, Adler-32)
and the row-filter bytes are not re-inflated here (that costs 40-50% of a PNG's scan time):
Pillow's decode inflates every row and rejects an invalid filter byte ("unrecognized data
stream contents") or a broken stream; the scan reports those as `corrupt` already.
"""
from __future__ import annotations

import struct
import zlib

from PIL import Image

from curate.imaging.structure.finding import Finding

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CRITICAL = {b"IHDR", b"PLTE", b"IDAT", b"IEND"}
_BEFORE_PLTE = {b"cHRM", b"gAMA", b"iCCP", b"sBIT", b"sRGB", b"cICP", b"mDCV", b"cLLI"}  # and before IDAT
_AFTER_PLTE = {b"bKGD", b"hIST", b"tRNS"}  # after PLTE (if any), before IDAT
_BEFORE_IDAT = _BEFORE_PLTE | _AFTER_PLTE | {b"pHYs", b"sPLT", b"oFFs", b"pCAL", b"sCAL", b"sTER", b"acTL"}
_ONCE = (_BEFORE_PLTE | _AFTER_PLTE | {b"pHYs", b"oFFs", b"pCAL", b"sCAL", b"sTER", b"tIME", b"eXIf", b"acTL"})
_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
_MAX = 2**31 - 1


def _name(kind: bytes) -> str:
    return kind.decode("latin-1")


def _ihdr_problem(body: bytes) -> str | None:
    if len(body) != 13:
        return f"IHDR is {len(body)} bytes, not 13"
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", body)
    if not (0 < width <= _MAX and 0 < height <= _MAX):
        return f"invalid image size {width}x{height}"
    if depth not in _DEPTHS.get(colour, ()):
        return f"invalid bit depth {depth} for colour type {colour}"
    if compression or filtering or interlace > 1:
        return f"invalid method (compression {compression}, filter {filtering}, interlace {interlace})"
    return None


class _Walk:
    """State of one pass over the chunks: what has been seen, where, and the findings."""

    def __init__(self) -> None:
        self.findings: list[Finding] = []
        self.seen: dict[bytes, int] = {}
        self.colour: int | None = None
        self.idat_run = "before"  # before / in / after the run of IDAT chunks

    def add(self, rule: str, kind: bytes, offset: int, detail: str, error: bool) -> None:
        self.findings.append(Finding(rule, _name(kind), offset, detail, error))

    def chunk(self, kind: bytes, offset: int, body: bytes, first: bool) -> None:
        """Order, multiplicity and content rules for one chunk whose CRC has been checked."""
        seen = self.seen
        if kind == b"IHDR":
            if not first:
                self.add("png.ihdr", kind, offset, "IHDR must be the first and only IHDR chunk", True)
            problem = _ihdr_problem(body)
            if problem:
                self.add("png.ihdr", kind, offset, problem, True)
            elif first:
                self.colour = body[9]
        elif first:
            self.add("png.ihdr", kind, offset, "the first chunk is not IHDR", True)
        elif kind == b"PLTE":
            if b"PLTE" in seen:
                self.add("png.plte", kind, offset, f"duplicate PLTE (first at offset {seen[kind]})", True)
            elif self.idat_run != "before":
                self.add("png.plte", kind, offset, "PLTE after IDAT", self.colour == 3)
            elif self.colour in (0, 4):
                self.add("png.plte", kind, offset, f"PLTE in a greyscale image (colour type {self.colour})", False)
        elif kind == b"IDAT":
            if self.idat_run == "after":
                self.add("png.idat", kind, offset, "IDAT chunks are not consecutive", True)
            elif self.idat_run == "before" and self.colour == 3 and b"PLTE" not in seen:
                self.add("png.plte", kind, offset, "palette image without PLTE before IDAT", True)
            self.idat_run = "in"
        elif kind[:1].isupper() and kind not in _CRITICAL:
            self.add("png.critical", kind, offset, "unknown critical chunk", True)
        else:
            self._ancillary(kind, offset)
        if kind != b"IDAT" and self.idat_run == "in":
            self.idat_run = "after"
        seen.setdefault(kind, offset)

    def _ancillary(self, kind: bytes, offset: int) -> None:
        seen = self.seen
        if kind in _ONCE and kind in seen:
            self.add("png.duplicate", kind, offset, f"duplicate {_name(kind)} (first at offset {seen[kind]})", False)
        elif kind in _BEFORE_IDAT and self.idat_run != "before":
            self.add("png.order", kind, offset, f"{_name(kind)} after IDAT (must precede it)", False)
        elif kind in _BEFORE_PLTE and b"PLTE" in seen:
            self.add("png.order", kind, offset, f"{_name(kind)} after PLTE (must precede it)", False)
        elif kind in _AFTER_PLTE and self.colour == 3 and b"PLTE" not in seen:
            self.add("png.order", kind, offset, f"{_name(kind)} before PLTE (must follow it)", False)
        other = {b"sRGB": b"iCCP", b"iCCP": b"sRGB"}.get(kind)
        if other in seen:
            self.add("png.srgb_iccp", kind, offset, "both sRGB and iCCP", False)


def check(data: bytes, decoded: Image.Image) -> list[Finding]:
    """Walk every chunk of a PNG (APNG included) once; see the module doc for the rules."""
    if not data.startswith(SIGNATURE):
        return []
    walk = _Walk()
    view = memoryview(data)
    n, i = len(data), len(SIGNATURE)
    while True:
        if i + 8 > n:
            walk.add("png.iend", b"IEND", i, "missing IEND: the file ends after the last chunk", True)
            break
        length = int.from_bytes(data[i:i + 4], "big")
        kind = data[i + 4:i + 8]
        if not kind.isalpha() or length > _MAX:  # bytes.isalpha: ASCII letters only
            walk.add("png.chunk", kind, i, f"invalid chunk type {kind!r} or length {length}", True)
            break
        end = i + 12 + length
        if end > n:
            walk.add("png.chunk", kind, i, f"chunk runs {end - n} bytes past the end of the file", True)
            break
        stored = int.from_bytes(data[end - 4:end], "big")
        computed = zlib.crc32(view[i + 4:end - 4])
        if stored != computed:
            walk.add("png.crc", kind, i, f"CRC mismatch (stored {stored:08x}, computed {computed:08x})",
                     kind in _CRITICAL)
        walk.chunk(kind, i, data[i + 8:end - 4] if kind == b"IHDR" else b"", i == len(SIGNATURE))
        i = end
        if kind == b"IEND":
            if i < n:
                walk.add("png.trailing", kind, i, f"{n - i} bytes after IEND", False)
            break
    if b"IDAT" not in walk.seen and not any(f.error for f in walk.findings):
        walk.add("png.idat", b"IEND", i, "no IDAT chunk", True)
    return walk.findings
