"""Near-duplicate recall per transform and false positives, per pHash threshold, on real photos.

    .venv/bin/python benchmarks/dedup_quality.py [--thresholds 2,4,6,8,10,12]

Families: each ordinary photo of sample_data/ (the original) and 12 variants of it (resize,
JPEG re-encodes, crop, brightness, blur, grayscale, flip, rotate 90). Everything is scanned
once with `curate scan`; for each threshold, pairs are counted from the manifest's hashes:
recall = share of (original, variant) pairs within the threshold (flip/rotate with the 8
dihedral hashes), false positives = pairs of different originals' family members within it.
"""
from __future__ import annotations

import argparse
import io
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from curate.config import from_dict
from curate.imaging.hashes import hamming
from curate.scan import scan
from curate.schema import MANIFEST
from curate.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]


def jpeg(im: Image.Image, q: int) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=q)
    return Image.open(io.BytesIO(buf.getvalue()))


TRANSFORMS = {
    "resize_0.5": lambda im: im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS),
    "resize_0.25": lambda im: im.resize((im.width // 4, im.height // 4), Image.Resampling.LANCZOS),
    "jpeg_q90": lambda im: jpeg(im, 90),
    "jpeg_q50": lambda im: jpeg(im, 50),
    "jpeg_q20": lambda im: jpeg(im, 20),
    "crop_3pct": lambda im: im.crop((im.width * 3 // 100, im.height * 3 // 100, im.width, im.height)),
    "crop_10pct": lambda im: im.crop((im.width // 10, im.height // 10, im.width, im.height)),
    "brightness_1.3": lambda im: ImageEnhance.Brightness(im).enhance(1.3),
    "blur_2": lambda im: im.filter(ImageFilter.GaussianBlur(2)),
    "grayscale": lambda im: ImageOps.grayscale(im).convert("RGB"),
    "flip": ImageOps.mirror,
    "rotate_90": lambda im: im.transpose(Image.Transpose.ROTATE_90),
}
DIHEDRAL = {"flip", "rotate_90"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--thresholds", default="2,4,6,8,10,12")
    args = parser.parse_args()
    thresholds = [int(t) for t in args.thresholds.split(",")]
    originals = sorted(p for p in (ROOT / "sample_data").glob("*/*/*.jpg") if not p.name.startswith("planted"))
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        for k, p in enumerate(originals):
            im = Image.open(p).convert("RGB")
            (src / f"o{k:03d}").mkdir(parents=True)
            im.save(src / f"o{k:03d}" / "original.png")
            for name, fn in TRANSFORMS.items():
                fn(im).convert("RGB").save(src / f"o{k:03d}" / f"{name}.png")
        scan(str(src), str(Path(tmp) / "out"), from_dict({}))
        rows = Workspace(str(Path(tmp) / "out")).read("manifest", MANIFEST).to_pylist()
    by = {r["path"]: r for r in rows}
    n = len(originals)
    print(f"{n} originals x {len(TRANSFORMS)} transforms; {len(rows)} images\n")
    print("| transform | " + " | ".join(f"t={t}" for t in thresholds) + " |")
    print("|---" * (len(thresholds) + 1) + "|")
    for name in TRANSFORMS:
        dists = []
        for k in range(n):
            a, b = by[f"o{k:03d}/original.png"], by[f"o{k:03d}/{name}.png"]
            d8 = np.array(b["phash_d8"] if name in DIHEDRAL else [b["phash"]], dtype=np.int64)
            dists.append(int(hamming(d8, a["phash"]).min()))
        print(f"| {name} | " + " | ".join(f"{np.mean(np.array(dists) <= t):.0%}" for t in thresholds) + " |")
    phash = np.array([r["phash"] for r in rows], dtype=np.int64)
    family = np.array([r["path"].split("/")[0] for r in rows])
    d = hamming(phash[:, None], phash[None, :])
    cross = family[:, None] != family[None, :]
    iu = np.triu_indices(len(rows), k=1)
    pairs = cross[iu].sum()
    print(f"\nfalse positives among {pairs} pairs from different originals (plain pHash):")
    print("| threshold | pairs within | rate |\n|---|---|---|")
    for t in thresholds:
        fp = int(((d <= t) & cross)[iu].sum())
        print(f"| {t} | {fp} | {fp / pairs:.2e} |")


if __name__ == "__main__":
    main()
