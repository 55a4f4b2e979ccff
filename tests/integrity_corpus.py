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
import re
import struct
import zlib
from typing import Iterator

import numpy as np
from PIL import Image

from curate.imaging.formats import suffix

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
    yield from _png_public_suite_cases(img, rng, base)


def _png_ihdr(chunks: list[tuple[bytes, bytes]], **fields: int) -> tuple[bytes, bytes]:
    """The IHDR chunk of `chunks` with some fields (depth, colour, interlace...) replaced."""
    names = ("width", "height", "depth", "colour", "compression", "filtering", "interlace")
    values = dict(zip(names, struct.unpack(">IIBBBBB", chunks[0][1])))
    values.update(fields)
    return b"IHDR", struct.pack(">IIBBBBB", *(values[n] for n in names))


def _png_public_suite_cases(img: Image.Image, rng: np.random.Generator, base: bytes) -> Iterator[Case]:
    """Kinds of damage in public PNG test suites (PngSuite's x*.png, the javapng broken suite,
    libpng's crashers, imagetestsuite): signatures mangled in transfer, invalid IHDR fields,
    broken zlib streams under a good CRC, chunks of the wrong length or with invalid values."""
    chunks = png_chunks(base)
    ihdr, idat, iend = chunks[0], [c for c in chunks if c[0] == b"IDAT"], chunks[-1]
    # the signature mangled by a text-mode transfer: LF -> CRLF, CRLF -> LF, the 8th bit stripped
    yield "PNG", "signature_lf_to_crlf", "error", base.replace(b"\n", b"\r\n")
    yield "PNG", "signature_crlf_to_lf", "error", base.replace(b"\r\n", b"\n")
    yield "PNG", "signature_high_bit", "error", bytes([base[0] & 0x7F]) + base[1:]
    raw = png_build(chunks)
    yield "PNG", "crc_ihdr", "error", raw[:29] + bytes([raw[29] ^ 0x01]) + raw[30:]
    depth, colour = [(3, 2), (16, 3), (1, 6), (0, 0), (99, 2), (8, 1), (8, 9)][int(rng.integers(0, 7))]
    yield "PNG", "ihdr_depth_colour", "error", png_build([_png_ihdr(chunks, depth=depth, colour=colour), *chunks[1:]])
    yield "PNG", "ihdr_interlace_method", "error", png_build([_png_ihdr(chunks, interlace=2), *chunks[1:]])
    yield "PNG", "missing_idat", "error", png_build([ihdr, iend])
    stream = b"".join(b for _, b in idat)
    adler = stream[:-4] + bytes([stream[-4] ^ 0x01]) + stream[-3:]
    yield "PNG", "zlib_adler32", "error", png_build([ihdr, (b"IDAT", adler), iend])
    at = int(rng.integers(2, len(stream) - 4))
    yield "PNG", "zlib_data_damage", "error", png_build([ihdr, (b"IDAT", stream[:at] + bytes([stream[at] ^ 0xFF])
                                                                   + stream[at + 1:]), iend])
    yield "PNG", "zlib_header", "error", png_build([ihdr, (b"IDAT", b"\x78\x00" + stream[2:]), iend])
    yield "PNG", "chunk_after_iend", "warning", base + png_chunk(b"tEXt", b"Comment\x00after IEND")
    critical = bytes(rng.integers(65, 91, 1, dtype=np.uint8)) + b"bcD"
    yield "PNG", "unknown_critical_chunk", "error", png_build([ihdr, (critical, b"\x00" * 4), *chunks[1:]])
    yield "PNG", "iend_length", "warning", png_build([*chunks[:-1], (b"IEND", b"\x00")])
    yield from _png_palette_cases(img, rng)
    yield from _png_ancillary_cases(img, rng, chunks)


