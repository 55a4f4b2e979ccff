"""Rebuild the ordinary images and the planted-case source crops from the package photos.

This is the provenance record of every committed original: which photo, which crop box
(in the photo's own pixels), which scale. You do not need to run it: its outputs are
committed. It needs packages that the project does not depend on:

    python3 -m venv /tmp/sdvenv
    /tmp/sdvenv/bin/pip install pillow numpy scikit-image scikit-learn
    /tmp/sdvenv/bin/pip download --no-deps scipy==1.9.3 -d /tmp/scipy-wheel   # ships face.dat
    /tmp/sdvenv/bin/python sample_data/build_originals.py --scipy-wheel /tmp/scipy-wheel/scipy-1.9.3-*.whl

It (re)writes sample_data/{train,test}/<class>/<class>_NN.jpg (ordinary images only; it first
deletes train/ and test/) and sample_data/planted_sources.npz (RGB uint8 crops, one array per
planted case, kept out of the image tree so that a scan never sees them); then you run
make_planted.py for the planted files and expected.json. Output bytes depend on the
Pillow/libjpeg version (the committed files were made with Pillow 13.0.0).
"""
from __future__ import annotations

import argparse
import bz2
import glob
import io
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
JPEG_QUALITY = 85

# name -> (package file, licence note)
PHOTOS = {
    "raccoon": ("scipy 1.9.3 wheel: scipy/misc/face.dat (scipy.misc.face())",
                "public domain (raccoon-procyon-lotor.jpg from public-domain-image.com, "
                "per the scipy.misc.face docstring)"),
    "temple": ("scikit-learn: sklearn/datasets/images/china.jpg",
               "CC BY 2.0, danielbuechele on Flickr (sklearn/datasets/images/README.txt)"),
    "flower": ("scikit-learn: sklearn/datasets/images/flower.jpg",
               "CC BY 2.0, vultilion on Flickr (sklearn/datasets/images/README.txt)"),
    "coffee": ("scikit-image: skimage/data/coffee.png",
               "CC0, photographer Rachel Michetti, courtesy of Pikolo Espresso Bar (skimage.data.coffee docstring)"),
    "cat": ("scikit-image: skimage/data/chelsea.png",
            "CC0, photographer Stefan van der Walt (skimage.data.chelsea docstring)"),
    "astronaut": ("scikit-image: skimage/data/astronaut.png",
                  "public domain, NASA (skimage.data.astronaut docstring)"),
}

# Each photo is cut into a grid of equal tiles; (i, j) = (column, row).
# name -> (columns, rows, scale applied to each tile, ordinary tiles, test tiles)
GRIDS = {
    "raccoon": (7, 5, 1.25,
                [(0, 0), (1, 0), (2, 0), (4, 0), (5, 0),
                 (0, 1), (1, 1), (2, 1), (3, 1), (4, 1), (5, 1),
                 (1, 2), (2, 2), (3, 2), (4, 2), (5, 2),
                 (0, 3), (2, 3), (3, 3), (4, 3), (5, 3), (6, 3),
                 (3, 4), (6, 4)],
                [(4, 0), (5, 1), (3, 2), (4, 3), (6, 4)]),
    "temple": (4, 3, 1.2,
               [(0, 0), (1, 0), (1, 1), (3, 1), (0, 2), (1, 2), (2, 2)],
               [(3, 1), (2, 2)]),
    "coffee": (4, 3, 1.3,
               [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1), (3, 1), (2, 2)],
               [(2, 0), (3, 1)]),
    "flower": (4, 3, 1.2,
               [(1, 1), (2, 1), (1, 2), (2, 2)],
               [(2, 2)]),
    "cat": (3, 2, 1.25,
            [(0, 0), (1, 0), (1, 1)],
            [(1, 1)]),
    "astronaut": (3, 3, 1.1,
                  [(1, 0), (1, 1), (0, 2), (1, 2)],
                  [(0, 2)]),
}

