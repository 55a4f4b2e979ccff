"""GIF block structure: header, colour tables, extension and image blocks, sub-block chains, trailer.

Rules (GIF89a §17-27) and what giflib 5 (`DGifSlurp`, as `gif2rgb` and TensorFlow's decode_gif
use it) does:

- `gif.block` (error) a byte that starts no block (not 0x21, 0x2C or 0x3B). giflib: "Wrong record type detected".
- `gif.truncated` (error) a descriptor, colour table or sub-block chain past the end. giflib: "Failed to read from
  given file".
- `gif.trailer` (error) no trailer (0x3B) after the last block. giflib: reads past the end: "Failed to read from
  given file".
- `gif.lzw` (error) LZW minimum code size outside 2-8, or a later frame's LZW data that does not decode (invalid
  codes, or the data ends before the frame is complete). giflib: "Image is defective" / "Image EOF detected
  before image complete" (DGifSlurp reads every frame).
- `gif.frame` (error) a frame outside the logical screen. giflib: `gif2rgb`: "Image N is not confined to screen
  dimension, aborted" (Pillow and browsers clip it).

Frame 0's LZW data is decoded by the scan (Pillow rejects a broken code stream); an animation's
later frames are decoded here, by Pillow, once the block walk finds nothing wrong: a broken later
frame is what giflib (and TensorFlow's decode_gif) refuse the whole file for. That costs one
decode per later frame, for animated GIFs only.
"""
from __future__ import annotations

import io

from PIL import Image

from curate.imaging.structure.finding import Finding


def _sub_blocks(data: bytes, i: int) -> int:
    """Offset after the chain of sub-blocks starting at i (after its 0 terminator), or -1."""
    n = len(data)
    while i < n:
        size = data[i]
        if size == 0:
            return i + 1
        i += 1 + size
    return -1


def _later_frames(data: bytes, starts: list[int]) -> list[Finding]:
    """`gif.lzw` for the first frame after frame 0 whose LZW data Pillow cannot decode."""
    with Image.open(io.BytesIO(data)) as im:
        for k in range(1, len(starts)):
            try:
                im.seek(k)
                im.load()
            except (OSError, EOFError, ValueError, SyntaxError, IndexError) as exc:
                return [Finding("gif.lzw", f"frame {k}", starts[k], f"LZW data does not decode ({exc})", True)]
    return []


def check(data: bytes, decoded: Image.Image) -> list[Finding]:
    """Walk every block of a GIF once; see the module doc for the rules."""
    if data[:6] not in (b"GIF87a", b"GIF89a") or len(data) < 13:
        return []
    findings: list[Finding] = []
    screen_w, screen_h = int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
    i = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    n = len(data)
    starts: list[int] = []  # each frame's image descriptor
    while True:
        if i >= n:
            findings.append(Finding("gif.trailer", "trailer", n, "no trailer (0x3B): the file ends after the "
                                    "last block", True))
            break
        kind = data[i]
        if kind == 0x3B:
            break
        if kind == 0x21:
            end = _sub_blocks(data, i + 2) if i + 2 <= n else -1
            where = f"extension 0x{data[i + 1]:02X}" if i + 1 < n else "extension"
        elif kind == 0x2C:
            where = f"frame {len(starts)}"
            if i + 10 > n:
                end = -1
            else:
                left, top, w, h = (int.from_bytes(data[i + k:i + k + 2], "little") for k in (1, 3, 5, 7))
                if left + w > screen_w or top + h > screen_h:
                    findings.append(Finding("gif.frame", where, i, f"frame {w}x{h}+{left}+{top} extends past the "
                                            f"{screen_w}x{screen_h} logical screen", True))
                start = i + 10 + (3 << ((data[i + 9] & 7) + 1) if data[i + 9] & 0x80 else 0)
                if start < n and not 2 <= data[start] <= 8:
                    findings.append(Finding("gif.lzw", where, start, f"LZW minimum code size {data[start]} "
                                            "(must be 2-8)", True))
                    break
                end = _sub_blocks(data, start + 1) if start < n else -1
            starts.append(i)
        else:
            findings.append(Finding("gif.block", f"0x{kind:02X}", i, "byte starts no GIF block", True))
            break
        if end < 0:
            findings.append(Finding("gif.truncated", where, i, "block runs past the end of the file", True))
            break
        i = end
    if len(starts) > 1 and not findings:
        findings = _later_frames(data, starts)
    return findings