def _png_palette_cases(img: Image.Image, rng: np.random.Generator) -> Iterator[Case]:
    """PLTE of a palette image with no entries, a length not a multiple of 3, over 256 entries
    (libpng: error); tRNS or hIST longer than the palette, bKGD past it (libpng: warning)."""
    pal = png_chunks(encode(img.convert("P", palette=Image.Palette.ADAPTIVE, colors=64), "PNG"))
    k = next(i for i, (kind, _) in enumerate(pal) if kind == b"PLTE")
    plte = pal[k][1]
    entries = len(plte) // 3

    def with_plte(body: bytes, *extra: tuple[bytes, bytes]) -> bytes:
        return png_build([*pal[:k], (b"PLTE", body), *extra, *pal[k + 1:]])

    yield "PNG", "plte_empty", "error", with_plte(b"")
    yield "PNG", "plte_length_not_triples", "error", with_plte(plte + bytes(int(rng.integers(1, 3))))
    yield "PNG", "plte_over_256_entries", "error", with_plte(plte + bytes(3 * (257 - entries)))
    yield "PNG", "trns_longer_than_plte", "warning", with_plte(plte, (b"tRNS", b"\xff" * (entries + 1)))
    yield "PNG", "hist_length", "warning", with_plte(plte, (b"hIST", b"\x00\x01" * (entries - 1)))
    yield "PNG", "bkgd_index_past_plte", "warning", with_plte(plte, (b"bKGD", bytes([entries + 1])))


def _png_ancillary_cases(img: Image.Image, rng: np.random.Generator,
                         chunks: list[tuple[bytes, bytes]]) -> Iterator[Case]:
    """Ancillary chunks with the wrong length or invalid values (libpng: a benign error, the
    chunk is ignored; pngcheck: an error), and tRNS in an image that has an alpha channel."""
    ihdr, rest = chunks[0], chunks[1:]
    good = [(b"gAMA", struct.pack(">I", 45455)), (b"sRGB", b"\x00"), (b"pHYs", struct.pack(">IIB", 2835, 2835, 1)),
            (b"tIME", struct.pack(">HBBBBB", 2024, 5, 17, 12, 30, 0)), (b"sBIT", b"\x05\x06\x05"),
            (b"cHRM", struct.pack(">8I", 31270, 32900, 64000, 33000, 30000, 60000, 15000, 6000)),
            (b"bKGD", struct.pack(">HHH", 255, 255, 255))]
    kind, body = good[int(rng.integers(0, len(good)))]  # one byte too long (Pillow rejects some too short)
    yield "PNG", "ancillary_length", "warning", png_build([ihdr, (kind, body + b"\x00"), *rest])
    bad = [(b"gAMA", struct.pack(">I", 0)), (b"sRGB", b"\x07"), (b"pHYs", struct.pack(">IIB", 2835, 2835, 2)),
           (b"tIME", struct.pack(">HBBBBB", 2024, 13, 17, 12, 30, 0)),
           (b"tIME", struct.pack(">HBBBBB", 2024, 5, 0, 25, 30, 0)),
           (b"sBIT", b"\x00\x06\x05"), (b"sBIT", b"\x09\x08\x08"), (b"oFFs", struct.pack(">iiB", 0, 0, 2)),
           (b"sCAL", b"\x03" + b"1.0\x001.0"), (b"sCAL", b"\x01" + b"-1.0\x001.0"), (b"sTER", b"\x02")]
    kind, body = bad[int(rng.integers(0, len(bad)))]
    yield "PNG", "ancillary_value", "warning", png_build([ihdr, (kind, body), *rest])
    keyword = [b"", b"k" * 80, b" Comment", b"Com\xa0ment"][int(rng.integers(0, 4))]
    text = [(b"tEXt", keyword + b"\x00curate"), (b"zTXt", keyword + b"\x00\x00" + zlib.compress(b"curate")),
            (b"iTXt", keyword + b"\x00\x00\x00\x00\x00curate")][int(rng.integers(0, 3))]
    yield "PNG", "text_keyword", "warning", png_build([ihdr, *rest[:-1], text, rest[-1]])
    method = [(b"iTXt", b"Comment\x00\x02\x00\x00\x00curate"),
              (b"iTXt", b"Comment\x00\x01\x01\x00\x00" + zlib.compress(b"curate")),
              (b"tEXt", b"Comment\x00cur\x00ate")][int(rng.integers(0, 3))]
    yield "PNG", "text_method", "warning", png_build([ihdr, *rest[:-1], method, rest[-1]])
    rgba = png_chunks(encode(img.convert("RGBA"), "PNG"))
    yield "PNG", "trns_with_alpha", "warning", png_build([rgba[0], (b"tRNS", b"\x00\x01" * 3), *rgba[1:]])


