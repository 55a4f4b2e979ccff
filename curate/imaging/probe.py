"""One decode of one file's bytes into every fact the later stages need.

`probe(data, ...)` never raises for a bad file: the result carries `status="error"` with an
`ErrorCode` and a message. It never sets Pillow's process-global truncated-image flag.
`fingerprint(rows, thumbs)` then adds hashes and quality statistics for a whole partition.
"""
from __future__ import annotations

import io
import warnings
import zlib
from typing import Any

import numpy as np
from PIL import Image, ImageCms, UnidentifiedImageError

from curate.codes import ErrorCode, Status
from curate.imaging import formats, strict_jpeg, structure
from curate.imaging.blur import edge_sharpness, working_luma
from curate.imaging.hashes import THUMB, dhash, phash_d8
from curate.imaging.quality import quality_stats

_ORIENT_OPS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM", b"II*\x00", b"MM\x00*", b"RIFF")
_BACKGROUNDS = {"white": (255, 255, 255), "black": (0, 0, 0)}
_SRGB = ImageCms.createProfile("sRGB")
# Pillow first box-reduces the image by whole factors to within this many times the thumbnail's
# side, then resamples bilinearly: 1.5 (a 500x375 photo reduced 5x3) costs 0.33 ms against 2.0's
# 0.46, and its pHash agrees with imagehash's (Lanczos from the full image) as closely
# (benchmarks/scan.py's agreement table; benchmarks/dedup_quality.py for the duplicates found).
THUMB_REDUCING_GAP = 1.5
_SKIPPED_RULE = "jpeg.extraneous"  # the structure warning for bytes skipped between header segments


def _error(code: ErrorCode, message: str, **facts: Any) -> dict[str, Any]:
    return {**facts, "status": Status.ERROR.value, "error_code": code.value, "error_message": message[:500]}


def _read_orientation(im: Image.Image) -> tuple[int, str | None]:
    try:
        value = im.getexif().get(0x0112, 1)
    except Exception as exc:  # noqa: BLE001  (malformed EXIF must not stop the scan)
        return 1, f"{type(exc).__name__}: {exc}"
    if not isinstance(value, int) or not 1 <= value <= 8:
        return 1, f"invalid orientation {value!r}"
    return value, None


def _bit_depth(im: Image.Image, data: bytes) -> int:
    if im.format == "PNG":
        return formats.png_bit_depth(data) or 8
    if im.format == "JPEG":
        return formats.jpeg_precision(data) or 8
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return 16
    if im.mode in ("I", "F"):
        return 32
    return 1 if im.mode == "1" else 8


def to_display(im: Image.Image, bit_depth: int, background: str) -> Image.Image:
    """An 8-bit 'RGB' (or the decoder's 'RGBX', the same pixels) or 'L' image: CMYK via its ICC
    profile, high bit depths scaled, alpha composited over `background`."""
    mode = im.mode
    if mode in ("RGB", "RGBX", "L"):
        return im
    if mode == "CMYK":
        icc = im.info.get("icc_profile")
        if icc:
            try:
                converted = ImageCms.profileToProfile(im, ImageCms.ImageCmsProfile(io.BytesIO(icc)), _SRGB,
                                                      outputMode="RGB")
            except (ImageCms.PyCMSError, OSError, ValueError):
                converted = None
            if converted is not None:
                return converted
        return im.convert("RGB")
    if mode.startswith("I") or mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        if mode == "F":
            lo, hi = float(arr.min()), float(arr.max())
            arr = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        else:
            arr = arr * (255.0 / (2 ** min(bit_depth, 16) - 1))
        return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L")
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        base = Image.new("RGBA", rgba.size, _BACKGROUNDS[background] + (255,))
        return Image.alpha_composite(base, rgba).convert("RGB")
    return im.convert("RGB")


def _lenient_jpeg_decodes(data: bytes) -> bool:
    """Whether a truncated JPEG decodes once an end-of-image marker is appended."""
    try:
        with Image.open(io.BytesIO(data + b"\xff\xd9")) as im:
            im.draft(None, (64, 64))
            im.load()
        return True
    except Exception:  # noqa: BLE001  (any failure of the lenient decode: not recoverable)
        return False


def _strict_jpeg(im: Image.Image, data: bytes, scale: int, strict: bool) -> tuple[np.ndarray | None, str | None]:
    """The JPEG's pixels decoded by libjpeg-turbo, `strict`ly or not (`strict_jpeg.decode_pixels`), or
    None where Pillow decodes it instead: where that path does not apply, and where libjpeg skipped
    bytes before a marker (its complaint comes back too: the structure checks decide whether
    they lie between header segments, which is harmless). Raises `JpegDamage` for every other complaint."""
    if not strict_jpeg.decodable(im):
        return None, None
    w, h = im.size
    try:
        return strict_jpeg.decode_pixels(data, im.mode, w, h, scale, strict=strict), None
    except strict_jpeg.JpegDamage as damage:
        if not damage.skipped_bytes:
            raise
        return None, str(damage)


