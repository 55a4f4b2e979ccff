"""PNG chunk structure: CRCs, IHDR, chunk order and multiplicity, IEND, trailing bytes.

Rules (PNG 3rd edition §5.3-5.6, §11) and what libpng 1.6 does with a file that breaks them:

- `png.crc` (error) on a critical chunk (IHDR, PLTE, IDAT, IEND). libpng: "CRC error": png_chunk_error, no image.
- `png.crc` (warning) on an ancillary chunk. libpng: warns and discards the chunk.
- `png.chunk` (error) type not four ASCII letters, length over 2^31-1, chunk past the end. libpng: error (pngcheck:
  "invalid chunk name", EOF).
- `png.ihdr` (error) not first, not once, not 13 bytes, invalid size/depth/colour/method. libpng: "IHDR: out of
  place" / "Invalid IHDR data".
- `png.critical` (error) unknown critical chunk. libpng: "unknown critical chunk".
- `png.plte` (error) duplicate PLTE, PLTE missing for a palette image, a palette image's PLTE with no entries, a
  length not a multiple of 3 or over 256 entries. libpng: "duplicate" / "Missing PLTE before IDAT" / "invalid".
- `png.plte` (warning) PLTE after IDAT or in a greyscale image, a bad PLTE length in an RGB image, more entries than
  the bit depth can index. libpng: benign error: a warning, chunk ignored (extra entries silently dropped).
- `png.idat` (error) no IDAT, IDATs not consecutive. libpng: "Not enough image data" (pixels missing).
- `png.iend` (error) missing IEND. libpng: png_read_end reads past the end: error.
- `png.iend` (warning) IEND with data. libpng: benign error "invalid".
- `png.content` (warning) an ancillary chunk of the wrong length for its type (gAMA, sRGB, pHYs, tIME, cHRM, sBIT,
  bKGD, tRNS, hIST...) or with invalid values (gamma 0, rendering intent or unit out of range, a date that is not
  one, sBIT outside the bit depth, a bKGD index or tRNS past the palette, tRNS in an image with alpha), a text,
  iCCP, sPLT or pCAL keyword that is empty, over 79 bytes or not printable Latin-1, an unknown compression flag or
  method, a NUL inside tEXt text. libpng: benign error ("invalid", "bad keyword"): a warning, chunk ignored.
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

import re
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
_LENGTHS = {b"gAMA": 4, b"sRGB": 1, b"pHYs": 9, b"oFFs": 9, b"tIME": 7, b"cHRM": 32, b"sTER": 1, b"gIFg": 4,
            b"cICP": 4, b"cLLI": 8, b"mDCV": 24, b"acTL": 8, b"fcTL": 26}
_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}  # sBIT bytes per colour type
_KEYWORDED = {b"tEXt", b"zTXt", b"iTXt", b"iCCP", b"sPLT", b"pCAL"}
_LATIN1 = frozenset(range(32, 127)) | frozenset(range(161, 256))
_DECIMAL = re.compile(rb"\+?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


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


def _keyword_problem(body: bytes) -> str | None:
    """What is wrong with the keyword that starts a text, iCCP, sPLT or pCAL chunk (PNG §11.3.3.2)."""
    keyword = body.partition(b"\x00")[0]  # no NUL: all keyword (libpng and pngcheck accept a tEXt so)
    if not 1 <= len(keyword) <= 79:
        return f"keyword of {len(keyword)} bytes (must be 1-79)"
    if not set(keyword) <= _LATIN1 or keyword != keyword.strip(b" ") or b"  " in keyword:
        return f"keyword {keyword!r} is not printable Latin-1 without leading, trailing or double spaces"
    return None


def _text_problem(kind: bytes, body: bytes) -> str | None:
    """Keyword, compression flag and method, NULs of the text and other keyworded chunks."""
    problem = _keyword_problem(body)
    if problem:
        return problem
    rest = body.partition(b"\x00")[2]
    if kind in (b"zTXt", b"iCCP") and rest[:1] != b"\x00":
        return f"compression method {rest[0] if rest else 'missing'} (must be 0)"
    if kind == b"iTXt" and (len(rest) < 2 or rest[0] > 1 or rest[1] != 0):
        return f"compression flag/method {rest[:2].hex() or 'missing'} (must be 0 or 1, then 0)"
    if kind == b"tEXt" and b"\x00" in rest:
        return "NUL inside the text"
    if kind == b"sPLT":
        depth, entries = rest[:1], rest[1:]
        size = {b"\x08": 6, b"\x10": 10}.get(depth)
        if size is None or len(entries) % size:
            return f"sample depth {depth.hex() or 'missing'} (8 or 16) with {len(entries)} bytes of entries"
    return None


def _scal_problem(body: bytes) -> str | None:
    unit, values = body[:1], body[1:].split(b"\x00")
    if unit not in (b"\x01", b"\x02"):
        return f"unit {unit.hex() or 'missing'} (must be 1 or 2)"
    if len(values) != 2 or not all(_DECIMAL.fullmatch(v) and float(v) > 0 for v in values):
        return "the pixel width and height are not two positive decimal numbers"
    return None


def _value_problem(kind: bytes, body: bytes, colour: int, depth: int, entries: int) -> str | None:
    """Invalid values in an ancillary chunk of the right length (PNG §11.3)."""
    if kind == b"gAMA" and body == b"\x00\x00\x00\x00":
        return "gamma 0"
    if kind == b"sRGB" and body[0] > 3:
        return f"rendering intent {body[0]} (must be 0-3)"
    if kind in (b"pHYs", b"oFFs") and body[8] > 1:
        return f"unit {body[8]} (must be 0 or 1)"
    if kind == b"sTER" and body[0] > 1:
        return f"layout mode {body[0]} (must be 0 or 1)"
    if kind == b"tIME":
        month, day, hour, minute, second = body[2:7]
        if not (1 <= month <= 12 and 1 <= day <= 31 and hour <= 23 and minute <= 59 and second <= 60):
            return f"invalid time {month:02}-{day:02} {hour:02}:{minute:02}:{second:02}"
    if kind == b"sBIT":
        top = 8 if colour == 3 else depth
        if any(not 1 <= v <= top for v in body):
            return f"significant bits {list(body)} outside 1-{top}"
    if kind == b"bKGD" and colour == 3 and body[0] >= entries:
        return f"background index {body[0]} past the {entries}-entry palette"
    return None


def _content_problem(kind: bytes, body: bytes, colour: int | None, depth: int, entries: int) -> str | None:
    """What makes an ancillary chunk invalid, or None (see `png.content` in the module doc)."""
    if kind in _KEYWORDED:
        return _text_problem(kind, body)
    if kind == b"sCAL":
        return _scal_problem(body)
    want = _LENGTHS.get(kind)
    if colour is not None:
        if kind == b"tRNS":
            if colour in (4, 6):
                return f"tRNS in an image with an alpha channel (colour type {colour})"
            if colour == 3:
                return None if 1 <= len(body) <= entries else \
                    f"{len(body)} transparency entries for a {entries}-entry palette"
            want = 2 if colour == 0 else 6
        elif kind == b"sBIT":
            want = _CHANNELS.get(colour)
        elif kind == b"bKGD":
            want = 1 if colour == 3 else 2 if colour in (0, 4) else 6
        elif kind == b"hIST" and colour == 3:
            want = 2 * entries
    if want is None:
        return None
    if len(body) != want:
        return f"{len(body)} bytes (must be {want})"
    return _value_problem(kind, body, colour or 0, depth, entries)


class _Walk:
    """State of one pass over the chunks: what has been seen, where, and the findings."""

    def __init__(self) -> None:
        self.findings: list[Finding] = []
        self.seen: dict[bytes, int] = {}
        self.colour: int | None = None
        self.depth = 8
        self.entries = 0  # in PLTE
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
                self.depth, self.colour = body[8], body[9]
        elif first:
            self.add("png.ihdr", kind, offset, "the first chunk is not IHDR", True)
        elif kind == b"PLTE":
            if b"PLTE" in seen:
                self.add("png.plte", kind, offset, f"duplicate PLTE (first at offset {seen[kind]})", True)
            elif self.idat_run != "before":
                self.add("png.plte", kind, offset, "PLTE after IDAT", self.colour == 3)
            elif self.colour in (0, 4):
                self.add("png.plte", kind, offset, f"PLTE in a greyscale image (colour type {self.colour})", False)
            else:
                self._palette(body, offset)
        elif kind == b"IEND" and body:
            self.add("png.iend", kind, offset, f"IEND holds {len(body)} bytes (must be empty)", False)
        elif kind == b"IDAT":
            if self.idat_run == "after":
                self.add("png.idat", kind, offset, "IDAT chunks are not consecutive", True)
            elif self.idat_run == "before" and self.colour == 3 and b"PLTE" not in seen:
                self.add("png.plte", kind, offset, "palette image without PLTE before IDAT", True)
            self.idat_run = "in"
        elif kind[:1].isupper() and kind not in _CRITICAL:
            self.add("png.critical", kind, offset, "unknown critical chunk", True)
        else:
            self._ancillary(kind, offset, body)
        if kind != b"IDAT" and self.idat_run == "in":
            self.idat_run = "after"
        seen.setdefault(kind, offset)

    def _palette(self, body: bytes, offset: int) -> None:
        """PLTE's length: 1-256 whole entries (libpng: an error in a palette image), no more than the
        bit depth indexes."""
        self.entries = len(body) // 3
        if not body or len(body) % 3 or len(body) > 768:
            self.add("png.plte", b"PLTE", offset, f"PLTE of {len(body)} bytes (must be 1-256 entries of 3 bytes)",
                     self.colour == 3)
        elif self.colour == 3 and self.entries > 1 << self.depth:
            self.add("png.plte", b"PLTE", offset, f"{self.entries} palette entries for a {self.depth}-bit image",
                     False)

    def _ancillary(self, kind: bytes, offset: int, body: bytes) -> None:
        seen = self.seen
        problem = _content_problem(kind, body, self.colour, self.depth, self.entries)
        if problem:
            self.add("png.content", kind, offset, f"invalid {_name(kind)}: {problem}", False)
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
        walk.chunk(kind, i, b"" if kind in (b"IDAT", b"fdAT") else data[i + 8:end - 4], i == len(SIGNATURE))
        i = end
        if kind == b"IEND":
            if i < n:
                walk.add("png.trailing", kind, i, f"{n - i} bytes after IEND", False)
            break
    if b"IDAT" not in walk.seen and not any(f.error for f in walk.findings):
        walk.add("png.idat", b"IEND", i, "no IDAT chunk", True)
    return walk.findings