# -- JPEG ------------------------------------------------------------------------------------
def cut_scan(jpeg: bytes, frac: float, last_scan: bool = False) -> bytes:
    """The JPEG cut inside its entropy-coded data, at `frac` of what follows the first SOS (or,
    with `last_scan`, of the last scan's data; for a progressive file with, before it)."""
    sos = jpeg.rindex(b"\xff\xda") if last_scan else jpeg.index(b"\xff\xda")
    end = len(jpeg) - 2 if last_scan else jpeg.rindex(b"\xff\xda")
    end = len(jpeg) - 2 if end == sos else end
    start = sos + 2 + int.from_bytes(jpeg[sos + 2:sos + 4], "big")  # after the scan header
    at = start + int((end - start) * frac)
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
    yield from _jpeg_public_suite_cases(img, rng, base, prog, rst)


def jpeg_segments(data: bytes, marker: int) -> list[tuple[int, int]]:
    """(start, end) of every header segment with this marker before the first SOS."""
    out, i = [], 2
    while data[i + 1] != 0xDA:
        end = i + 2 + int.from_bytes(data[i + 2:i + 4], "big")
        if data[i + 1] == marker:
            out.append((i, end))
        i = end
    return out


def _jpeg_without(data: bytes, marker: int) -> bytes:
    for start, end in reversed(jpeg_segments(data, marker)):
        data = data[:start] + data[end:]
    return data


def _jpeg_public_suite_cases(img: Image.Image, rng: np.random.Generator, base: bytes, prog: bytes,
                             rst: bytes) -> Iterator[Case]:
    """Kinds of damage in public JPEG test suites (imagetestsuite, libjpeg-turbo's fuzz cases):
    tables missing or bogus, a frame of zero height, progression parameters out of range or out
    of order, a restart interval that does not match the markers, and CMYK files damaged the
    way the RGB ones above are."""
    optimized = encode(img, "JPEG", quality=90, optimize=True)
    yield "JPEG", "dqt_missing", "error", _jpeg_without(base, 0xDB)
    yield "JPEG", "dht_missing_optimized", "error", _jpeg_without(optimized, 0xC4)
    start, _ = jpeg_segments(base, 0xC4)[0]
    counts = bytearray(base[start + 5:start + 21])
    counts[int(rng.integers(0, 4))] += 8  # more codes of a short length than the code space holds
    yield "JPEG", "dht_bogus", "error", base[:start + 5] + bytes(counts) + base[start + 21:]
    sof, _ = jpeg_segments(base, 0xC0)[0]
    yield "JPEG", "sof_zero_height", "error", base[:sof + 5] + b"\x00\x00" + base[sof + 7:]
    scans = [m.start() for m in re.finditer(b"\xff\xda", prog)]
    ac = next(i for i in scans if prog[i + 4] == 1 and prog[i + 8] > 0)  # a one-component AC scan
    head = 5 + 2 * prog[ac + 4]
    se = prog[ac + head + 1]  # the AC scan ends one coefficient before it starts
    yield "JPEG", "progressive_spectral_range", "error", prog[:ac + head] + bytes([se + 1]) + prog[ac + head + 1:]
    # the first (DC) scan dropped: the AC scans and the DC refinement have no first scan to refine
    yield "JPEG", "progressive_order", "error", prog[:scans[0]] + prog[scans[1]:]
    dri = jpeg_segments(rst, 0xDD)[0][0]
    interval = struct.pack(">H", int(rng.integers(5, 9)))  # 4 MCUs between the markers
    yield "JPEG", "restart_interval_changed", "error", rst[:dri + 4] + interval + rst[dri + 6:]
    cmyk = img.convert("CMYK")
    cmyk_base = encode(cmyk, "JPEG", quality=90)
    cmyk_prog = encode(cmyk, "JPEG", quality=90, progressive=True)
    yield "JPEG", "clean_cmyk", "ok", cmyk_base
    yield "JPEG", "clean_cmyk_progressive", "ok", cmyk_prog
    frac = float(rng.uniform(0.2, 0.95))
    yield "JPEG", "cmyk_entropy_cut_eoi", "error", cut_scan(cmyk_base, frac) + b"\xff\xd9"
    yield "JPEG", "cmyk_entropy_cut_eoi_progressive_last_scan", "error", cut_scan(cmyk_prog, frac, True) + b"\xff\xd9"
    sos = cmyk_base.index(b"\xff\xda")
    flipped = bytearray(cmyk_base)
    for at in rng.integers(sos + 20, len(cmyk_base) - 2, 3):
        flipped[at] ^= 1 << int(rng.integers(0, 8))
    yield "JPEG", "cmyk_entropy_bitflips", "varies", bytes(flipped)


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
    yield from _gif_public_suite_cases(img, rng, base, anim)