def _classify_open_failure(data: bytes, exc: Exception) -> dict[str, Any]:
    codec = formats.sniff_unsupported(data)
    if codec:
        return _error(ErrorCode.UNSUPPORTED_CODEC, f"{codec} is not supported by the installed decoders",
                      format=codec)
    if isinstance(exc, UnidentifiedImageError) and not data.startswith(_MAGIC):
        return _error(ErrorCode.NOT_IMAGE, "not an image file (no known image signature)")
    return _error(ErrorCode.CORRUPT, f"{type(exc).__name__}: {exc}")


def probe(data: bytes, *, decode_size: int = 256, max_pixels: int = 178_956_970,
          background: str = "white", structure_checks: bool = True) -> tuple[dict[str, Any], bytes | None]:
    """Facts about one file's bytes: format, oriented size, mode, hashes, quality statistics.

    JPEGs are decoded once at the smallest DCT scale (1/2, 1/4, 1/8) that keeps both sides at
    least `decode_size`: that still reads every entropy-coded byte, so truncation is caught.
    8-bit RGB and greyscale JPEGs are decoded by libjpeg-turbo directly (`strict_jpeg`), in strict
    mode with `structure_checks`: what libjpeg warns about makes the row `corrupt` (or
    `truncated`). Other formats are decoded in full by Pillow. With `structure_checks`, the
    container is then checked the way strict decoders check it (`curate.imaging.structure`): an
    error makes the row `corrupt`, tolerated deviations go to `structure_warnings`. The decoded image also gives
    `edge_sharpness` (`curate.imaging.blur`), measured at up to 512 px before the thumbnail is made.
    Returns manifest columns (no path/label/size/mtime, no hashes or statistics yet) and the 64x64
    RGB thumbnail that `fingerprint` reads, or None.
    """
    if not data:
        return _error(ErrorCode.ZERO_BYTE, "file is empty (0 bytes)"), None
    facts: dict[str, Any] = {"bytes_hash": formats.bytes_digest(data)}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        return _error(ErrorCode.DECOMPRESSION_BOMB, str(exc), **facts), None
    except Exception as exc:  # noqa: BLE001  (every open failure is classified into an error code)
        return {**facts, **_classify_open_failure(data, exc)}, None

    with im:
        w, h = im.size
        try:  # Pillow walks every GIF frame and TIFF directory to count them: a broken later one raises
            n_frames = getattr(im, "n_frames", 1)
        except Exception as exc:  # noqa: BLE001  (any failure to walk the frames is damage, classified)
            return _error(ErrorCode.CORRUPT, f"{type(exc).__name__}: {exc}", format=im.format, width=w, height=h,
                          **facts), None
        facts.update(format=im.format, width=w, height=h, mode=im.mode, n_frames=n_frames,
                     bit_depth=_bit_depth(im, data),
                     icc_profile=bool(im.info.get("icc_profile")),
                     has_alpha="A" in im.mode or (im.mode == "P" and "transparency" in im.info))
        if w * h > max_pixels:
            return _error(ErrorCode.DECOMPRESSION_BOMB,
                          f"{w}x{h} = {w * h} pixels exceeds the limit of {max_pixels}", **facts), None
        if im.format == "JPEG" and facts["bit_depth"] not in (8,):
            return _error(ErrorCode.UNSUPPORTED_CODEC, f"{facts['bit_depth']}-bit JPEG is not supported",
                          **facts), None
        scale, pixels, decoded, skipped = 1, None, None, None
        try:
            if im.format == "JPEG":
                scale = strict_jpeg.draft_scale(w, h, decode_size)
                pixels, skipped = _strict_jpeg(im, data, scale, structure_checks)
                if pixels is None:
                    im.draft(None, (decode_size, decode_size))
                else:
                    decoded = strict_jpeg.image(pixels, im.mode, data)
            if decoded is None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    im.load()
                decoded = im
        except strict_jpeg.JpegDamage as damage:
            if damage.truncated:
                return _error(ErrorCode.TRUNCATED, f"libjpeg: {damage}", recoverable=_lenient_jpeg_decodes(data),
                              **facts), None
            return _error(ErrorCode.CORRUPT, f"libjpeg: {damage}", **facts), None
        except Image.DecompressionBombError as exc:
            return _error(ErrorCode.DECOMPRESSION_BOMB, str(exc), **facts), None
        except MemoryError:
            return _error(ErrorCode.MEMORY_LIMIT, f"not enough memory to decode {w}x{h} pixels", **facts), None
        except (OSError, SyntaxError, ValueError, EOFError, zlib.error, IndexError, TypeError) as exc:
            message = f"{type(exc).__name__}: {exc}"
            if "truncated" in str(exc).lower() or isinstance(exc, EOFError):
                recoverable = _lenient_jpeg_decodes(data) if im.format == "JPEG" else None
                return _error(ErrorCode.TRUNCATED, message, recoverable=recoverable, **facts), None
            return _error(ErrorCode.CORRUPT, message, **facts), None
        facts["decode_scale"] = scale
        # after the decode: reading a PNG's EXIF loads the image, and would swallow a decode error
        orientation, exif_error = _read_orientation(im)
        if orientation >= 5:
            facts.update(width=h, height=w)
        facts.update(exif_orientation=orientation, exif_error=exif_error)
        if structure_checks:
            findings = structure.inspect(data, decoded, im.format)
            broken, facts["structure_warnings"] = structure.verdict(findings)
            if broken is None and skipped is not None and not any(f.rule == _SKIPPED_RULE for f in findings):
                broken = f"libjpeg: {skipped}"  # bytes skipped where the structure walk sees none: entropy data
            if broken:
                return _error(ErrorCode.CORRUPT, broken, **facts), None
        try:
            shown = to_display(decoded, facts["bit_depth"], background)
            thumb = _thumbnail(shown, orientation)
            # the decoder's own array where it is what is shown (no copy); Pillow's pixels otherwise
            shown_pixels = pixels if shown is decoded and pixels is not None else np.asarray(shown)
            facts["edge_sharpness"] = edge_sharpness(working_luma(shown_pixels))
            facts["pixel_hash"] = _pixel_hash(decoded, im.format, data, orientation)
        except Exception as exc:  # noqa: BLE001  (a decoder quirk on an odd mode is a bad file, not a crash)
            return _error(ErrorCode.CORRUPT, f"{type(exc).__name__}: {exc}", **facts), None
        return {**facts, "status": Status.OK.value}, thumb


