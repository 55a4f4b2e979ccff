"""Duplicate recall per transform and false pairs across distinct photos: the 64-bit pHash alone
and with image embeddings (`dedup --semantic`), per threshold.

    .venv/bin/python benchmarks/dedup_quality.py [--thresholds 2,4,6,8,10,12] [--similarities 0.7,...]

Photos (benchmarks/photos.py): 11 colour photographs inside installed Python packages, 27
photographs from Debian's wallpaper packages, and 27 harder images (grayscale scenes, textures,
renderings). Each photo (longer side 640) is an original with 16
variants: resizes, JPEG re-encodes, crops of 3, 10 and 30 %, brightness, blur, grayscale, flip,
90-degree rotation, a watermark bar over the bottom 15 %, a 5 % white border, a 5-degree
rotation. Everything is scanned and embedded once with curate (EfficientNet-Lite0). Recall =
share of (original, variant) pairs found: hash within t bits (flip/rotate with the 8 dihedral
hashes), or embeddings at cosine >= S; false pairs = pairs of images from different originals
that are found. Writes the "Duplicates: hash and embeddings" section of benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import photos as photo_sets  # noqa: E402
from results import write_section  # noqa: E402

from curate.config import Config, from_dict  # noqa: E402
from curate.imaging.hashes import hamming  # noqa: E402
from curate.pipeline import run_stage  # noqa: E402
from curate.schema import MANIFEST  # noqa: E402
from curate.tables import embeddings_for  # noqa: E402
from curate.workspace import Workspace  # noqa: E402

SECTION = "## Duplicates: hash and embeddings"
SIDE = 640
DEFAULTS = Config()


def jpeg(im: Image.Image, q: int) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=q)
    return Image.open(io.BytesIO(buf.getvalue()))


def watermark(im: Image.Image) -> Image.Image:
    out = im.copy()
    ImageDraw.Draw(out).rectangle((0, int(im.height * 0.85), im.width, im.height), fill=(255, 255, 255))
    return out


def crop(share: float):
    return lambda im: im.crop((int(im.width * share), int(im.height * share), im.width, im.height))


TRANSFORMS = {
    "resize_0.5": lambda im: im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS),
    "resize_0.25": lambda im: im.resize((im.width // 4, im.height // 4), Image.Resampling.LANCZOS),
    "jpeg_q90": lambda im: jpeg(im, 90),
    "jpeg_q50": lambda im: jpeg(im, 50),
    "jpeg_q20": lambda im: jpeg(im, 20),
    "crop_3pct": crop(0.03),
    "crop_10pct": crop(0.10),
    "crop_30pct": crop(0.30),
    "brightness_1.3": lambda im: ImageEnhance.Brightness(im).enhance(1.3),
    "blur_2": lambda im: im.filter(ImageFilter.GaussianBlur(2)),
    "grayscale": lambda im: ImageOps.grayscale(im).convert("RGB"),
    "flip": ImageOps.mirror,
    "rotate_90": lambda im: im.transpose(Image.Transpose.ROTATE_90),
    "watermark_bar": watermark,
    "border_5pct": lambda im: ImageOps.expand(im, (im.width // 20, im.height // 20), fill=(255, 255, 255)),
    "rotate_5": lambda im: im.rotate(5, resample=Image.Resampling.BICUBIC),
}
DIHEDRAL = {"flip", "rotate_90"}


def families(originals: dict[str, Image.Image], tmp: Path) -> tuple[list[dict], np.ndarray]:
    """Write every original and variant, scan and embed them; the manifest rows and embeddings."""
    src = tmp / "src"
    for k, im in enumerate(originals.values()):
        im = im.copy()
        im.thumbnail((SIDE, SIDE), Image.Resampling.LANCZOS)
        (src / f"o{k:03d}").mkdir(parents=True)
        im.save(src / f"o{k:03d}" / "original.png")
        for name, fn in TRANSFORMS.items():
            fn(im).convert("RGB").save(src / f"o{k:03d}" / f"{name}.png")
    out = tmp / "out"
    cfg = from_dict({"engine": {"workers": 1}})
    run_stage("scan", str(src), str(out), cfg)
    run_stage("embed", None, str(out), cfg)
    ws = Workspace(str(out))
    rows = sorted(ws.read("manifest", MANIFEST).to_pylist(), key=lambda r: r["path"])
    return rows, embeddings_for(ws, [r["sample_id"] for r in rows])


def measure(rows: list[dict], vectors: np.ndarray, thresholds: list[int], similarities: list[float]
            ) -> tuple[list[str], list[str]]:
    """(recall table lines, false-pair table lines)."""
    at = {r["path"]: i for i, r in enumerate(rows)}
    n = sum(1 for r in rows if r["path"].endswith("/original.png"))
    phash = np.array([r["phash"] for r in rows], dtype=np.int64)
    sims = np.clip(vectors @ vectors.T, -1, 1)
    t0, s0 = DEFAULTS.dedup.threshold, DEFAULTS.dedup.similarity
    recall = ["| transform | " + " | ".join(f"t={t}" for t in thresholds) + " | "
              + " | ".join(f"S={s:g}" for s in similarities) + f" | t={t0} or S={s0:g} (the defaults) |",
              "|---" * (len(thresholds) + len(similarities) + 2) + "|"]
    for name in TRANSFORMS:
        bits, cos = [], []
        for k in range(n):
            a, b = at[f"o{k:03d}/original.png"], at[f"o{k:03d}/{name}.png"]
            keys = np.array(rows[b]["phash_d8"] if name in DIHEDRAL else [rows[b]["phash"]], dtype=np.int64)
            bits.append(int(hamming(keys, phash[a]).min()))
            cos.append(float(sims[a, b]))
        bits_a, cos_a = np.array(bits), np.array(cos)
        recall.append(f"| {name} | " + " | ".join(f"{np.mean(bits_a <= t):.0%}" for t in thresholds) + " | "
                      + " | ".join(f"{np.mean(cos_a >= s):.0%}" for s in similarities)
                      + f" | {np.mean((bits_a <= t0) | (cos_a >= s0)):.0%} |")
    family = np.array([r["path"].split("/")[0] for r in rows])
    iu = np.triu_indices(len(rows), k=1)
    cross = (family[:, None] != family[None, :])[iu]
    d = hamming(phash[:, None], phash[None, :])[iu]
    s = sims[iu]
    false = [f"{int(cross.sum()):,} pairs of images from different originals:", "",
             "| measure | " + " | ".join([*(f"t={t}" for t in thresholds), *(f"S={x:g}" for x in similarities)])
             + " |", "|---" * (len(thresholds) + len(similarities) + 1) + "|",
             "| false pairs | " + " | ".join([*(str(int((cross & (d <= t)).sum())) for t in thresholds),
                                              *(str(int((cross & (s >= x)).sum())) for x in similarities)]) + " |",
             f"| highest cross-original similarity | {float(s[cross].max()):.3f} |"]
    return recall, false


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--thresholds", default="2,4,6,8,10,12")
    parser.add_argument("--similarities", default="0.7,0.75,0.78,0.8,0.85")
    args = parser.parse_args()
    thresholds = [int(t) for t in args.thresholds.split(",")]
    similarities = [float(s) for s in args.similarities.split(",")]
    lines = [SECTION, "", f"Command: `.venv/bin/python benchmarks/dedup_quality.py --thresholds {args.thresholds} "
             f"--similarities {args.similarities}`", ""]
    sets = (("Calibration set (photos in Python packages)", photo_sets.calibration()),
            ("Debian wallpaper photographs", photo_sets.held_out()),
            ("Grayscale scenes, textures and renderings", photo_sets.hard()))
    for title, originals in sets:
        with tempfile.TemporaryDirectory() as tmp:
            rows, vectors = families(originals, Path(tmp))
        recall, false = measure(rows, vectors, thresholds, similarities)
        lines += [f"**{title}**: {len(originals)} distinct photographs x {len(TRANSFORMS)} variants "
                  f"({len(rows)} images); recall per transform:", "", *recall, "", *false, ""]
        print("\n".join(lines[-(len(recall) + len(false) + 4):]), flush=True)
    body = "\n".join(lines) + "\n"
    write_section(SECTION, body)


if __name__ == "__main__":
    main()
