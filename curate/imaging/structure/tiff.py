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
- `tiff.subifd` (warning) an EXIF, GPS, Interoperability or SubIFDs pointer to an IFD past the end of the file or
  that does not fit. libtiff: "Failed to read custom directory" (`tiffinfo -D`); the image itself is read.
- `tiff.type` (warning) a baseline tag of the wrong kind of type: text (Software, DateTime...) stored as numbers,
  a numeric tag (Orientation, ResolutionUnit...) stored as text. libtiff: "Incompatible type" / "Incorrect count":
  tag ignored, warning.

BigTIFF (version 43) is left to the decoder.
"""
from __future__ import annotations

import struct

from PIL import Image

from curate.imaging.structure.finding import Finding

_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
_IMAGE_TAGS = {256, 257, 258, 259, 262, 273, 277, 278, 279, 284, 320, 322, 323, 324, 325, 338, 339}
_MAX_IFDS = 10_000
_SUB_IFDS = {330: "SubIFDs", 34665: "EXIF IFD", 34853: "GPS IFD", 40965: "Interoperability IFD"}
_TEXT_TAGS = {269, 270, 271, 272, 285, 305, 306, 315, 316, 33432}  # ASCII in TIFF 6.0
_NUMERIC_TAGS = {254, 255, 256, 257, 258, 259, 262, 263, 266, 274, 277, 278, 279, 280, 281, 282, 283, 284, 296, 317,
                 320, 322, 323, 324, 325, 338, 339}
_ASCII = 2


def _values(data: bytes, fmt: str, type_: int, count: int, at: int) -> list[int]:
    code = {3: "H", 4: "I", 13: "I", 16: "Q"}.get(type_)
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
        if (type_ == _ASCII) != (tag in _TEXT_TAGS) and (tag in _TEXT_TAGS or tag in _NUMERIC_TAGS):
            findings.append(Finding("tiff.type", where, pos, f"tag {tag} has field type {type_} "
                                    f"({'must be' if tag in _TEXT_TAGS else 'cannot be'} ASCII)", False))
        if tag in (273, 279, 324, 325) or tag in _SUB_IFDS:
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
    _sub_ifds(data, fmt, tags, where, findings)
    return struct.unpack_from(f"{fmt}I", data, at + 2 + 12 * count)[0]


def _sub_ifds(data: bytes, fmt: str, tags: dict[int, list[int]], where: str, findings: list[Finding]) -> None:
    """`tiff.subifd`: each IFD that an EXIF, GPS, Interoperability or SubIFDs tag points to fits in the file."""
    n = len(data)
    for tag, name in _SUB_IFDS.items():
        for offset in tags.get(tag, []):
            if offset + 2 > n or offset + 2 + 12 * struct.unpack_from(f"{fmt}H", data, offset)[0] + 4 > n:
                findings.append(Finding("tiff.subifd", where, offset, f"the {name} at offset {offset} lies past the "
                                        "end of the file", False))


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

