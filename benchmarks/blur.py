"""Blur benchmark: does `curate validate`'s `blurry` check find Gaussian blur, at what rate of
false alarms on clean photos, calibrated on one set of photographs and reported on another, with
cleanvision's `blurry` side by side on the same files in the same run.

    .venv/bin/python benchmarks/blur.py              # ~5 min on 2 shared cores (images built once)
    .venv/bin/python benchmarks/blur.py --scan-cost  # scan before/after the blur score

1. Image sets (built once, deterministic; a stamp records the parameters), under
   benchmarks/data/blur-eval/<set>/<group>/:
     sets:   calibration = benchmarks/photos.py's calibration photographs (11 scenes from installed
             packages), sample_data = sample_data/'s 50 ordinary photos (also from installed
             packages, ~190 px), held-out = photos.py's held-out ones (27 scenes from Debian's
             wallpaper packages).
     clean/  calibration and held-out: random crops of each photograph (60-100% of each side, never
             upscaled), resized to a long side of 320-1024 px, random gain and gamma, JPEG quality
             75-95; sample_data: the files as they are.
     r1.5/ r3/ r6/  the same clean pixels with Pillow's GaussianBlur(radius) before the same JPEG
             encode (sample_data's: quality 90; r1.5 is reported apart, as a milder blur).
2. `curate scan` + `curate validate` (CLI) per set. The `blurry` check's score for every row is
   recomputed from OUT/manifest/ with the check's own scoring function. The old check (variance
   of the Laplacian of the 64x64 thumbnail, `sharpness` < 5) from a scan of the same folder by
   the code before this change (--base, exported with `git archive`), as it shipped.
3. cleanvision's `Imagelab(data_path=...).find_issues({"blurry": {}})` on the same folders, its
   default threshold.
4. The threshold: chosen on the photographs of installed packages only (calibration and
   sample_data, pooled): midway between the clean photos' 1st percentile and the radius-3 copies'
   99th percentile. The same rule is applied to the old score and to cleanvision's, for a like-for-
   like comparison next to each tool's own default. The held-out set only reports.
5. --scan-cost: `curate scan` before (--base) and after this measure, on benchmarks/scan.py's
   photo sets (RESULTS-blur-cost.md).
6. --decode-sizes 256,128: the new score only, with the scan decoding JPEGs at each
   `scan.decode_size` (smaller = cheaper, blur measured on fewer pixels): per size, the threshold
   the rule above gives on the calibration photos, and the false positives and recall it has on
   every set (RESULTS-blur-decode.md). Needs no cleanvision.

Writes benchmarks/RESULTS-blur.md (a fragment for benchmarks/RESULTS.md). Section 3 needs
cleanvision importable from the project venv (0.3.7 was used; it is not a project dependency).
"""
from __future__ import annotations

import argparse
import datetime as dt
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from commits import environment, export
from evalset import EvalSet
from hostinfo import cpu_model, ram_gib

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = HERE / "data"
EVAL = DATA / "blur-eval"
CURATE = Path(sys.executable).parent / "curate"
FRAGMENT = HERE / "RESULTS-blur.md"
SEED = 20261205
PER_SCENE = {"calibration": 32, "held-out": 14}  # clean crops per photograph
RADII = {"r1.5": 1.5, "r3": 3.0, "r6": 6.0}
PARAMS = {"version": 2, "seed": SEED, "per_scene": PER_SCENE, "radii": RADII, "long_side": [320, 1024]}
SETS = ("calibration", "sample_data", "held-out")
CALIBRATION = ("calibration", "sample_data")  # photographs of installed packages: the threshold is chosen here


# --------------------------------------------------------------------------------------------
# 1. Image sets
# --------------------------------------------------------------------------------------------

