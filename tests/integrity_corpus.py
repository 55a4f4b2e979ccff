"""A malformed corpus for the structural checks: clean files and broken variants per format.

`variants(photo, seed)` turns one RGB photo into (format, kind, expected, bytes) cases: clean
encodings of PNG, JPEG, GIF, TIFF and WebP, and broken copies of each: CRC flips in IDAT and in
ancillary chunks, bad row-filter bytes, reordered and duplicate chunks, junk before JPEG markers,
entropy data cut short (closed with EOI or not), restart markers lost, broken GIF blocks, bad TIFF
directories, wrong RIFF sizes. `expected` is what `curate scan` should make of it: "ok", "warning"
(ok with structure_warnings) or "error"; "varies" where it depends on the bytes (bits flipped in
JPEG entropy data: often a Huffman stream libjpeg itself accepts; noise in GIF LZW data: often
valid codes). The tests use it on tiny images; the benchmark (benchmarks/integrity.py) on real
photos, against the strict reference decoders.
"""
from __future__ import annotations

import io
import struct
import zlib
from typing import Iterator

import numpy as np
from PIL import Image

Case = tuple[str, str, str, bytes]  # format, kind, expected, bytes


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


# -- PNG -------------------------------------------------------------------------------------
def png_chunk(kind: bytes, body: bytes, crc: int | None = None) -> bytes:
    crc = zlib.crc32(kind + body) if crc is None else crc
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    out, i = [], 8
    while i < len(data):
        n = int.from_bytes(data[i:i + 4], "big")
        out.append((data[i + 4:i + 8], data[i + 8:i + 8 + n]))
        i += 12 + n
    return out


def png_build(chunks: list[tuple[bytes, bytes]]) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"".join(png_chunk(k, b) for k, b in chunks)


