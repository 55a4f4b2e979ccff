"""Image formats' one home: container facts read straight from the bytes, before (or instead of)
a decode (the format a signature names, bit depths, digests), the extensions each format is saved
under, and how curate encodes the images it writes (shard normalisation, augmented variants)."""
from __future__ import annotations

import io
from typing import TYPE_CHECKING

import xxhash

if TYPE_CHECKING:
    from PIL import Image

# The file extensions each format (as Pillow names it, detected from the bytes) is saved under;
# the first is the one curate writes it under.
EXTENSIONS = {
    "JPEG": ("jpg", "jpeg", "jpe", "jfif"), "PNG": ("png",), "GIF": ("gif",), "WEBP": ("webp",), "BMP": ("bmp", "dib"),
    "TIFF": ("tif", "tiff"), "MPO": ("jpg", "jpeg", "mpo"), "ICO": ("ico",), "PPM": ("ppm", "pgm", "pbm", "pnm"),
}


# The formats curate writes, by signature (publish names a variant's file after it).
_SIGNATURES = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"RIFF", "WEBP"), (b"GIF8", "GIF"))


def sniff(data: bytes) -> str | None:
    """The format (as Pillow names it) that `data`'s signature names, of those curate writes; else None."""
    return next((fmt for magic, fmt in _SIGNATURES if data.startswith(magic)), None)


def suffix(fmt: str | None) -> str:
    """The extension curate writes a file of format `fmt` under (`img` for none it knows)."""
    return EXTENSIONS.get((fmt or "").upper(), ("img",))[0]


def encode(image: Image.Image, fmt: str, quality: int) -> bytes:
    """`image` encoded as `fmt` ("jpeg" at `quality`, or "png"), as shards and variants hold it."""
    buf = io.BytesIO()
    if fmt == "png":
        image.save(buf, "PNG")
    else:
        image.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def extension_matches(fmt: str, extension: str) -> bool:
    """Whether `extension` (lower case, no dot) is one a file of format `fmt` is saved under
    (an unlisted format: its own name)."""
    return extension in EXTENSIONS.get(fmt, (fmt.lower(),))

# Signatures of image codecs Pillow cannot decode here: reported as unsupported_codec.
_ISO_BMFF_BRANDS = {
    b"heic": "HEIC", b"heix": "HEIC", b"hevc": "HEIC", b"heim": "HEIC", b"heis": "HEIC", b"mif1": "HEIF",
    b"msf1": "HEIF", b"avif": "AVIF", b"avis": "AVIF",
}


def sniff_unsupported(data: bytes) -> str | None:
    """The name of a known image codec that Pillow cannot open, from the leading bytes."""
    if len(data) >= 12 and data[4:8] == b"ftyp":
        return _ISO_BMFF_BRANDS.get(data[8:12], None)
    if data[:2] == b"\xff\x0a" or data[:12] == b"\x00\x00\x00\x0cJXL \x0d\x0a\x87\x0a":
        return "JPEG XL"
    if data[:4] == b"\x00\x00\x00\x0c" and data[4:8] == b"jP  ":
        return "JPEG 2000"
    return None


def jpeg_precision(data: bytes) -> int | None:
    """Sample precision (8 or 12) from the first SOF marker of a JPEG, None if not found."""
    for marker, start, _end in _jpeg_segments(data):
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return data[start] if start < len(data) else None
    return None


def png_bit_depth(data: bytes) -> int | None:
    """Bit depth per channel from a PNG's IHDR chunk."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 24:
        return data[24]
    return None


# APPn segments and comments carry metadata, not pixels; APP14 (Adobe) changes colour decoding.
_METADATA_MARKERS = set(range(0xE0, 0xEE)) | {0xEF, 0xFE}


def _jpeg_segments(data: bytes):
    """Yield (marker, payload_start, payload_end) for each header segment up to SOS."""
    if data[:2] != b"\xff\xd8":
        return
    i = 2
    n = len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        length = int.from_bytes(data[i + 2:i + 4], "big")
        yield marker, i + 4, i + 2 + length
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            return
        i += 2 + length


def jpeg_pixel_digest(data: bytes, orientation: int) -> str | None:
    """A hash of everything in a JPEG that decides its decoded, oriented pixels.

    Metadata segments (EXIF, XMP, ICC, comments) are skipped; the tables, frame header, scan
    data and the EXIF orientation are hashed. Two files with the same digest decode to the same
    pixels, without decoding either. None when the segment structure cannot be parsed.
    """
    h = xxhash.xxh3_128()
    h.update(b"jpeg-orientation-%d" % orientation)
    sos_end = None
    for marker, start, end in _jpeg_segments(data):
        if marker not in _METADATA_MARKERS:
            h.update(data[start - 4:end])
        if marker == 0xDA:
            sos_end = end
    if sos_end is None:
        return None
    h.update(data[sos_end:])
    return h.hexdigest()


def bytes_digest(data: bytes) -> str:
    """Hex content hash (XXH3-128) of the raw file bytes."""
    return xxhash.xxh3_128_hexdigest(data)


def sample_id(path: str, bytes_hash: str | None) -> str:
    """A sample's stable id: a hash of its path under SRC and its bytes' `bytes_digest` (so bytes that
    differ from the scanned ones give another id)."""
    return xxhash.xxh3_64_hexdigest(f"{path}\0{bytes_hash or ''}".encode())


def pixels_digest(mode: str, size: tuple[int, int], raw: bytes) -> str:
    """Hex hash of decoded pixels (mode and size included)."""
    h = xxhash.xxh3_128()
    h.update(f"{mode}:{size[0]}x{size[1]}:".encode())
    h.update(raw)
    return h.hexdigest()