def _variant(photo, rng: np.random.Generator):
    """A clean photo from a photograph: crop, resize (never up), gain/gamma; and its JPEG quality."""
    from PIL import Image

    w, h = photo.size
    cw, ch = (max(64, int(s * rng.uniform(0.6, 1.0))) for s in (w, h))
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    im = photo.crop((x0, y0, x0 + cw, y0 + ch))
    long_side = int(rng.integers(320, 1025))
    scale = min(1.0, long_side / max(cw, ch))
    if scale < 1.0:
        im = im.resize((max(1, round(cw * scale)), max(1, round(ch * scale))), Image.Resampling.LANCZOS)
    a = np.asarray(im, dtype=np.float32) / 255.0
    a = np.clip(a * rng.uniform(0.8, 1.2), 0, 1) ** rng.uniform(0.8, 1.25)
    return Image.fromarray((a * 255).round().astype(np.uint8)), int(rng.integers(75, 96))


def build() -> pd.DataFrame:
    """The image sets and their ground truth (one row per file)."""
    import photos
    from PIL import Image, ImageFilter

    evalset = EvalSet(EVAL, EVAL / "truth.csv", PARAMS)
    cached = evalset.cached()
    if cached is not None:
        return cached
    rows = []
    for set_name, load in (("calibration", photos.calibration), ("held-out", photos.held_out)):
        for scene, photo in sorted(load().items()):
            for i in range(PER_SCENE[set_name]):
                rng = np.random.default_rng([SEED, sum(map(ord, set_name)), sum(map(ord, scene)), i])
                clean, quality = _variant(photo, rng)
                name = f"{scene}_{i:02d}.jpg"
                versions = {"clean": clean} | {g: clean.filter(ImageFilter.GaussianBlur(r)) for g, r in RADII.items()}
                for group, im in versions.items():
                    path = EVAL / set_name / group / name
                    path.parent.mkdir(parents=True, exist_ok=True)
                    im.save(path, "JPEG", quality=quality)
                    rows.append({"set": set_name, "group": group, "scene": scene, "path": f"{group}/{name}",
                                 "width": clean.size[0], "height": clean.size[1], "quality": quality})
    for path in sorted(ROOT.glob("sample_data/*/*/*.jpg")):  # its ordinary photos, as they are
        if path.name.startswith("planted"):
            continue
        clean = Image.open(path).convert("RGB")
        name = f"{path.parts[-3]}_{path.parts[-2]}_{path.name}"
        versions = {"clean": clean} | {g: clean.filter(ImageFilter.GaussianBlur(r)) for g, r in RADII.items()}
        for group, im in versions.items():
            out = EVAL / "sample_data" / group / name
            out.parent.mkdir(parents=True, exist_ok=True)
            if group == "clean":
                shutil.copyfile(path, out)
            else:
                im.save(out, "JPEG", quality=90)
            rows.append({"set": "sample_data", "group": group, "scene": path.parts[-2], "path": f"{group}/{name}",
                         "width": clean.size[0], "height": clean.size[1], "quality": 90})
    return evalset.save(pd.DataFrame(rows))


# --------------------------------------------------------------------------------------------
# 2. curate, 3. cleanvision
# --------------------------------------------------------------------------------------------