def _gif_public_suite_cases(img: Image.Image, rng: np.random.Generator, base: bytes, anim: bytes) -> Iterator[Case]:
    """Kinds of damage in public GIF test suites (imagetestsuite, giflib's and the GIF test
    suites' broken files): an image data chain without its terminator, LZW data that ends
    before the frame is complete, LZW noise or a cut in a later frame of an animation, frames
    of zero size."""
    image, end = next((s, e) for s, e in gif_blocks(base) if base[s] == 0x2C)
    yield "GIF", "missing_block_terminator", "error", base[:end - 1] + base[end:]
    frames = [(s, e) for s, e in gif_blocks(anim) if anim[s] == 0x2C]
    start, end = frames[1]
    lzw = start + 10 + (3 << ((anim[start + 9] & 7) + 1) if anim[start + 9] & 0x80 else 0)
    noise = bytes(rng.integers(0, 256, 40, dtype=np.uint8))
    mid = (lzw + 2 + end) // 2
    mid -= (mid - lzw - 2) % 256
    yield "GIF", "lzw_garbage_later_frame", "varies", anim[:mid + 1] + noise + anim[mid + 41:]
    # the later frame's data ends early: a short last sub-block, then the terminator
    cut = lzw + 2 + int((end - lzw - 2) * rng.uniform(0.2, 0.8))
    cut -= 1 if (cut - lzw - 2) % 256 == 0 else 0
    block = lzw + 1 + 256 * ((cut - lzw - 2) // 256)
    yield "GIF", "lzw_cut_later_frame", "error", (anim[:block] + bytes([cut - block - 1]) + anim[block + 1:cut]
                                                  + b"\x00" + anim[end:])
    yield "GIF", "frame_zero_width", "error", base[:image + 5] + b"\x00\x00" + base[image + 7:]


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
    yield from _tiff_public_suite_cases(img, rng, base, ifd, entries)


def _tiff_entry(tag: int, type_: int, count: int, value: int) -> bytes:
    size = {3: 2, 4: 4}.get(type_, 4)
    return struct.pack("<HHI", tag, type_, count) + (value.to_bytes(size, "little") + bytes(4 - size))


def _tiff_public_suite_cases(img: Image.Image, rng: np.random.Generator, base: bytes, ifd: int,
                             entries: list[bytes]) -> Iterator[Case]:
    """Kinds of damage in public TIFF test suites (libtiff's images and fuzz cases,
    imagetestsuite): a strip offset or a next-IFD offset past the end of an intact file, an
    unknown compression scheme, an EXIF IFD pointer past the end, a tag of the wrong type."""
    tags = {struct.unpack("<H", e[:2])[0]: k for k, e in enumerate(entries)}
    count = len(entries)
    tail = base[ifd + 2 + 12 * count + 4:]

    def rebuilt(new: list[bytes], next_ifd: int = 0) -> bytes:
        if len(new) == count:
            return base[:ifd + 2] + b"".join(new) + struct.pack("<I", next_ifd) + tail
        body = base + b"\x00" * (len(base) & 1)  # a longer IFD goes at the end, the header points to it
        return body[:4] + struct.pack("<I", len(body)) + body[8:] + struct.pack("<H", len(new)) + b"".join(new) \
            + struct.pack("<I", next_ifd)

    def replaced(tag: int, entry: bytes) -> list[bytes]:
        return [entry if struct.unpack("<H", e[:2])[0] == tag else e for e in entries]

    strips = struct.unpack("<HHII", entries[tags[273]])
    at = strips[3] if strips[2] > 1 else ifd + 2 + 12 * tags[273] + 8  # where the strip offsets are
    k = int(rng.integers(0, strips[2]))
    moved = base[:at + 4 * k] + struct.pack("<I", len(base) + int(rng.integers(1, 4096))) + base[at + 4 * k + 4:]
    yield "TIFF", "strip_offset_past_end", "error", moved
    yield "TIFF", "next_ifd_past_end", "error", rebuilt(entries, len(base) + int(rng.integers(8, 4096)))
    scheme = _tiff_entry(259, 3, 1, 60000 + int(rng.integers(0, 999)))
    yield "TIFF", "compression_unknown", "error", rebuilt(replaced(259, scheme))
    exif = _tiff_entry(34665, 4, 1, len(base) + int(rng.integers(8, 4096)))
    yield "TIFF", "exif_ifd_past_end", "warning", rebuilt(sorted(entries + [exif], key=lambda e: e[:2][::-1]))
    # Orientation or ResolutionUnit written as text, Software as a number: libtiff ignores the tag
    wrong = [_tiff_entry(274, 2, 2, 0x31), _tiff_entry(296, 2, 2, 0x32), _tiff_entry(305, 3, 1, 7)]
    yield "TIFF", "tag_wrong_type", "warning", rebuilt(sorted(entries + [wrong[int(rng.integers(0, 3))]],
                                                              key=lambda e: e[:2][::-1]))


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
    yield from _webp_public_suite_cases(img, rng, lossy, alpha)


def _webp_public_suite_cases(img: Image.Image, rng: np.random.Generator, lossy: bytes, alpha: bytes) -> Iterator[Case]:
    """Kinds of damage in public WebP test suites (libwebp's test data and fuzz cases): a VP8
    frame header without its start code, a VP8L header with a wrong signature, a VP8X canvas
    that does not match the frame, a chunk size that is odd without its padding byte."""
    lossless = encode(img, "WEBP", lossless=True)
    vp8 = lossy.index(b"VP8 ") + 8
    yield "WEBP", "vp8_start_code", "error", lossy[:vp8 + 3] + b"\x9d\x01\x2b" + lossy[vp8 + 6:]
    vp8l = lossless.index(b"VP8L") + 8
    yield "WEBP", "vp8l_signature", "error", lossless[:vp8l] + bytes([int(rng.integers(0, 0x2F))]) + lossless[vp8l + 1:]
    canvas = alpha.index(b"VP8X") + 12
    width = int.from_bytes(alpha[canvas:canvas + 3], "little") + int(rng.integers(1, 16))
    yield "WEBP", "vp8x_canvas_mismatch", "error", alpha[:canvas] + width.to_bytes(3, "little") + alpha[canvas + 3:]


FORMATS = {"PNG": _png_cases, "JPEG": _jpeg_cases, "GIF": _gif_cases, "TIFF": _tiff_cases, "WEBP": _webp_cases}
EXTENSIONS = {fmt: suffix(fmt) for fmt in FORMATS}  # the corpus's files are named as curate names each format


def variants(photo: Image.Image, seed: int) -> Iterator[Case]:
    """Every case of every format for one RGB photo; `seed` fixes the random choices."""
    rng = np.random.default_rng(seed)
    for cases in FORMATS.values():
        yield from cases(photo, rng)
