"""JPEG marker structure: segments, restart markers, scans, and entropy data that ends early.

Rules (ITU T.81 Annex B, G) and what libjpeg-turbo does (`djpeg -strict` turns its warnings
into errors):

- `jpeg.extraneous` (warning) bytes where a header marker should start. libjpeg: "Corrupt JPEG data: N extraneous
  bytes before marker 0xXX" (warning; skipped, pixels right).
- `jpeg.segment` (error) a segment length under 2 or past the end, SOS before SOF, a second SOI or SOF. libjpeg:
  "Bogus marker length", "Improper call", JERR_SOI/SOF_DUPLICATE.
- `jpeg.marker` (error) a marker libjpeg does not know (0x02-0xBF, JPGn, DHP, EXP). libjpeg: "Unsupported marker
  type".
- `jpeg.restart` (error) RSTn out of sequence, or more/fewer RSTn than the restart interval needs. libjpeg: "found
  marker 0xXX instead of RSTn" / "N extraneous bytes before marker 0xD?" (resyncs: an interval of grey or misplaced
  MCUs).
- `jpeg.eoi` (error) entropy data runs to the end of the file with no EOI. libjpeg: "Premature end of JPEG file"
  (Pillow: truncated).
- `jpeg.scans` (error) a component never coded (sequential) or a progressive scan script that stops before every
  coefficient is complete. libjpeg: a file cut and closed with EOI: "premature end of data segment".
- `jpeg.premature` (error) the entropy-coded data of a sequential scan ends before its last MCU. libjpeg: "Corrupt
  JPEG data: premature end of data segment"; the missing MCUs are left at zero: flat grey.

The scan decodes 8-bit RGB and greyscale JPEGs with libjpeg-turbo in strict mode
(`curate.imaging.strict_jpeg`), which reports every entropy-data fault itself, including what
these rules cannot see without a second decode: a progressive file cut inside its last scan,
and bits flipped inside entropy-coded data (libjpeg: "N extraneous bytes before marker 0xd9",
"bad Huffman code"). The rules below stand on their own for what Pillow decodes (CMYK, and
headers TurboJPEG cannot read).

`jpeg.premature` needs to know where the Huffman-coded MCUs end, which only a decode tells.
Rather than decode twice, it reads what the decode (libjpeg-turbo) already produced:
libjpeg fills every MCU after the end of the data with zero coefficients, so the image ends in
MCUs of exactly 128 grey (but for their first row and column of pixels, which chroma upsampling
blends with the MCU above and to the left when the decode is not at 1/8 scale). An image that
really ends in flat grey is told apart by its bytes: its last MCUs are then coded as "DC
difference 0, end of block" per block, so the bits before the final padding repeat that pattern;
in a file cut short they do not. Progressive files cut short are caught by `jpeg.scans` (unless
cut inside the last scan); arithmetic-coded files are not checked for it.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from PIL import Image

from curate.imaging.structure.finding import Finding

_MARKER = re.compile(rb"\xff[^\x00\xff]")  # a marker inside entropy-coded data (FF00 is a stuffed FF)
_SOF = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_KNOWN = _SOF | {0xC4, 0xCC, 0xDA, 0xDB, 0xDC, 0xDD, 0xFE} | set(range(0xE0, 0xF0))
_STANDALONE = set(range(0xD0, 0xD8)) | {0x01}  # RSTn, TEM: libjpeg ignores them between segments
_MAX_TAIL_BITS = 96  # bits of the grey-tail pattern compared in `_premature`


@dataclass
class _Frame:
    marker: int
    width: int
    height: int
    components: list[tuple[int, int, int]]  # (id, H, V)

    @property
    def progressive(self) -> bool:
        return self.marker in (0xC2, 0xC6, 0xCA, 0xCE)

    @property
    def huffman(self) -> bool:
        return self.marker < 0xC8

    @property
    def hmax(self) -> int:
        return max(h for _, h, _ in self.components)

    @property
    def vmax(self) -> int:
        return max(v for _, _, v in self.components)

    def mcus(self, scan_ids: list[int]) -> int:
        """MCUs in a scan of these components (T.81 A.2: a one-component scan is per block)."""
        if len(scan_ids) > 1:
            return math.ceil(self.width / (8 * self.hmax)) * math.ceil(self.height / (8 * self.vmax))
        _, h, v = next(c for c in self.components if c[0] == scan_ids[0])
        return (math.ceil(math.ceil(self.width * h / self.hmax) / 8)
                * math.ceil(math.ceil(self.height * v / self.vmax) / 8))


@dataclass
class _Scan:
    offset: int  # of the SOS marker
    components: list[tuple[int, int, int]]  # (id, DC table, AC table)
    ss: int
    se: int
    al: int
    restarts: int = 0
    tail_start: int = 0  # first entropy byte after the last RSTn (or the SOS header)
    end: int = 0  # offset of the marker that ends the entropy-coded data (0: not searched for)


@dataclass
class _Parse:
    findings: list[Finding] = field(default_factory=list)
    frame: _Frame | None = None
    scans: list[_Scan] = field(default_factory=list)
    huffman: list[tuple[int, int]] = field(default_factory=list)  # (start, end) of each DHT segment's body
    interval: int = 0  # restart interval (DRI), in MCUs
    failed: bool = False  # an error was found: later rules would only repeat it

    def add(self, rule: str, where: str, offset: int, detail: str, error: bool) -> None:
        self.findings.append(Finding(rule, where, offset, detail, error))
        self.failed = self.failed or error


def _next_marker(data: bytes, i: int) -> tuple[int, int]:
    """(offset of the next marker's final 0xFF, bytes skipped before it) from offset i, the way
    libjpeg's next_marker() discards non-marker bytes; offset -1 when none is left."""
    n, skipped = len(data), 0
    if i + 1 < n and data[i] == 0xFF and data[i + 1] not in (0x00, 0xFF):  # the usual case: a marker right here
        return i, 0
    while True:
        j = data.find(b"\xff", i)
        if j < 0:
            return -1, skipped + n - i
        k = j
        while k + 1 < n and data[k + 1] == 0xFF:  # fill bytes
            k += 1
        if k + 1 >= n:
            return -1, skipped + j - i
        if data[k + 1] != 0x00:
            return k, skipped + j - i
        skipped += k + 2 - i
        i = k + 2


def _segment(p: _Parse, data: bytes, marker: int, start: int, end: int, at: int) -> None:
    """Parse the segments that later rules need (SOF, DRI; DHT's place); flag a duplicate SOF."""
    if marker in _SOF:
        body = data[start:end]
        if p.frame is not None:
            p.add("jpeg.segment", f"SOF{marker - 0xC0}", at, "a second frame header (SOF)", True)
        elif len(body) < 6 or len(body) < 6 + 3 * body[5]:
            p.add("jpeg.segment", f"SOF{marker - 0xC0}", at, "frame header shorter than its component list", True)
        else:
            comps = [(body[6 + 3 * c], body[7 + 3 * c] >> 4, body[7 + 3 * c] & 15) for c in range(body[5])]
            if not comps or any(not (1 <= h <= 4 and 1 <= v <= 4) for _, h, v in comps):
                p.add("jpeg.segment", f"SOF{marker - 0xC0}", at, "invalid component sampling factors", True)
            else:
                p.frame = _Frame(marker, int.from_bytes(body[3:5], "big"), int.from_bytes(body[1:3], "big"), comps)
    elif marker == 0xC4:
        p.huffman.append((start, end))
    elif marker == 0xDD and end - start >= 2:
        p.interval = int.from_bytes(data[start:start + 2], "big")


def _tables(data: bytes, segments: list[tuple[int, int]]) -> dict[tuple[int, int], tuple[bytes, bytes]]:
    """The Huffman tables of DHT segments: (class, id) -> (16 code-length counts, symbols)."""
    tables = {}
    for start, end in segments:
        body, i = data[start:end], 0
        while i + 17 <= len(body):
            counts = body[i + 1:i + 17]
            tables[(body[i] >> 4, body[i] & 15)] = (counts, body[i + 17:i + 17 + sum(counts)])
            i += 17 + sum(counts)
    return tables


def _sos(p: _Parse, data: bytes, start: int, end: int, at: int) -> _Scan | None:
    body = data[start:end]
    if p.frame is None:
        p.add("jpeg.segment", "SOS", at, "start of scan before any frame header (SOF)", True)
        return None
    ns = body[0] if body else 0
    if ns == 0 or len(body) < 1 + 2 * ns + 3:
        p.add("jpeg.segment", "SOS", at, "scan header shorter than its component list", True)
        return None
    comps = [(body[1 + 2 * c], body[2 + 2 * c] >> 4, body[2 + 2 * c] & 15) for c in range(ns)]
    ss, se, a = body[1 + 2 * ns], body[2 + 2 * ns], body[3 + 2 * ns]
    return _Scan(at, comps, ss, se, a & 15, tail_start=end)


def _entropy(p: _Parse, data: bytes, scan: _Scan) -> int:
    """Walk one scan's entropy-coded data: restart markers in sequence and in number. Returns
    the offset of the marker that ends it, or -1 when the file ends first."""
    pos = scan.tail_start
    while True:
        m = _MARKER.search(data, pos)
        if m is None:
            p.add("jpeg.eoi", "SOS", scan.offset, "entropy-coded data runs to the end of the file (no EOI)", True)
            return -1
        marker = data[m.start() + 1]
        if not 0xD0 <= marker <= 0xD7:
            break
        want = 0xD0 + scan.restarts % 8
        if marker != want and not p.failed:
            p.add("jpeg.restart", f"RST{marker - 0xD0}", m.start(),
                  f"found RST{marker - 0xD0} instead of RST{want - 0xD0}", True)
        scan.restarts += 1
        scan.tail_start = pos = m.end()
    scan.end = m.start()
    assert p.frame is not None
    if p.interval and p.frame.height and not p.failed:
        expected = math.ceil(p.frame.mcus([c[0] for c in scan.components]) / p.interval) - 1
        if scan.restarts != expected:
            p.add("jpeg.restart", "SOS", scan.offset, f"scan has {scan.restarts} restart markers, the restart "
                  f"interval {p.interval} needs {expected} (MCUs lost or misplaced)", True)
    return m.start()


def _parse(data: bytes) -> _Parse:
    p = _Parse()
    i = 2
    while not p.failed:
        at, skipped = _next_marker(data, i)
        if at < 0:
            p.add("jpeg.eoi", "EOI", len(data), "no EOI marker: the file ends first", True)
            break
        marker = data[at + 1]
        if skipped:
            p.add("jpeg.extraneous", f"0xFF{marker:02X}", at, f"{skipped} extraneous bytes before the marker", False)
        if marker == 0xD9:
            break
        if marker in _STANDALONE:
            i = at + 2
            continue
        if marker == 0xD8:
            p.add("jpeg.segment", "SOI", at, "a second start-of-image marker", True)
            break
        if marker not in _KNOWN:
            p.add("jpeg.marker", f"0xFF{marker:02X}", at, "unknown marker", True)
            break
        length = int.from_bytes(data[at + 2:at + 4], "big")
        end = at + 2 + length
        if at + 4 > len(data) or length < 2 or end > len(data):
            p.add("jpeg.segment", f"0xFF{marker:02X}", at, f"segment length {length} is invalid or runs past the "
                  "end of the file", True)
            break
        if marker != 0xDA:
            _segment(p, data, marker, at + 4, end, at)
            i = end
            continue
        scan = _sos(p, data, at + 4, end, at)
        if scan is None or p.frame is None:
            break
        p.scans.append(scan)
        if not (p.frame.progressive or p.interval) and len(scan.components) == len(p.frame.components):
            break  # one interleaved sequential scan, no restart markers: nothing after it to check here
        i = _entropy(p, data, scan)
        if i < 0:
            break
    return p


def _coverage(p: _Parse) -> None:
    """Every component coded (sequential); every coefficient refined to bit 0 (progressive)."""
    frame = p.frame
    if frame is None:
        return
    if not frame.progressive:
        coded = {c[0] for s in p.scans for c in s.components}
        missing = [c for c, _, _ in frame.components if c not in coded]
        if missing:
            p.add("jpeg.scans", "EOI", p.scans[-1].end if p.scans else 0,
                  f"component {missing[0]} is in no scan (its pixels are never coded)", True)
        return
    done: dict[int, list[int | None]] = {c: [None] * 64 for c, _, _ in frame.components}
    for s in p.scans:
        for c, _, _ in s.components:
            if c in done:
                done[c][s.ss:s.se + 1] = [s.al] * (s.se + 1 - s.ss)
    for c, bits in done.items():
        k = next((k for k, b in enumerate(bits) if b != 0), None)
        if k is not None:
            p.add("jpeg.scans", "EOI", p.scans[-1].end if p.scans else 0,
                  f"the progressive scans stop before coefficient {k} of component {c} is complete: the file was "
                  "cut and closed (libjpeg: premature end of data segment)", True)
            return


def _code(table: tuple[bytes, bytes] | None, symbol: int) -> str | None:
    """The canonical Huffman code (as '0'/'1' text) of `symbol` in a DHT table, or None."""
    if table is None:
        return None
    counts, symbols = table
    code, k = 0, 0
    for length, count in enumerate(counts, start=1):
        for _ in range(count):
            if k < len(symbols) and symbols[k] == symbol:
                return format(code, f"0{length}b")
            code, k = code + 1, k + 1
        code <<= 1
    return None


def _grey(decoded: Image.Image, box: tuple[int, int, int, int]) -> bool:
    region = decoded.crop(box)
    raw = (region.convert("RGB") if region.mode == "RGBX" else region).tobytes()
    return raw.count(128) == len(raw)


def _premature(p: _Parse, data: bytes, decoded: Image.Image) -> None:
    """`jpeg.premature`: the image ends in flat-grey MCUs the bytes do not code (module doc)."""
    corner = decoded.getpixel((decoded.width - 1, decoded.height - 1))  # cheap first look
    if (corner[:3] if isinstance(corner, tuple) else corner) not in (128, (128, 128, 128)):
        return
    frame, scan = p.frame, p.scans[-1] if p.scans else None
    if (frame is None or scan is None or frame.progressive or not frame.huffman or not frame.height
            or decoded.mode not in ("RGB", "RGBX", "L") or len(scan.components) != len(frame.components)):
        return
    scale = max(1, round(frame.width / decoded.width))
    mw, mh = max(1, 8 * frame.hmax // scale), max(1, 8 * frame.vmax // scale)
    cols, rows = math.ceil(decoded.width / mw), math.ceil(decoded.height / mh)
    last = cols * rows - 1

    # at 1/1, 1/2 or 1/4 scale libjpeg's fancy upsampling blends chroma across MCU borders: the first row
    # and column of a zero MCU take some of a coded neighbour's colour, so they are left out
    edge = 1 if min(mw, mh) > 2 else 0

    def grey(k: int) -> bool:
        x, y = (k % cols) * mw, (k // cols) * mh
        x1, y1 = min(x + mw, decoded.width), min(y + mh, decoded.height)
        return _grey(decoded, (x + edge if x + edge < x1 else x, y + edge if y + edge < y1 else y, x1, y1))

    if not grey(last):
        return
    if not scan.end:
        m = _MARKER.search(data, scan.tail_start)
        if m is None:
            return
        scan.end = m.start()
    tail_mcus = frame.mcus([c[0] for c in scan.components]) - (p.interval * scan.restarts if p.interval else 0)
    sampling = {c: (h * v if len(scan.components) > 1 else 1) for c, h, v in frame.components}
    tables = _tables(data, p.huffman)
    codes = [(_code(tables.get((0, dc)), 0), _code(tables.get((1, ac)), 0), sampling[c])
             for c, dc, ac in scan.components]
    # a zero MCU: per block, the DC code of difference 0 then the AC end-of-block code
    pattern = "" if any(dc is None or ac is None for dc, ac, _ in codes) else \
        "".join(f"{dc}{ac}" * n for dc, ac, n in codes)
    wanted = min(tail_mcus, math.ceil(_MAX_TAIL_BITS / len(pattern))) if pattern else 0
    flat = 1
    while flat <= wanted and flat <= last and grey(last - flat):
        flat += 1
    compared = min(flat - 1, tail_mcus)  # the first grey MCU after a coded one has a non-zero DC difference
    if compared and pattern:
        raw = data[max(scan.tail_start, scan.end - 2 * (compared * len(pattern) // 8 + 4)):scan.end]
        raw = raw.replace(b"\xff\x00", b"\xff")
        bits = format(int.from_bytes(raw, "big"), f"0{8 * len(raw)}b")
        want = pattern * compared
        if any(bits.endswith("1" * pad) and bits[:len(bits) - pad].endswith(want) for pad in range(8)):
            return
    p.add("jpeg.premature", "EOI" if data[scan.end + 1] == 0xD9 else f"0xFF{data[scan.end + 1]:02X}", scan.end,
          "entropy-coded data ends before the last MCU: the image ends in MCUs of flat grey that the bytes "
          "do not code (libjpeg: premature end of data segment)", True)


def check(data: bytes, decoded: Image.Image) -> list[Finding]:
    """Walk the markers of a JPEG once (entropy data by a C-speed marker search); see the module doc."""
    if not data.startswith(b"\xff\xd8"):
        return []
    p = _parse(data)
    if not p.failed:
        _coverage(p)
    if not p.failed:
        _premature(p, data, decoded)
    return p.findings