def _run(cmd: list[str], env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def curate_scores(set_name: str, workers: int, base_tree: Path) -> tuple[pd.DataFrame, dict[str, float]]:
    """`curate scan` + `curate validate` on one set: per file, the new check's score (recomputed
    from the manifest with the check's own function) and whether validate flagged it; and the old
    check's score, `sharpness` from a scan by the code before this change (`base_tree`)."""
    from curate.validate.checks import CHECKS

    out, old_out = DATA / "blur-eval-out" / set_name, DATA / "blur-eval-out" / f"{set_name}-before"
    for o in (out, old_out):
        shutil.rmtree(o, ignore_errors=True)
    t_scan = _run([str(CURATE), "scan", str(EVAL / set_name), "-o", str(out), "--workers", str(workers)])
    t_val = _run([str(CURATE), "validate", str(out), "--workers", str(workers)])
    _run([str(CURATE), "scan", str(EVAL / set_name), "-o", str(old_out), "--workers", str(workers)],
         env=environment(base_tree))
    manifest = pq.read_table(out / "manifest").to_pandas()
    before = pq.read_table(old_out / "manifest", columns=["path", "sharpness"]).to_pandas()
    issues = pq.read_table(out / "issues").to_pandas()
    flagged = set(issues.loc[issues["check"] == "blurry", "path"])
    check = CHECKS.get("blurry")
    scores = pd.DataFrame({
        "path": manifest["path"],
        "new": blurry_scores(manifest).to_numpy(),
        "new_flagged": manifest["path"].isin(flagged).to_numpy(),
    }).merge(before.rename(columns={"sharpness": "old"}), on="path", validate="1:1")
    return scores, {"scan_s": t_scan, "validate_s": t_val, "threshold": check.threshold}


def blurry_scores(manifest: pd.DataFrame) -> pd.Series:
    """The `blurry` check's score of every manifest row, by the check's own scoring function."""
    from curate.validate.checks import CHECKS, Context

    return CHECKS.get("blurry").score(manifest, Context(median_area=1.0, classes=None))


def decode_size_scores(set_name: str, workers: int, decode_size: int) -> pd.DataFrame:
    """`curate scan` of one set with `scan.decode_size = decode_size`: per file, `blurry`'s score."""
    out = DATA / "blur-eval-out" / f"{set_name}-decode-{decode_size}"
    shutil.rmtree(out, ignore_errors=True)
    config = out.with_suffix(".toml")
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f"[scan]\ndecode_size = {decode_size}\n")
    _run([str(CURATE), "scan", str(EVAL / set_name), "-o", str(out), "--workers", str(workers), "--config",
          str(config)])
    manifest = pq.read_table(out / "manifest").to_pandas()
    return pd.DataFrame({"path": manifest["path"], "new": blurry_scores(manifest)})