# Source crops for the distinct-content planted cases. None of these boxes overlaps a tile
# used by an ordinary image. name -> (photo, box (x0, y0, x1, y1) in photo pixels, output size)
SOURCES = {
    # raccoon tiles are 146 x 153: column 6 rows 0-1 (ear + leaves), portrait
    "exif_rotated": ("raccoon", (876, 0, 1022, 270), (182, 337)),
    # raccoon tile (0, 2): fur and leaves; make_planted cuts three 150x150 frames from it
    "animated": ("raccoon", (0, 306, 146, 459), (183, 191)),
    # raccoon row 4, columns 0-2 (leaves): a 10:1 strip
    "odd_aspect": ("raccoon", (0, 660, 438, 704), (400, 40)),
    # raccoon tile (3, 0): fur and ear; encoded and cut by make_planted
    "truncated": ("raccoon", (438, 0, 584, 153), (183, 191)),
    # temple tile (0, 1): pagoda edge and trees
    "grayscale": ("temple", (0, 142, 160, 284), (192, 170)),
    # flower tile (2, 0): petals at the top edge of the dahlia
    "tiny": ("flower", (330, 90, 394, 138), (64, 48)),
    # coffee tile (3, 2): saucer rim and wood
    "cmyk": ("coffee", (450, 266, 600, 399), (195, 173)),
    # coffee tile (0, 2): saucer and wood
    "high_bit_depth": ("coffee", (0, 266, 150, 399), (150, 133)),
    # astronaut tile (0, 1): flag and sleeve
    "png_named_jpg": ("astronaut", (0, 170, 170, 340), (128, 128)),
}


def load_photos(scipy_wheel: str) -> dict[str, Image.Image]:
    import skimage.data
    import sklearn.datasets

    sk = Path(skimage.data.__file__).parent
    sl = Path(sklearn.datasets.__file__).parent / "images"
    with zipfile.ZipFile(scipy_wheel) as z:
        raw = bz2.decompress(z.read("scipy/misc/face.dat"))
    face = np.frombuffer(raw, dtype=np.uint8).reshape(768, 1024, 3)
    return {
        "raccoon": Image.fromarray(face, "RGB"),
        "temple": Image.open(sl / "china.jpg").convert("RGB"),
        "flower": Image.open(sl / "flower.jpg").convert("RGB"),
        "coffee": Image.open(sk / "coffee.png").convert("RGB"),
        "cat": Image.open(sk / "chelsea.png").convert("RGB"),
        "astronaut": Image.open(sk / "astronaut.png").convert("RGB"),
    }


def tile_box(photo: Image.Image, nx: int, ny: int, i: int, j: int) -> tuple[int, int, int, int]:
    tw, th = photo.width // nx, photo.height // ny
    return (i * tw, j * th, (i + 1) * tw, (j + 1) * th)


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like numpy.savez_compressed, but with fixed zip timestamps so the bytes are reproducible."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            zi = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o644 << 16
            z.writestr(zi, buf.getvalue(), compresslevel=9)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scipy-wheel", required=True, help="path to a scipy 1.9.x wheel (it ships scipy/misc/face.dat)")
    args = ap.parse_args()
    wheel = sorted(glob.glob(args.scipy_wheel))[0]
    photos = load_photos(wheel)

    for split in ("train", "test"):
        shutil.rmtree(HERE / split, ignore_errors=True)

    rows = []
    for cls, (nx, ny, scale, tiles, test_tiles) in GRIDS.items():
        photo = photos[cls]
        for n, (i, j) in enumerate(tiles, start=1):
            box = tile_box(photo, nx, ny, i, j)
            crop = photo.crop(box)
            size = (round(crop.width * scale), round(crop.height * scale))
            crop = crop.resize(size, Image.LANCZOS)
            split = "test" if (i, j) in test_tiles else "train"
            rel = f"{split}/{cls}/{cls}_{n:02d}.jpg"
            out = HERE / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            crop.save(out, "JPEG", quality=JPEG_QUALITY)
            rows.append((rel, cls, box, size))

    arrays = {}
    for name, (cls, box, size) in SOURCES.items():
        arrays[name] = np.asarray(photos[cls].crop(box).resize(size, Image.LANCZOS).convert("RGB"))
        rows.append((f"planted_sources.npz[{name}]", cls, box, size))
    write_npz(HERE / "planted_sources.npz", arrays)

    print("| file | photo | crop box (x0, y0, x1, y1) | saved size |")
    print("| --- | --- | --- | --- |")
    for rel, cls, box, size in rows:
        print(f"| {rel} | {cls} | {box} | {size[0]}x{size[1]} |")


if __name__ == "__main__":
    os.umask(0o022)
    main()
