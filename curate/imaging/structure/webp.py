"""WebP RIFF container: RIFF size, chunk sizes and padding, first chunk, VP8X flags, trailing bytes.

Rules (the WebP container spec, RFC 9649 §2-3) and what libwebp (`dwebp`) does:

- `webp.riff` (error) RIFF size past the end of the file. libwebp: NOT_ENOUGH_DATA / BITSTREAM_ERROR.
- `webp.chunk` (error) a chunk that runs past the RIFF size, or a first chunk that is not VP8, VP8L or VP8X.
  libwebp: BITSTREAM_ERROR.
- `webp.trailing` (warning) bytes after the RIFF container. libwebp: ignored (libwebp reads RIFF size bytes).
- `webp.flags` (warning) VP8X flags that do not match the chunks (alpha, animation, ICC, EXIF, XMP). libwebp:
  ignored.
"""
from __future__ import annotations

from PIL import Image

from curate.imaging.structure.finding import Finding

_FLAGS = {b"ALPH": 0x10, b"ANIM": 0x02, b"ICCP": 0x20, b"EXIF": 0x08, b"XMP ": 0x04}


def check(data: bytes, decoded: Image.Image) -> list[Finding]:
    """Walk the RIFF chunks of a WebP once; see the module doc for the rules."""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return []
    n, riff_end = len(data), 8 + int.from_bytes(data[4:8], "little")
    if riff_end > n:
        return [Finding("webp.riff", "RIFF", 0, f"RIFF size {riff_end - 8} runs {riff_end - n} bytes past the end "
                        "of the file", True)]
    findings: list[Finding] = []
    if riff_end < n:
        findings.append(Finding("webp.trailing", "RIFF", riff_end, f"{n - riff_end} bytes after the RIFF "
                                "container", False))
    i, chunks, flags = 12, set(), None
    while i < riff_end:
        kind, size = data[i:i + 4], int.from_bytes(data[i + 4:i + 8], "little")
        name = kind.decode("latin-1")
        if i + 8 > riff_end or i + 8 + size > riff_end:
            findings.append(Finding("webp.chunk", name, i, f"chunk of {size} bytes runs past the RIFF size", True))
            return findings
        if i == 12 and kind not in (b"VP8 ", b"VP8L", b"VP8X"):
            findings.append(Finding("webp.chunk", name, i, "the first chunk is not VP8, VP8L or VP8X", True))
            return findings
        if kind == b"VP8X" and size >= 1:
            flags = data[i + 8]
        chunks.add(kind)
        i += 8 + size + (size & 1)
    if flags is not None:
        for kind, bit in _FLAGS.items():
            if kind == b"ALPH" and kind not in chunks and (b"ANMF" in chunks or b"VP8L" in chunks):
                continue  # alpha inside animation frames or a lossless bitstream
            if bool(flags & bit) != (kind in chunks):
                findings.append(Finding("webp.flags", "VP8X", 12, f"the {kind.decode().strip()} flag is "
                                        f"{'set' if flags & bit else 'clear'} but the chunk is "
                                        f"{'absent' if flags & bit else 'present'}", False))
    return findings