def decode_size_report(truth: pd.DataFrame, workers: int, sizes: list[int]) -> str:
    """Section 6: for each decode size, the rule's threshold on the calibration photos and what it
    flags on every set."""
    from curate.validate.checks import CHECKS

    default = CHECKS.get("blurry").threshold
    lines = [f"## Blur: `blurry` at other scan decode sizes ({dt.date.today().isoformat()})", "",
             f"Command: `.venv/bin/python benchmarks/blur.py --decode-sizes {','.join(map(str, sizes))} "
             f"--workers {workers}`; {cpu_model()}, nproc 2. Per `scan.decode_size`: the threshold the calibration "
             "rule gives (midway between the clean calibration photos' 1st percentile and their r3 copies' 99th), "
             "then clean photos flagged (false positives) and blurred copies flagged (recall) at that threshold "
             "and at the default threshold.", "",
             "| decode_size | threshold | set | clean (FP) | r1.5 | r3 | r6 |", "| ---: | --- | --- | ---: | ---: | ---: | ---: |"]
    for size in sizes:
        scores = {name: truth[truth["set"] == name].merge(decode_size_scores(name, workers, size), on="path",
                                                          validate="1:1") for name in SETS}
        cal = pd.concat([scores[name] for name in CALIBRATION])
        chosen = rule(cal[cal["group"] == "clean"]["new"], cal[cal["group"] == "r3"]["new"])
        for label, threshold in ((f"{chosen:g} (the rule)", chosen), (f"{default:g} (default)", default)):
            for name in SETS:
                cells = [rate(scores[name], g, "new", threshold) for g in ("clean", *RADII)]
                lines.append(f"| {size} | {label} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def cleanvision_scores(set_name: str, workers: int) -> tuple[pd.DataFrame, float]:
    """cleanvision's blurry check (its defaults) on the same folder: score and verdict per file."""
    from cleanvision import Imagelab

    folder = EVAL / set_name
    t0 = time.perf_counter()
    lab = Imagelab(data_path=str(folder))
    lab.find_issues(issue_types={"blurry": {}}, n_jobs=workers, verbose=False)
    wall = time.perf_counter() - t0
    df = lab.issues
    paths = [str(Path(p).resolve().relative_to(folder.resolve())) for p in df.index]
    return pd.DataFrame({"path": paths, "cv": df["blurry_score"].to_numpy(),
                         "cv_flagged": df["is_blurry_issue"].to_numpy(dtype=bool)}), wall


# --------------------------------------------------------------------------------------------
# 4. Thresholds and rates
# --------------------------------------------------------------------------------------------

CV_DEFAULT = 0.29  # cleanvision 0.3.7's default blurry threshold (fires below)
OLD_DEFAULT = 5.0  # curate's previous blurry threshold on `sharpness` (fires below)


def rule(clean: pd.Series, r3: pd.Series) -> float:
    """The calibration rule: midway between the clean photos' 1st percentile and the radius-3
    copies' 99th (fires below), rounded to 2 significant digits."""
    t = (float(np.quantile(clean, 0.01)) + float(np.quantile(r3, 0.99))) / 2
    return float(f"{t:.2g}")


def rate(scores: pd.DataFrame, group: str, column: str, threshold: float | None = None) -> str:
    """Share of `group` flagged: by threshold on a score column (fires below), or by a verdict column."""
    g = scores[scores["group"] == group]
    hit = g[column] if threshold is None else g[column] < threshold
    return f"{int(hit.sum())}/{len(g)} ({100 * hit.mean():.1f}%)"


def pct(q: pd.Series) -> str:
    return ", ".join(f"{name} {np.quantile(q, p):.3g}" for name, p in
                     (("min", 0), ("1%", 0.01), ("median", 0.5), ("99%", 0.99), ("max", 1)))


def report(scores: dict[str, pd.DataFrame], thresholds: dict[str, float], timings: dict, workers: int,
           base: str) -> str:
    lines: list[str] = []
    w = lines.append
    w(f"## Blur: `blurry` against Gaussian blur, calibrated and held out ({dt.date.today().isoformat()})\n")
    w(f"Machine: {platform.platform()}, Python {platform.python_version()}, {cpu_model()}, "
      f"{ram_gib():.0f} GiB RAM, nproc 2, shared with other work (times are noisy). Command: "
      f"`.venv/bin/python benchmarks/blur.py --workers {workers}` (benchmarks/blur.py's docstring says how the "
      "images are made).\n")
    sizes = {k: v[v["group"] == "clean"] for k, v in scores.items()}
    w("| set | photographs | clean photos | long side (px) | each also as |")
    w("| --- | ---: | ---: | ---: | ---: |")
    for name, c in sizes.items():
        long_side = np.maximum(c["width"], c["height"])
        w(f"| {name} | {c['scene'].nunique()} | {len(c)} | {long_side.min()}-{long_side.max()} "
          f"(median {int(np.median(long_side))}) | " + ", ".join(RADII) + " |")
    w("")
    w(f"**Threshold.** Chosen on the calibration photographs only (those of installed packages: the "
      f"calibration set and sample_data's ordinary photos, pooled), by one rule for every score: midway between "
      f"the clean photos' 1st percentile and the radius-3 copies' 99th percentile (each fires below). New check: "
      f"**{thresholds['new']:.2f}** (curate's default, `curate/validate/checks.py`). The old score and "
      f"cleanvision's overlap too much for that rule (it gives {thresholds['old']:.3g} and {thresholds['cv']:.3g}, "
      f"which flag most clean photos), so besides each tool's own default they are shown at a matched false-"
      f"positive rate: the calibration photos' clean 1st percentile (~1% flagged there), the new score too. The "
      f"held-out set was not used to choose anything.\n")
    matched = "at the calibration photos' clean 1st percentile"
    contenders = [
        ("curate `blurry`, new: `edge_sharpness` < " + f"{thresholds['default']:.2f} (the default)", "new_flagged", None),
        (f"curate new `edge_sharpness` < {thresholds['new_p1']:.3g} ({matched})", "new", thresholds["new_p1"]),
        (f"curate `blurry`, old: `sharpness` < {OLD_DEFAULT:g} (the previous default; scanned by {base})", "old",
         OLD_DEFAULT),
        (f"curate old `sharpness` < {thresholds['old_p1']:.3g} ({matched})", "old", thresholds["old_p1"]),
        (f"cleanvision `blurry` (its default, score < {CV_DEFAULT})", "cv_flagged", None),
        (f"cleanvision `blurry_score` < {thresholds['cv_p1']:.3g} ({matched})", "cv", thresholds["cv_p1"]),
    ]
    for name, sc in scores.items():
        w(f"**{name}**: clean photos flagged (false positives) and blurred copies flagged (recall).\n")
        w("| check | clean (FP) | r1.5 | r3 | r6 |")
        w("| --- | ---: | ---: | ---: | ---: |")
        for label, column, thr in contenders:
            w(f"| {label} | " + " | ".join(rate(sc, g, column, thr) for g in ("clean", *RADII)) + " |")
        w("")
    w("Score ranges of the new check (`edge_sharpness`):\n")
    w("| set | group | min, 1%, median, 99%, max |")
    w("| --- | --- | ---: |")
    for name, sc in scores.items():
        for g in ("clean", *RADII):
            w(f"| {name} | {g} | {pct(sc.loc[sc['group'] == g, 'new'])} |")
    w("")
    w("Sweep of the new check's threshold:\n")
    w("| threshold | " + " | ".join(f"{n} {g}" for n in scores for g in ("clean", "r3", "r6")) + " |")
    w("|" + " ---: |" * (1 + 3 * len(scores)))
    for t in sorted({0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, thresholds["default"]}):
        bold = "**" if t == thresholds["default"] else ""
        w(f"| {bold}{t:.2f}{bold} | " + " | ".join(rate(sc, g, "new", t) for sc in scores.values()
                                                  for g in ("clean", "r3", "r6")) + " |")
    w("")
    for name, sc in scores.items():
        c = sc[(sc["group"] == "clean")].sort_values("new")
        fp = c[c["new"] < thresholds["default"]]
        by_scene = fp.groupby("scene").size().sort_values(ascending=False)
        w(f"{name}: clean photos flagged by photograph: "
          + (", ".join(f"{s} {n}/{int((c['scene'] == s).sum())}" for s, n in by_scene.items()) or "none")
          + "; nearest to firing: " + ", ".join(f"`{p}` {v:.3f}" for p, v in zip(c["path"][:4], c["new"][:4]))
          + ".\n")
    w("Times (wall, --workers %d): " % workers + "; ".join(
        f"{k}: curate scan {v['scan_s']:.1f} s + validate {v['validate_s']:.1f} s, cleanvision {v['cv_s']:.1f} s"
        for k, v in timings.items()) + ".\n")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# 5. Scan cost
# --------------------------------------------------------------------------------------------

def scan_cost(base: str, workers: int, repeats: int, sizes: dict[str, int]) -> list[dict]:
    """`curate scan` of `base` (the commit before the blur score, exported to a temporary folder)
    against this tree's, on benchmarks/scan.py's photo sets, a fresh OUT each time, interleaved;
    wall clock of the CLI process, median of `repeats`."""
    import os
    import statistics

    import scan as scan_bench

    tmp = export(base)
    trees = {"before": str(tmp), "after": str(ROOT)}
    results = []
    for kind, count in sizes.items():
        folder = scan_bench.ensure_data(kind, count, workers, python=Path(sys.executable))
        sum(len(p.read_bytes()) for p in folder.glob("*.jpg"))  # warm the page cache
        walls: dict[str, list[float]] = {k: [] for k in trees}
        for i in range(repeats + 1):  # the first round warms imports and .pyc files, not counted
            for arm, tree in trees.items():
                out = tmp / f"out-{arm}"
                shutil.rmtree(out, ignore_errors=True)
                env = environment(tree)
                t0 = time.perf_counter()
                subprocess.run([str(CURATE), "scan", str(folder), "-o", str(out), "--workers", str(workers)],
                               env=env, check=True, capture_output=True)
                if i:
                    walls[arm].append(time.perf_counter() - t0)
        med = {arm: statistics.median(v) for arm, v in walls.items()}
        results.append({"set": folder.name, "files": count, "walls": walls, "median": med,
                        "ms_per_image": {arm: 1000 * v * workers / count for arm, v in med.items()},
                        "load": os.getloadavg()[0]})
        print(f"scan cost {folder.name}: {med}", file=sys.stderr, flush=True)
    shutil.rmtree(tmp)
    return results


def cost_report(results: list[dict], base: str, workers: int, repeats: int) -> str:
    lines = [f"Scan cost of the blur score (`.venv/bin/python benchmarks/blur.py --scan-cost`): `curate scan "
             f"--workers {workers}` at {base} (before) and with this change (after: JPEGs decoded at >= 256 px a "
             f"side instead of >= 32, edge sharpness on the <= 512 px luma), same photos (benchmarks/scan.py's "
             f"sets), fresh OUT, page cache warm, interleaved, median of {repeats}; wall clock of the CLI process. "
             "ms/image = wall x workers / files (core-milliseconds, start-up included).\n",
             "| photos | before s (runs) | after s (runs) | after / before | ms/image before → after | "
             "load (1 min) |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        b, a = r["median"]["before"], r["median"]["after"]
        runs = {k: ", ".join(f"{x:.1f}" for x in v) for k, v in r["walls"].items()}
        lines.append(f"| `{r['set']}` | {b:.1f} ({runs['before']}) | {a:.1f} ({runs['after']}) | {a / b:.2f}x | "
                     f"{r['ms_per_image']['before']:.1f} → {r['ms_per_image']['after']:.1f} | {r['load']:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--scan-cost", action="store_true", help="time the scan before/after instead (section 5)")
    ap.add_argument("--base", default="953bc54", help="the commit before the blur score (old check, scan cost)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--small", type=int, default=2000, help="~500x375 photos (--scan-cost)")
    ap.add_argument("--large", type=int, default=60, help="12 MP photos (--scan-cost)")
    ap.add_argument("--decode-sizes", type=lambda v: [int(x) for x in v.split(",") if x], default=[],
                    help="the new score at these scan.decode_size values instead (section 6)")
    args = ap.parse_args()
    if args.decode_sizes:
        text = decode_size_report(build(), args.workers, args.decode_sizes)
        print(text)
        if not args.no_write:
            (HERE / "RESULTS-blur-decode.md").write_text(text)
        return
    if args.scan_cost:
        sizes = {k: n for k, n in (("small", args.small), ("12mp", args.large)) if n}
        text = cost_report(scan_cost(args.base, args.workers, args.repeats, sizes), args.base, args.workers,
                           args.repeats)
        print(text)
        if not args.no_write:
            (HERE / "RESULTS-blur-cost.md").write_text(text)
        return
    truth = build()
    scores, timings = {}, {}
    base_tree = export(args.base)
    for name in SETS:
        t = truth[truth["set"] == name]
        cur, tim = curate_scores(name, args.workers, base_tree)
        cv, tim["cv_s"] = cleanvision_scores(name, args.workers)
        scores[name] = t.merge(cur, on="path", validate="1:1").merge(cv, on="path", validate="1:1")
        timings[name] = tim
        print(f"{name}: {len(t)} files, {tim}", file=sys.stderr, flush=True)
    shutil.rmtree(base_tree)
    cal = pd.concat([scores[name] for name in CALIBRATION])
    clean, r3 = cal[cal["group"] == "clean"], cal[cal["group"] == "r3"]
    thresholds = {k: rule(clean[k], r3[k]) for k in ("new", "old", "cv")}
    thresholds |= {f"{k}_p1": float(f"{np.quantile(clean[k], 0.01):.3g}") for k in ("new", "old", "cv")}
    thresholds["default"] = timings["calibration"]["threshold"]
    if thresholds["new"] != thresholds["default"]:
        print(f"note: the rule gives {thresholds['new']}, curate's default is {thresholds['default']}",
              file=sys.stderr)
    text = report(scores, thresholds, timings, args.workers, args.base)
    print(text)
    if not args.no_write:
        FRAGMENT.write_text(text)


if __name__ == "__main__":
    main()
