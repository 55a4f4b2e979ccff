"""Verify sample_data/expected.json against the files, using Pillow and numpy only.

    python sample_data/check_expected.py            # exit 0 and "N passed, 0 failed" when all match
    python sample_data/check_expected.py --rebuild  # also: make_planted.py would write the same bytes

Checks: the file list, classes and counts; each file's format, oriented size, mode, bit depth,
frames, EXIF orientation and error as Pillow sees them; every listed duplicate (bytes equal,
pixels equal, or near by pHash, with leak/label_conflict flags); that no other pair of images
is within pHash distance 16 (over all 8 flips/rotations); that ordinary images are clean
(RGB, min side >= 100, aspect within 1:2..2:1, not dark/bright/flat/blurry/grey), with the
measured ranges printed.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps

HERE = Path(__file__).resolve().parent
SIXTEEN = ("I;16", "I;16B", "I;16L", "I")
NEAR_MAX = 10  # a listed near duplicate must be within this many pHash bits
DISTINCT_MIN = 16  # any other pair must be at least this far apart (min over the 8 flips/rotations)

# cleanliness bounds for ordinary images, measured on a 128-px thumbnail in L
CLEAN = dict(min_side=100, aspect_max=2.0, p50=(40, 215), p95_min=80, p05_max=200, std_min=15,
             lap_min=100, spread_min=4.0)

failures: list[str] = []
passed = 0


def check(ok: bool, msg: str) -> None:
    global passed
    if ok:
        passed += 1
    else:
        failures.append(msg)
        print("FAIL:", msg)


def describe(path: Path) -> dict:
    data = path.read_bytes()
    d = dict(format=None, width=None, height=None, mode=None, bit_depth=None, n_frames=None,
             exif_orientation=None, error_code=None)
    if len(data) == 0:
        d["error_code"] = "zero_byte"
        return d
    try:
        im = Image.open(path)
    except Exception:  # noqa: BLE001
        d["error_code"] = "not_image"
        return d
    with im:
        o = im.getexif().get(0x0112)
        w, h = im.size
        if o in (5, 6, 7, 8):
            w, h = h, w
        d.update(format=im.format, width=w, height=h, mode=im.mode, n_frames=getattr(im, "n_frames", 1),
                 bit_depth=16 if im.mode in SIXTEEN else 8, exif_orientation=None if o is None else int(o))
        try:
            im.load()
        except OSError:
            d["error_code"] = "truncated"
    return d


def oriented(path: Path) -> Image.Image:
    """First frame, EXIF orientation applied; 16-bit gray scaled to 8-bit L."""
    with Image.open(path) as im:
        im.seek(0)
        im = ImageOps.exif_transpose(im)
        if im.mode in SIXTEEN:
            a = np.asarray(im, dtype=np.float64) / 257.0
            return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")
        return im.convert("RGB") if im.mode not in ("L", "RGB") else im.copy()


def phash(gray: Image.Image) -> np.ndarray:
    a = np.asarray(gray.convert("L").resize((32, 32), Image.LANCZOS), dtype=np.float64)
    n = np.arange(32)
    c = np.cos(np.pi * np.outer(n, 2 * n + 1) / 64.0)
    d = (c @ a @ c.T)[:8, :8]
    return (d > np.median(d)).flatten()


D8 = (None, Image.ROTATE_90, Image.ROTATE_180, Image.ROTATE_270, Image.FLIP_LEFT_RIGHT,
      Image.FLIP_TOP_BOTTOM, Image.TRANSPOSE, Image.TRANSVERSE)


def phash_d8(img: Image.Image) -> list[np.ndarray]:
    g = img.convert("L")
    return [phash(g if t is None else g.transpose(t)) for t in D8]


def quality(img: Image.Image) -> dict:
    t = img.convert("RGB")
    t.thumbnail((128, 128), Image.BILINEAR)
    a = np.asarray(t, dtype=np.float64)
    g = np.asarray(t.convert("L"), dtype=np.float64)
    lap = g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:] - 4 * g[1:-1, 1:-1]
    p05, p50, p95 = np.percentile(g, [5, 50, 95])
    return dict(p05=p05, p50=p50, p95=p95, std=g.std(), lap=lap.var(),
                spread=np.abs(a - a.mean(axis=2, keepdims=True)).mean())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rebuild", action="store_true", help="also check make_planted.py reproduces the files")
    args = ap.parse_args()
    exp = json.loads((HERE / "expected.json").read_text())

    on_disk = sorted(p.relative_to(HERE).as_posix() for s in ("train", "test") for p in (HERE / s).rglob("*")
                     if p.is_file())
    listed = [f["path"] for f in exp["files"]]
    check(sorted(listed) == on_disk, f"file list differs: {sorted(set(listed) ^ set(on_disk))}")
    check(len(set(listed)) == len(listed), "duplicate paths in expected.json")
    classes = sorted({p.split("/")[1] for p in on_disk})
    check(exp["classes"] == classes, f"classes {exp['classes']} != {classes}")
    counts = {s: {c: sum(1 for p in on_disk if p.startswith(f"{s}/{c}/")) for c in classes} for s in ("train", "test")}
    check(exp["counts"] == counts, f"counts {exp['counts']} != {counts}")
    totals = {c: counts["train"][c] + counts["test"][c] for c in classes}
    check(max(totals.values()) >= 8 * min(totals.values()), f"imbalance < 8x: {totals}")
    ordinary_totals = {c: sum(1 for f in exp["files"] if f["label"] == c and f["case"] == "ordinary")
                       for c in classes}
    check(max(ordinary_totals.values()) >= 8 * min(ordinary_totals.values()),
          f"ordinary imbalance < 8x: {ordinary_totals}")

    images: dict[str, Image.Image] = {}
    for f in exp["files"]:
        p = HERE / f["path"]
        d = describe(p)
        for k, v in d.items():
            check(f.get(k) == v, f"{f['path']}: {k} expected {f.get(k)!r}, Pillow says {v!r}")
        check(f["split"] == f["path"].split("/")[0] and f["label"] == f["path"].split("/")[1],
              f"{f['path']}: split/label")
        if f["case"] == "ordinary":
            check(f["checks"] == [] and f["incidental_checks"] == [] and f["format"] == "JPEG" and f["mode"] == "RGB"
                  and f["exif_orientation"] is None and f["n_frames"] == 1,
                  f"{f['path']}: ordinary must be a plain RGB JPEG")
        if d["error_code"] is None:
            images[f["path"]] = oriented(p)

    # listed duplicates
    cluster = {p: p for p in images}

    def find(x: str) -> str:
        while cluster[x] != x:
            x = cluster[x]
        return x

    for dup in exp["duplicates"]:
        a, b = dup["paths"]
        ba, bb = (HERE / a).read_bytes(), (HERE / b).read_bytes()
        pa, pb = np.asarray(images[a]), np.asarray(images[b])
        same_pixels = pa.shape == pb.shape and (pa == pb).all()
        if dup["kind"] == "bytes":
            check(ba == bb, f"{a} / {b}: bytes differ")
        elif dup["kind"] == "pixels":
            check(ba != bb and same_pixels, f"{a} / {b}: want different bytes, same pixels")
        else:
            check(ba != bb and not same_pixels, f"{a} / {b}: near duplicate must differ in bytes and pixels")
        ha, hb = phash(images[a]), phash_d8(images[b])
        plain, d8 = int((ha != hb[0]).sum()), int(min((ha != h).sum() for h in hb))
        check(dup.get("phash_distance") == plain and dup.get("phash_distance_d8") == d8,
              f"{a} / {b}: pHash distances {plain}/{d8} != recorded")
        if dup.get("needs_dihedral"):
            check(plain > NEAR_MAX and d8 <= NEAR_MAX, f"{a} / {b}: dihedral near dup distances {plain}/{d8}")
        else:
            check(plain <= NEAR_MAX, f"{a} / {b}: pHash distance {plain} > {NEAR_MAX}")
        check(dup["leak"] == (a.split("/")[0] != b.split("/")[0]), f"{a} / {b}: leak flag")
        check(dup["label_conflict"] == (a.split("/")[1] != b.split("/")[1]), f"{a} / {b}: label_conflict flag")
        cluster[find(b)] = find(a)

    # nothing else is a duplicate
    hashes = {p: phash_d8(im) for p, im in images.items()}
    worst = (64, None)
    for a, b in itertools.combinations(sorted(images), 2):
        if find(a) == find(b):
            continue
        d = int(min((hashes[a][0] != h).sum() for h in hashes[b]))
        worst = min(worst, (d, (a, b)))
        check(d >= DISTINCT_MIN, f"{a} / {b}: unlisted pair within pHash distance {d}")
    print(f"closest unlisted pair: distance {worst[0]} (min over 8 flips/rotations) {worst[1]}")

    # ordinary images are clean
    lo = {k: np.inf for k in ("p05", "p50", "p95", "std", "lap", "spread")}
    hi = {k: -np.inf for k in lo}
    for f in exp["files"]:
        if f["case"] != "ordinary":
            continue
        w, h = f["width"], f["height"]
        q = quality(images[f["path"]])
        for k in lo:
            lo[k], hi[k] = min(lo[k], q[k]), max(hi[k], q[k])
        ok = (min(w, h) >= CLEAN["min_side"] and max(w, h) / min(w, h) <= CLEAN["aspect_max"]
              and CLEAN["p50"][0] <= q["p50"] <= CLEAN["p50"][1] and q["p95"] >= CLEAN["p95_min"]
              and q["p05"] <= CLEAN["p05_max"] and q["std"] >= CLEAN["std_min"] and q["lap"] >= CLEAN["lap_min"]
              and q["spread"] >= CLEAN["spread_min"])
        check(ok, f"{f['path']}: not clean {w}x{h} " + " ".join(f"{k}={v:.1f}" for k, v in q.items()))
    print("ordinary images, 128-px thumbnail in L: " + ", ".join(f"{k} {lo[k]:.1f}..{hi[k]:.1f}" for k in lo))

    if args.rebuild:
        sys.path.insert(0, str(HERE))
        import make_planted  # noqa: PLC0415

        for rel, data in make_planted.build_planted().items():
            check((HERE / rel).read_bytes() == data, f"{rel}: make_planted.py would write different bytes")
        check(json.loads(json.dumps(make_planted.build_expected())) == exp,
              "make_planted.py would write a different expected.json")

    print(f"{passed} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    sys.exit(main())
