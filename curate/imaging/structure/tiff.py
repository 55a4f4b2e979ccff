"""TIFF directory sanity: header, IFD chain, entries, required tags, strip and tile extents.

Rules (TIFF 6.0 §2, §7-8) and what libtiff 4 (`tiffinfo -D`, `tiffcp`) does:

- `tiff.ifd` (error) an IFD offset past the end, an IFD that does not fit, an IFD chain that loops. libtiff: "Can
  not read TIFF directory count", "IFD looping".
- `tiff.entry` (error) an image-structure tag whose values lie past the end of the file. libtiff: "IO error reading
  tag" / "Incorrect count": directory rejected.
- `tiff.entry` (warning) another tag whose values lie past the end, an unknown field type. libtiff: "IO error" /
  "Unknown field type": tag ignored, warning.
- `tiff.order` (warning) tags not in ascending order. libtiff: "Invalid TIFF directory; tags are not sorted in
  ascending order" (warning).
- `tiff.required` (error) no ImageWidth, ImageLength or Strip/TileOffsets. libtiff: "TIFF directory is missing
  required .. field".
- `tiff.required` (warning) no StripByteCounts or PhotometricInterpretation. libtiff: warns, derives a value.
- `tiff.strip` (error) a strip or tile whose bytes lie past the end of the file. libtiff: "Read error on strip".
- `tiff.strip` (warning) a strip byte count of 0. libtiff: "Bogus StripByteCounts field, ignoring and calculating
  from imagelength".

BigTIFF (version 43) is left to the decoder.
"""
from __future__ import annotations

import struct

from PIL import Image

from curate.imaging.structure.finding import Finding

_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
_IMAGE_TAGS = {256, 257, 258, 259, 262, 273, 277, 278, 279, 284, 320, 322, 323, 324, 325, 338, 339}
_MAX_IFDS = 10_000


def _values(data: bytes, fmt: str, type_: int, count: int, at: int) -> list[int]:
    code = {3: "H", 4: "I", 16: "Q"}.get(type_)
    return list(struct.unpack_from(f"{fmt}{count}{code}", data, at)) if code else []


def _ifd(data: bytes, fmt: str, at: int, index: int, findings: list[Finding]) -> int:
    """Check one IFD at `at`; returns the next IFD's offset (0 at the end, -1 on a fatal error)."""
    n, where = len(data), f"IFD {index}"
    count = struct.unpack_from(f"{fmt}H", data, at)[0]
    if at + 2 + 12 * count + 4 > n:
        findings.append(Finding("tiff.ifd", where, at, f"{count} entries do not fit in the file", True))
        return -1
    tags: dict[int, list[int]] = {}
    previous = -1
    for e in range(count):
        pos = at + 2 + 12 * e
        tag, type_, num, raw = struct.unpack_from(f"{fmt}HHII", data, pos)
        if tag <= previous:
            findings.append(Finding("tiff.order", where, pos, f"tag {tag} after tag {previous}: tags are not in "
                                    "ascending order", False))
        previous = max(previous, tag)
        size = _TYPE_SIZES.get(type_)
        if size is None:
            findings.append(Finding("tiff.entry", where, pos, f"tag {tag} has unknown field type {type_}",
                                    tag in _IMAGE_TAGS))
            continue
        value_at = pos + 8 if size * num <= 4 else raw
        if value_at + size * num > n:
            findings.append(Finding("tiff.entry", where, pos, f"tag {tag}'s {num} values at offset {value_at} lie "
                                    "past the end of the file", tag in _IMAGE_TAGS))
            continue
        if tag in (273, 279, 324, 325):
            tags[tag] = _values(data, fmt, type_, num, value_at)
        else:
            tags.setdefault(tag, [])
    missing = [name for name, keys in (("ImageWidth", (256,)), ("ImageLength", (257,)),
                                       ("StripOffsets or TileOffsets", (273, 324))) if not set(keys) & tags.keys()]
    if missing:
        findings.append(Finding("tiff.required", where, at, f"missing {missing[0]}", True))
        return -1
    for name, key in (("StripByteCounts", (279, 325)), ("PhotometricInterpretation", (262,))):
        if not set(key) & tags.keys():
            findings.append(Finding("tiff.required", where, at, f"missing {name}", False))
    offsets, counts = tags.get(273) or tags.get(324) or [], tags.get(279) or tags.get(325) or []
    for k, (offset, length) in enumerate(zip(offsets, counts)):
        if length == 0:
            findings.append(Finding("tiff.strip", where, offset, f"strip {k} has a byte count of 0", False))
            break
        if offset + length > n:
            findings.append(Finding("tiff.strip", where, offset, f"strip {k} ({length} bytes) runs "
                                    f"{offset + length - n} bytes past the end of the file", True))
            break
    return struct.unpack_from(f"{fmt}I", data, at + 2 + 12 * count)[0]


def check(data: bytes, decoded: Image.Image) -> list[Finding]:
    """Walk the IFD chain of a classic TIFF once; see the module doc for the rules."""
    fmt = {b"II*\x00": "<", b"MM\x00*": ">"}.get(data[:4])
    if fmt is None or len(data) < 8:
        return []
    findings: list[Finding] = []
    at: int = struct.unpack_from(f"{fmt}I", data, 4)[0]
    seen: set[int] = set()
    while at and len(seen) < _MAX_IFDS:
        if at in seen or at + 2 > len(data):
            findings.append(Finding("tiff.ifd", f"IFD {len(seen)}", at, "IFD chain loops back" if at in seen else
                                    "IFD offset past the end of the file", True))
            break
        seen.add(at)
        at = _ifd(data, fmt, at, len(seen) - 1, findings)
        if at < 0 or any(f.error for f in findings):
            break
    return findings