def _png_cases(img: Image.Image, rng: np.random.Generator) -> Iterator[Case]:
    base = encode(img, "PNG", compress_level=6)
    chunks = png_chunks(base)
    ihdr, idat, iend = chunks[0], [c for c in chunks if c[0] == b"IDAT"], chunks[-1]
    gama, srgb, text = (b"gAMA", struct.pack(">I", 45455)), (b"sRGB", b"\x00"), (b"tEXt", b"Comment\x00curate")
    phys = (b"pHYs", struct.pack(">IIB", 2835, 2835, 1))
    pal = img.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    pal_chunks = png_chunks(encode(pal, "PNG"))
    plte = next(c for c in pal_chunks if c[0] == b"PLTE")
    yield "PNG", "clean", "ok", base
    yield "PNG", "clean_ancillary", "ok", png_build([ihdr, gama, srgb, phys, *idat, text, iend])
    yield "PNG", "clean_palette", "ok", encode(pal, "PNG")
    yield "PNG", "clean_gray", "ok", encode(img.convert("L"), "PNG")
    # CRC flips: a byte of the chunk data changes, its CRC does not
    raw = png_build([ihdr, gama, *idat, text, iend])
    at = raw.index(b"IDAT") + 4 + int(rng.integers(4, len(idat[0][1]) - 4))
    yield "PNG", "crc_idat", "error", raw[:at] + bytes([raw[at] ^ 0x10]) + raw[at + 1:]
    at = raw.index(b"tEXt") + 6
    yield "PNG", "crc_ancillary_after_idat", "warning", raw[:at] + bytes([raw[at] ^ 0x01]) + raw[at + 1:]
    at = raw.index(b"gAMA") + 6
    yield "PNG", "crc_ancillary_before_idat", "error", raw[:at] + bytes([raw[at] ^ 0x01]) + raw[at + 1:]
    # row-filter bytes: inflate, set one row's filter to an invalid type, deflate, fix the CRC
    rows = bytearray(zlib.decompress(b"".join(b for _, b in idat)))
    stride = len(rows) // img.height
    row = int(rng.integers(0, img.height))
    rows[row * stride] = int(rng.integers(5, 256))
    yield "PNG", "bad_filter", "error", png_build([ihdr, (b"IDAT", zlib.compress(bytes(rows))), iend])
    # order and multiplicity
    yield "PNG", "gama_after_idat", "warning", png_build([ihdr, *idat, gama, iend])
    yield "PNG", "phys_after_idat", "warning", png_build([ihdr, *idat, phys, iend])
    yield "PNG", "gama_after_plte", "warning", png_build([pal_chunks[0], plte, gama] + pal_chunks[2:])
    yield "PNG", "duplicate_srgb", "warning", png_build([ihdr, srgb, srgb, *idat, iend])
    yield "PNG", "duplicate_gama", "warning", png_build([ihdr, gama, gama, *idat, iend])
    yield "PNG", "duplicate_ihdr", "error", png_build([ihdr, ihdr, *idat, iend])
    yield "PNG", "duplicate_plte", "error", png_build([pal_chunks[0], plte, plte] + pal_chunks[2:])
    yield "PNG", "plte_after_idat_rgb", "warning", png_build([ihdr, *idat, plte, iend])
    data = b"".join(b for _, b in idat)
    yield "PNG", "idat_split", "error", png_build([ihdr, (b"IDAT", data[:len(data) // 2]), text,
                                                  (b"IDAT", data[len(data) // 2:]), iend])
    yield "PNG", "trailing_after_iend", "warning", base + b"\x00" * int(rng.integers(1, 64))
    yield "PNG", "missing_iend", "error", png_build([ihdr, *idat])
    yield "PNG", "truncated", "error", base[:int(len(base) * rng.uniform(0.3, 0.9))]


# -- JPEG ------------------------------------------------------------------------------------
def cut_scan(jpeg: bytes, frac: float, last_scan: bool = False) -> bytes:
    """The JPEG cut inside its entropy-coded data, at `frac` of what follows the first SOS (or,
    with `last_scan`, of the last scan's data; for a progressive file with, before it)."""
    sos = jpeg.rindex(b"\xff\xda") if last_scan else jpeg.index(b"\xff\xda")
    end = len(jpeg) - 2 if last_scan else jpeg.rindex(b"\xff\xda")
    end = len(jpeg) - 2 if end == sos else end
    at = sos + 20 + int((end - sos - 20) * frac)
    if jpeg[at - 1] == 0xFF:  # do not leave half a stuffed byte or marker
        at -= 1
    return jpeg[:at]


def _jpeg_cases(img: Image.Image, rng: np.random.Generator) -> Iterator[Case]:
    base = encode(img, "JPEG", quality=90)
    prog = encode(img, "JPEG", quality=90, progressive=True)
    rst = encode(img, "JPEG", quality=90, restart_marker_blocks=4)
    yield "JPEG", "clean", "ok", base
    yield "JPEG", "clean_progressive", "ok", prog
    yield "JPEG", "clean_restart", "ok", rst
    yield "JPEG", "clean_gray_444_optimized", "ok", encode(img.convert("L"), "JPEG", optimize=True)
    yield "JPEG", "clean_444", "ok", encode(img, "JPEG", subsampling=0, quality=95)
    junk = bytes(rng.integers(1, 255, int(rng.integers(1, 16)), dtype=np.uint8)).replace(b"\xff", b"\x00")
    dqt = base.index(b"\xff\xdb")
    yield "JPEG", "junk_before_dqt", "warning", base[:dqt] + junk + base[dqt:]
    sos = base.index(b"\xff\xda")
    yield "JPEG", "junk_before_sos", "warning", base[:sos] + junk + base[sos:]
    frac = float(rng.uniform(0.2, 0.95))
    yield "JPEG", "entropy_cut_eoi", "error", cut_scan(base, frac) + b"\xff\xd9"
    yield "JPEG", "entropy_cut_eoi_progressive", "error", cut_scan(prog, frac) + b"\xff\xd9"
    # cut inside a progressive file's last scan (the final refinement): libjpeg's strict decode says so
    yield "JPEG", "entropy_cut_eoi_progressive_last_scan", "error", cut_scan(prog, frac, True) + b"\xff\xd9"
    yield "JPEG", "entropy_cut_eoi_restart", "error", cut_scan(rst, frac) + b"\xff\xd9"
    yield "JPEG", "entropy_cut", "error", cut_scan(base, frac)
    flipped = bytearray(base)
    for at in rng.integers(sos + 20, len(base) - 2, 3):  # bits flipped in the entropy-coded data
        flipped[at] ^= 1 << int(rng.integers(0, 8))
    yield "JPEG", "entropy_bitflips", "varies", bytes(flipped)
    markers = [i for i in range(len(rst) - 1) if rst[i] == 0xFF and 0xD0 <= rst[i + 1] <= 0xD7]
    k = markers[int(rng.integers(0, len(markers)))]
    yield "JPEG", "restart_dropped", "error", rst[:k] + rst[k + 2:]
    yield "JPEG", "restart_renumbered", "error", rst[:k + 1] + bytes([0xD0 + (rst[k + 1] - 0xD0 + 3) % 8]) + rst[k + 2:]


# -- GIF -------------------------------------------------------------------------------------
def gif_blocks(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of every block after the header and global colour table, trailer excluded."""
    i = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    out = []
    while data[i] != 0x3B:
        start = i
        if data[i] == 0x21:
            i += 2
        else:
            i += 10 + (3 << ((data[i + 9] & 7) + 1) if data[i + 9] & 0x80 else 0) + 1
        while data[i]:
            i += 1 + data[i]
        out.append((start, i + 1))
        i += 1
    return out


def _gif_cases(img: Image.Image, rng: np.random.Generator) -> Iterator[Case]:
    base = encode(img, "GIF")
    frames = [img, img.rotate(180), img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    anim = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    yield "GIF", "clean", "ok", base
    yield "GIF", "clean_animated", "ok", anim
    yield "GIF", "missing_trailer", "error", base[:-1]
    first = gif_blocks(base)[0][0]
    yield "GIF", "bad_block_byte", "error", base[:first] + b"\x99" + base[first:]
    image = next(s for s, _ in gif_blocks(base) if base[s] == 0x2C)
    lzw = image + 10 + (3 << ((base[image + 9] & 7) + 1) if base[image + 9] & 0x80 else 0)
    yield "GIF", "lzw_code_size", "error", base[:lzw] + b"\x0c" + base[lzw + 1:]
    yield "GIF", "truncated_blocks", "error", base[:int(len(base) * rng.uniform(0.3, 0.9))]
    start, end = [b for b in gif_blocks(base) if base[b[0]] == 0x2C][0]
    noise = bytes(rng.integers(0, 256, 40, dtype=np.uint8))
    mid = (lzw + 2 + end) // 2
    mid -= (mid - lzw - 2) % 256  # keep the sub-block length bytes where they are
    yield "GIF", "lzw_garbage_frame0", "varies", base[:mid + 1] + noise + base[mid + 41:]
    screen = base[:6] + struct.pack("<HH", img.width // 2, img.height // 2) + base[10:]
    yield "GIF", "frame_outside_screen", "error", screen
    yield "GIF", "trailing_after_trailer", "ok", base + b"junk"


# -- TIFF ------------------------------------------------------------------------------------
def _tiff_cases(img: Image.Image, rng: np.random.Generator) -> Iterator[Case]:
    base = encode(img, "TIFF")
    deflate = encode(img, "TIFF", compression="tiff_deflate")
    yield "TIFF", "clean", "ok", base
    yield "TIFF", "clean_deflate", "ok", deflate
    yield "TIFF", "clean_lzw", "ok", encode(img, "TIFF", compression="tiff_lzw")
    yield "TIFF", "ifd_offset_past_end", "error", base[:4] + struct.pack("<I", len(base) + 64) + base[8:]
    yield "TIFF", "truncated_strips", "error", base[:int(len(base) * rng.uniform(0.3, 0.9))]
    ifd = struct.unpack("<I", base[4:8])[0]
    count = struct.unpack("<H", base[ifd:ifd + 2])[0]
    entries = [base[ifd + 2 + 12 * e:ifd + 14 + 12 * e] for e in range(count)]
    swapped = entries[:]
    swapped[0], swapped[1] = swapped[1], swapped[0]
    yield "TIFF", "tags_unsorted", "warning", base[:ifd + 2] + b"".join(swapped) + base[ifd + 2 + 12 * count:]
    dropped = [e for e in entries if struct.unpack("<H", e[:2])[0] != 262]
    yield "TIFF", "missing_photometric", "error", (base[:ifd] + struct.pack("<H", len(dropped)) + b"".join(dropped)
                                                     + b"\x00" * 12 + base[ifd + 2 + 12 * count:])
    loop = base[:ifd + 2 + 12 * count] + struct.pack("<I", ifd) + base[ifd + 6 + 12 * count:]
    yield "TIFF", "ifd_loop", "error", loop


# -- WebP ------------------------------------------------------------------------------------
def _webp_cases(img: Image.Image, rng: np.random.Generator) -> Iterator[Case]:
    lossy = encode(img, "WEBP", quality=80)
    rgba = img.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(img.size))
    alpha = encode(rgba, "WEBP", quality=80)
    yield "WEBP", "clean", "ok", lossy
    yield "WEBP", "clean_lossless", "ok", encode(img, "WEBP", lossless=True)
    yield "WEBP", "clean_alpha", "ok", alpha
    yield "WEBP", "trailing_after_riff", "warning", lossy + b"\x00" * int(rng.integers(2, 64))
    yield "WEBP", "riff_size_past_end", "error", lossy[:4] + struct.pack("<I", len(lossy)) + lossy[8:]
    yield "WEBP", "truncated", "error", lossy[:int(len(lossy) * rng.uniform(0.3, 0.9))]
    flags = alpha.index(b"VP8X") + 8
    yield "WEBP", "vp8x_flags_mismatch", "warning", alpha[:flags] + bytes([alpha[flags] | 0x20]) + alpha[flags + 1:]


FORMATS = {"PNG": _png_cases, "JPEG": _jpeg_cases, "GIF": _gif_cases, "TIFF": _tiff_cases, "WEBP": _webp_cases}
EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "GIF": "gif", "TIFF": "tif", "WEBP": "webp"}


def variants(photo: Image.Image, seed: int) -> Iterator[Case]:
    """Every case of every format for one RGB photo; `seed` fixes the random choices."""
    rng = np.random.default_rng(seed)
    for cases in FORMATS.values():
        yield from cases(photo, rng)