def _thumbnail(shown: Image.Image, orientation: int) -> bytes:
    """The 64x64 thumbnail of frame 0 (already `to_display`ed) after EXIF orientation: RGB bytes,
    then luma bytes."""
    if orientation in _ORIENT_OPS:
        shown = shown.transpose(_ORIENT_OPS[orientation])
    thumb = shown.resize((THUMB, THUMB), Image.Resampling.BILINEAR, reducing_gap=THUMB_REDUCING_GAP)
    return (thumb if thumb.mode == "RGB" else thumb.convert("RGB")).tobytes() + (
        thumb if thumb.mode == "L" else thumb.convert("L")).tobytes()


def _pixel_hash(im: Image.Image, fmt: str | None, data: bytes, orientation: int) -> str:
    """Hash of the decoded, oriented pixels; for JPEG, of what decides them (no decode)."""
    digest = formats.jpeg_pixel_digest(data, orientation) if fmt == "JPEG" else None
    if digest is None:
        oriented = im.transpose(_ORIENT_OPS[orientation]) if orientation in _ORIENT_OPS else im
        if oriented.mode == "RGBX":  # the decoder's layout of RGB: hashed as the RGB it is
            oriented = oriented.convert("RGB")
        digest = formats.pixels_digest(oriented.mode, oriented.size, oriented.tobytes())
    return digest


FINGERPRINT_CHUNK = 128  # thumbnails hashed at a time: their temporaries stay in cache


def fingerprint(rows: list[dict[str, Any]], thumbs: list[bytes | None]) -> None:
    """Add perceptual hashes and quality statistics to the rows that have a thumbnail."""
    idx = [i for i, t in enumerate(thumbs) if t is not None]
    for start in range(0, len(idx), FINGERPRINT_CHUNK):
        chunk = idx[start:start + FINGERPRINT_CHUNK]
        both = np.frombuffer(b"".join(thumbs[i] or b"" for i in chunk), dtype=np.uint8).reshape(
            len(chunk), THUMB * THUMB * 4)
        rgb = both[:, :THUMB * THUMB * 3].reshape(-1, THUMB, THUMB, 3)
        gray = both[:, THUMB * THUMB * 3:].reshape(-1, THUMB, THUMB)
        luma = gray.astype(np.float32)
        d8 = phash_d8(luma)
        columns = {"phash": d8[:, 0], "dhash": dhash(luma), **quality_stats(rgb, gray)}
        values = {name: column.tolist() for name, column in columns.items()}
        for k, (i, hashes) in enumerate(zip(chunk, d8.tolist())):
            row = rows[i]
            row["phash_d8"] = hashes
            for name, column in values.items():
                row[name] = column[k]
