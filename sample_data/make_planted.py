"""(Re)write the planted problem files of sample_data/ and its ground truth, expected.json.

Needs only the standard library, Pillow and numpy. Deterministic: fixed JPEG qualities, fixed
frame offsets, no timestamps, so running it twice gives byte-identical files (with the same
Pillow/libjpeg build; the committed files were made with Pillow 13.0.0). It never touches the
ordinary images: planted files are derived from them (cases 1-5) or from the crops stored in
planted_sources.npz (cases 6-16), which overlap no ordinary image.

    python sample_data/make_planted.py            # rewrite planted files + expected.json
    python sample_data/check_expected.py          # verify expected.json against the files
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

HERE = Path(__file__).resolve().parent
SPLITS = ("train", "test")
SOURCES = HERE / "planted_sources.npz"
Q_DEFAULT = 85  # quality of every JPEG written here unless a case says otherwise

# ---------------------------------------------------------------------------------------------
# The planted files. Every entry: path -> description. `checks` lists the validation checks the
# file should trigger; `incidental_checks` those that may also fire as a side effect of the
# defect (depending on thresholds); duplicates are described separately (DUPLICATES below).
# ---------------------------------------------------------------------------------------------
PLANTED = {
    # 1-5: duplicates derived from ordinary images
    "train/raccoon/planted_exact_copy.jpg": dict(case="exact_bytes", checks=[]),
    "train/raccoon/planted_metadata_resave.jpg": dict(case="pixels_metadata", checks=[]),
    "train/coffee/planted_near_resized.jpg": dict(case="near_resized", checks=[]),
    "train/temple/planted_near_q60.jpg": dict(case="near_jpeg_q60", checks=[]),
    "train/raccoon/planted_near_hflip.jpg": dict(case="near_hflip", checks=[]),
    "train/flower/planted_near_rot90.jpg": dict(case="near_rot90", checks=[]),
    "test/raccoon/planted_leak_copy.jpg": dict(case="leak_copy", checks=[]),
    "train/raccoon/planted_label_conflict.jpg": dict(case="label_conflict", checks=[]),
    # 6-8: files that are not (whole) images
    "train/raccoon/planted_truncated.jpg": dict(case="truncated", checks=[], error_code="truncated"),
    "train/coffee/planted_zero_byte.jpg": dict(case="zero_byte", checks=[], error_code="zero_byte"),
    "test/flower/planted_text.jpg": dict(case="not_image", checks=[], error_code="not_image"),
    # 9-16: distinct content, one defect each
    "train/astronaut/planted_png_named_jpg.jpg": dict(case="extension_mismatch", checks=["extension_mismatch"]),
    "train/coffee/planted_cmyk.jpg": dict(case="cmyk", checks=["cmyk"]),
    "train/coffee/planted_16bit.png": dict(case="high_bit_depth", checks=["high_bit_depth", "grayscale"]),
    "train/raccoon/planted_exif_rotated.jpg": dict(case="exif_rotated", checks=["exif_rotated"]),
    "train/raccoon/planted_animated.gif": dict(case="animated", checks=["animated"]),
    # a 12x9 image is also far below the collection's median area (odd_size); blown up to a
    # 64x64 thumbnail it also looks blurry, which is a side effect, not the point
    "train/flower/planted_tiny.jpg": dict(case="too_small", checks=["too_small", "odd_size"],
                                          incidental_checks=["blurry"]),
    "test/temple/planted_grayscale.jpg": dict(case="grayscale", checks=["grayscale"]),
    "train/raccoon/planted_odd_aspect.jpg": dict(case="odd_aspect_ratio", checks=["odd_aspect_ratio"]),
}

# (kind, transform, original, copy, extra)
DUPLICATES = [
    ("bytes", "byte_copy", "train/raccoon/raccoon_01.jpg", "train/raccoon/planted_exact_copy.jpg", {}),
    ("pixels", "jpeg_comment_segment_added", "train/raccoon/raccoon_02.jpg",
     "train/raccoon/planted_metadata_resave.jpg", {}),
    ("near", "resize_0.6x_jpeg_q85", "train/coffee/coffee_01.jpg", "train/coffee/planted_near_resized.jpg", {}),
    ("near", "reencode_jpeg_q60", "train/temple/temple_02.jpg", "train/temple/planted_near_q60.jpg", {}),
    ("near", "hflip_jpeg_q85", "train/raccoon/raccoon_05.jpg", "train/raccoon/planted_near_hflip.jpg",
     {"needs_dihedral": True}),
    ("near", "rot90_jpeg_q85", "train/flower/flower_01.jpg", "train/flower/planted_near_rot90.jpg",
     {"needs_dihedral": True}),
    ("bytes", "byte_copy", "train/raccoon/raccoon_06.jpg", "test/raccoon/planted_leak_copy.jpg", {}),
    ("near", "reencode_jpeg_q90", "train/cat/cat_01.jpg", "train/raccoon/planted_label_conflict.jpg", {}),
]

TEXT_FILE = (
    "This is not an image.\n"
    "It is a plain text file with a .jpg name, planted in curate's sample data to test\n"
    "that the scan reports it as not_image instead of crashing.\n"
)
COMMENT = b"curate sample data: a metadata-only change; the pixels are those of raccoon_02.jpg"
TRUNCATE_AT = 0.60
GIF_FRAME = 150
GIF_OFFSETS = ((0, 0), (16, 20), (33, 41))


def _jpeg_bytes(img: Image.Image, quality: int = Q_DEFAULT) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _decode(rel: str) -> Image.Image:
    with Image.open(HERE / rel) as im:
        im.load()
        return im.copy()


def _jpeg_add_comment(data: bytes, comment: bytes) -> bytes:
    """Splice a COM segment in after the APPn segments: same scan data, so same pixels."""
    assert data[:2] == b"\xff\xd8", "not a JPEG"
    pos = 2
    while data[pos] == 0xFF and 0xE0 <= data[pos + 1] <= 0xEF:  # APP0..APP15
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    segment = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
    return data[:pos] + segment + data[pos:]


def _load_sources() -> dict[str, np.ndarray]:
    with np.load(SOURCES) as npz:
        return {k: npz[k] for k in npz.files}


def build_planted() -> dict[str, bytes]:
    """Return path -> bytes for every planted file (nothing written)."""
    src = _load_sources()
    out: dict[str, bytes] = {}
    # 1. exact byte copy
    out["train/raccoon/planted_exact_copy.jpg"] = (HERE / "train/raccoon/raccoon_01.jpg").read_bytes()
    # 2. same JPEG scan data + a COM segment
    out["train/raccoon/planted_metadata_resave.jpg"] = _jpeg_add_comment(
        (HERE / "train/raccoon/raccoon_02.jpg").read_bytes(), COMMENT)
    # 3. near duplicates
    im = _decode("train/coffee/coffee_01.jpg")
    out["train/coffee/planted_near_resized.jpg"] = _jpeg_bytes(
        im.resize((round(im.width * 0.6), round(im.height * 0.6)), Image.LANCZOS))
    out["train/temple/planted_near_q60.jpg"] = _jpeg_bytes(_decode("train/temple/temple_02.jpg"), 60)
    out["train/raccoon/planted_near_hflip.jpg"] = _jpeg_bytes(
        _decode("train/raccoon/raccoon_05.jpg").transpose(Image.FLIP_LEFT_RIGHT))
    out["train/flower/planted_near_rot90.jpg"] = _jpeg_bytes(
        _decode("train/flower/flower_01.jpg").transpose(Image.ROTATE_90))
    # 4. train image copied into test: a cross-split leak
    out["test/raccoon/planted_leak_copy.jpg"] = (HERE / "train/raccoon/raccoon_06.jpg").read_bytes()
    # 5. a cat image re-encoded into the raccoon folder: same picture, two labels
    out["train/raccoon/planted_label_conflict.jpg"] = _jpeg_bytes(_decode("train/cat/cat_01.jpg"), 90)
    # 6. truncated JPEG (distinct content, cut at 60% of its bytes)
    full = _jpeg_bytes(Image.fromarray(src["truncated"], "RGB"))
    out["train/raccoon/planted_truncated.jpg"] = full[:int(len(full) * TRUNCATE_AT)]
    # 7. zero bytes
    out["train/coffee/planted_zero_byte.jpg"] = b""
    # 8. text named .jpg
    out["test/flower/planted_text.jpg"] = TEXT_FILE.encode("ascii")
    # 9. PNG bytes named .jpg
    out["train/astronaut/planted_png_named_jpg.jpg"] = _png_bytes(Image.fromarray(src["png_named_jpg"], "RGB"))
    # 10. CMYK JPEG
    out["train/coffee/planted_cmyk.jpg"] = _jpeg_bytes(Image.fromarray(src["cmyk"], "RGB").convert("CMYK"))
    # 11. 16-bit grayscale PNG: luminance in float, scaled to 0..65535 (not just v*257)
    rgb = src["high_bit_depth"].astype(np.float64)
    lum = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    gray16 = np.clip(np.rint(lum * 257.0), 0, 65535).astype(np.uint16)
    out["train/coffee/planted_16bit.png"] = _png_bytes(Image.fromarray(gray16))
    # 12. stored rotated 90 degrees counter-clockwise + EXIF Orientation 6 (rotate 90 CW to show)
    upright = Image.fromarray(src["exif_rotated"], "RGB")
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    upright.transpose(Image.ROTATE_90).save(buf, "JPEG", quality=Q_DEFAULT, exif=exif.tobytes())
    out["train/raccoon/planted_exif_rotated.jpg"] = buf.getvalue()
    # 13. animated GIF: three 150x150 frames panning over one crop
    base = Image.fromarray(src["animated"], "RGB")
    frames = [base.crop((x, y, x + GIF_FRAME, y + GIF_FRAME))
              .quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
              for x, y in GIF_OFFSETS]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=300, loop=0,
                   optimize=False, disposal=1)
    out["train/raccoon/planted_animated.gif"] = buf.getvalue()
    # 14. tiny 12x9
    out["train/flower/planted_tiny.jpg"] = _jpeg_bytes(
        Image.fromarray(src["tiny"], "RGB").resize((12, 9), Image.LANCZOS))
    # 15. grayscale (mode L) JPEG
    out["test/temple/planted_grayscale.jpg"] = _jpeg_bytes(Image.fromarray(src["grayscale"], "RGB").convert("L"))
    # 16. 10:1 strip
    out["train/raccoon/planted_odd_aspect.jpg"] = _jpeg_bytes(Image.fromarray(src["odd_aspect"], "RGB"))
    assert set(out) == set(PLANTED), set(out) ^ set(PLANTED)
    return out


# ---------------------------------------------------------------------------------------------
# expected.json: every file under train/ and test/, described by what Pillow sees.
# ---------------------------------------------------------------------------------------------
def describe(path: Path) -> dict:
    """Format, size after EXIF orientation, mode, frames, orientation, error, as Pillow sees them."""
    info = dict(format=None, width=None, height=None, mode=None, bit_depth=None, n_frames=None,
                exif_orientation=None, error_code=None)
    data = path.read_bytes()
    if not data:
        info["error_code"] = "zero_byte"
        return info
    try:
        im = Image.open(path)
    except Exception:  # noqa: BLE001 - Pillow raises UnidentifiedImageError and friends
        info["error_code"] = "not_image"
        return info
    with im:
        orientation = im.getexif().get(0x0112)
        w, h = im.size
        if orientation in (5, 6, 7, 8):
            w, h = h, w
        info.update(format=im.format, width=w, height=h, mode=im.mode,
                    bit_depth=16 if im.mode in ("I;16", "I;16B", "I;16L", "I") else 8,
                    n_frames=getattr(im, "n_frames", 1),
                    exif_orientation=int(orientation) if orientation is not None else None)
        try:
            im.load()
        except OSError:
            info["error_code"] = "truncated"
    return info


def _oriented_gray(path: Path) -> Image.Image:
    """First frame, EXIF orientation applied, as 8-bit L (16-bit gray scaled down, not clipped)."""
    with Image.open(path) as im:
        im.seek(0)
        im = ImageOps.exif_transpose(im)
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            a = np.asarray(im, dtype=np.float64) / 257.0
            return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")
        return im.convert("L")


def _phash(gray: Image.Image) -> np.ndarray:
    """imagehash.phash: 32x32 LANCZOS, 2-D DCT-II, top-left 8x8 compared with its median."""
    a = np.asarray(gray.resize((32, 32), Image.LANCZOS), dtype=np.float64)
    n = np.arange(32)
    c = np.cos(np.pi * np.outer(n, 2 * n + 1) / 64.0)
    d = (c @ a @ c.T)[:8, :8]
    return (d > np.median(d)).flatten()


D8 = (None, Image.ROTATE_90, Image.ROTATE_180, Image.ROTATE_270, Image.FLIP_LEFT_RIGHT,
      Image.FLIP_TOP_BOTTOM, Image.TRANSPOSE, Image.TRANSVERSE)


def phash_bits(path: Path) -> np.ndarray:
    return _phash(_oriented_gray(path))


def phash_d8(path: Path) -> list[np.ndarray]:
    """pHash bits of the 8 flips/rotations of the image (index 0 = as is)."""
    g = _oriented_gray(path)
    return [_phash(g if t is None else g.transpose(t)) for t in D8]


def all_files() -> list[str]:
    rels = []
    for split in SPLITS:
        for p in sorted((HERE / split).rglob("*")):
            if p.is_file():
                rels.append(p.relative_to(HERE).as_posix())
    return sorted(rels)


def build_expected() -> dict:
    rels = all_files()
    classes = sorted({r.split("/")[1] for r in rels})
    counts = {s: {c: 0 for c in classes} for s in SPLITS}
    files = []
    for rel in rels:
        split, label = rel.split("/")[:2]
        counts[split][label] += 1
        meta = PLANTED.get(rel, dict(case="ordinary", checks=[]))
        d = describe(HERE / rel)
        if d["error_code"] != meta.get("error_code"):
            raise SystemExit(f"{rel}: Pillow says error {d['error_code']}, planted as {meta.get('error_code')}")
        files.append(dict(path=rel, split=split, label=label, case=meta["case"], format=d["format"],
                          width=d["width"], height=d["height"], mode=d["mode"], bit_depth=d["bit_depth"],
                          n_frames=d["n_frames"], exif_orientation=d["exif_orientation"],
                          error_code=d["error_code"], checks=list(meta["checks"]),
                          incidental_checks=list(meta.get("incidental_checks", []))))
    dups = []
    for kind, transform, a, b, extra in DUPLICATES:
        sa, la = a.split("/")[:2]
        sb, lb = b.split("/")[:2]
        ha, hb = phash_bits(HERE / a), phash_d8(HERE / b)
        entry = dict(kind=kind, transform=transform, paths=[a, b], leak=sa != sb, label_conflict=la != lb,
                     phash_distance=int((ha != hb[0]).sum()),
                     phash_distance_d8=int(min((ha != h).sum() for h in hb)))
        entry.update(extra)
        dups.append(entry)
    return dict(
        description="Ground truth for curate's sample data; written by make_planted.py, checked by "
                    "check_expected.py. Paths are relative to sample_data/.",
        classes=classes, counts=counts, files=files, duplicates=dups,
        plan_counts_default=plan_counts(files, dups),
        plan_counts_default_note="curate run with embedded defaults (dedup.dihedral off): usable images per "
                                 "split and class after dropping scan errors, duplicates (one per pair; both "
                                 "members of a label conflict; the train side of a leak)")


def plan_counts(files: list[dict], dups: list[dict]) -> dict:
    """Usable images per split and class once errors and duplicates are dropped (no dihedral)."""
    dropped = set()
    for d in dups:
        if d.get("needs_dihedral"):
            continue
        a, b = d["paths"]
        if d["label_conflict"]:
            dropped |= {a, b}
        elif d["leak"]:
            dropped.add(a if a.startswith("train/") else b)
        else:
            dropped.add(b)  # both members share a class
    counts: dict = {}
    for f in files:
        if not f["error_code"] and f["path"] not in dropped:
            by_label = counts.setdefault(f["split"], {})
            by_label[f["label"]] = by_label.get(f["label"], 0) + 1
    return counts


def write_json(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj, indent=1, sort_keys=False) + "\n")


def main() -> None:
    for rel, data in build_planted().items():
        p = HERE / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if not p.exists() or p.read_bytes() != data:
            p.write_bytes(data)
    write_json(HERE / "expected.json", build_expected())
    print(f"wrote {len(PLANTED)} planted files and expected.json")


if __name__ == "__main__":
    main()
