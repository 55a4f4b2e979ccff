"""`outlier` against out-of-class images planted into real classes: recall and false-positive rate
across thresholds, the threshold chosen on calibration classes and measured on held-out classes.

    .venv/bin/python benchmarks/outlier.py [--rate 0.05] [--draws 20] [--fp-budget 0.01] [--seed 0]

Classes: scikit-learn's `load_digits` (1,797 real 8x8 scans of handwritten digits, shipped inside
the package), drawn dark on light and upscaled to 64x64 PNGs, one class per digit. Calibration
classes: digits 0-4; held-out classes: digits 5-9. Planted into each class, `--rate` of its size,
each planted image of a kind drawn at random:
- digit: a digit of another class of the same half, moved out of its own class (in-domain);
- face: one of scikit-image's `lfw_subset` faces (25x25 grayscale, upscaled);
- patch: one of `lfw_subset`'s non-face patches of natural photographs (25x25 grayscale);
- photo: a square colour crop of one of the package photographs (benchmarks/photos.py's
  "calibration" scenes).
The foreign images are split between the halves (even and odd indices; scenes alternately), so no
held-out planted image was ever seen on the calibration side.

Every image is embedded once, through the CLI as a user runs it (`curate scan --labels`,
`curate embed`: the default model, EfficientNet-Lite0); draw 0's labelling is the labels file, and
`curate validate` (outlier threshold 100, so every scored image gets its score) scores it. The
other draws relabel the same embeddings and score them with the registered check's own function
(`CHECKS.get("outlier").score`, what `validate` calls); draw 0's scores from both paths
are compared and must agree. The threshold chosen is the largest one on the grid at which at most
`--fp-budget` of the calibration classes' own images fire. Writes the "Outlier: planted
out-of-class images" section of benchmarks/RESULTS.md (a hand-written `### Notes` part stays).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from evalset import EvalSet  # noqa: E402
from hostinfo import cpu_model, ram_gib  # noqa: E402
from results import write_section  # noqa: E402

from curate.labelled import Labelled  # noqa: E402
from curate.schema import ISSUES, MANIFEST, Status  # noqa: E402
from curate.tables import embeddings_for  # noqa: E402
from curate.validate.checks import CHECKS  # noqa: E402
from curate.workspace import Workspace  # noqa: E402

SECTION = "## Outlier: planted out-of-class images"
CURATE = str(Path(sys.executable).parent / "curate")
DATA = HERE / "data" / "outlier"
SIDE = 64
CROPS_PER_SCENE = 10
KINDS = ("digit", "face", "patch", "photo")
HALVES = {"calibration": range(0, 5), "held out": range(5, 10)}
PHOTO_SETS = {"face": "LFW faces (1 class of 100)", "patch": "LFW non-face patches (1 class of 100)",
              "photo": "package-photo crops (11 classes of 10)"}
GRID = np.round(np.arange(0.30, 1.0001, 0.05), 2)


def _half(index: int) -> str:
    return "calibration" if index % 2 == 0 else "held out"


def _photo_crops(seed: int) -> list[tuple[str, Image.Image, str]]:
    """(name, 64x64 colour crop, half) for CROPS_PER_SCENE square crops of each package photograph."""
    import photos

    crops = []
    for k, (scene, photo) in enumerate(sorted(photos.calibration().items())):
        rng = np.random.default_rng([seed, k])
        w, h = photo.size
        for i in range(CROPS_PER_SCENE):
            side = int(min(w, h) * rng.uniform(0.3, 0.6))
            x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
            crop = photo.crop((x, y, x + side, y + side)).resize((SIDE, SIDE), Image.Resampling.LANCZOS)
            crops.append((f"{scene}_{i}", crop, _half(k)))
    return crops


def build(seed: int) -> pd.DataFrame:
    """Every image a draw may use, as a 64x64 PNG under DATA/src/<kind>/ (built once); one row each:
    path (relative to src), kind, digit (-1 for the foreign kinds) and the half whose draws use it."""
    import skimage.data
    from sklearn.datasets import load_digits

    evalset = EvalSet(DATA / "src", DATA / "items.csv", {"side": SIDE, "crops": CROPS_PER_SCENE, "seed": seed})
    cached = evalset.cached()
    if cached is not None:
        return cached
    rows = []

    def put(kind: str, name: str, im: Image.Image, digit: int, half: str) -> None:
        path = f"{kind}/{name}.png"
        (DATA / "src" / kind).mkdir(parents=True, exist_ok=True)
        im.resize((SIDE, SIDE), Image.Resampling.BICUBIC).convert("RGB").save(DATA / "src" / path)
        rows.append({"path": path, "kind": kind, "digit": digit, "half": half})

    digits = load_digits()
    for i, (pixels, digit) in enumerate(zip(digits.images, digits.target)):
        half = next(h for h, classes in HALVES.items() if digit in classes)
        put("digit", f"{i:04d}", Image.fromarray((255 - pixels * 255 / 16).astype(np.uint8), "L"), int(digit), half)
    for i, a in enumerate(skimage.data.lfw_subset()):  # 100 faces, then 100 non-face patches
        put("face" if i < 100 else "patch", f"{i:03d}", Image.fromarray((a * 255).astype(np.uint8), "L"), -1, _half(i))
    for name, crop, half in _photo_crops(seed):
        put("photo", name, crop, -1, half)
    return evalset.save(pd.DataFrame(rows))


def draw(items: pd.DataFrame, half: str, rate: float, rng: np.random.Generator) -> pd.DataFrame:
    """One labelled set of `half`'s classes, `rate` of each class planted: the rows of `items` it uses,
    with `label` (the class it is filed under) and `planted` (its kind, or "" where it belongs)."""
    mine = items[items["half"] == half]
    digits = mine[mine["kind"] == "digit"]
    pools = {k: list(rng.permutation(mine.index[mine["kind"] == k])) for k in KINDS}
    label, planted = {}, {}
    for c, n in sorted(digits["digit"].value_counts().items()):
        for kind in rng.choice(KINDS, round(rate * n)):
            j = next(j for j in pools[kind] if items.at[j, "digit"] != c)  # a digit from another class
            pools[kind].remove(j)
            label[j], planted[j] = str(c), str(kind)
    for j, digit in digits["digit"].items():
        label.setdefault(j, str(digit))
    used = items.loc[sorted(label)].copy()
    used["label"] = [label[j] for j in used.index]
    used["planted"] = [planted.get(j, "") for j in used.index]
    return used


def score(used: pd.DataFrame, vectors: dict[str, np.ndarray]) -> np.ndarray:
    """The outlier check's score of each row of `used`, by the registered check's own function."""
    images = Labelled(used["label"].to_numpy(dtype=str), np.stack([vectors[p] for p in used["path"]]))
    return CHECKS.get("outlier").score(images).score


def run_cli(first: pd.DataFrame) -> tuple[dict[str, np.ndarray], pd.Series]:
    """Scan DATA/src with `first`'s labels (the rest unlabelled), embed it and validate it with every
    image scored: path -> embedding, and path -> outlier score from `curate validate`."""
    out, labels, config = DATA / "out", DATA / "labels.csv", DATA / "score_all.toml"
    first[["path", "label"]].to_csv(labels, index=False)
    config.write_text("[validate]\nthresholds = {outlier = 100}\n")
    for args in (["scan", str(DATA / "src"), "-o", str(out), "--labels", str(labels)], ["embed", str(out)],
                 ["validate", str(out), "--config", str(config)]):
        subprocess.run([CURATE, *args], check=True, stdout=subprocess.DEVNULL)
    ws = Workspace(str(out))
    manifest = ws.read("manifest", MANIFEST, columns=["sample_id", "path", "status"]).to_pandas()
    manifest = manifest[manifest["status"] == Status.OK.value]
    vectors = dict(zip(manifest["path"], embeddings_for(ws, manifest["sample_id"].tolist())))
    issues = ws.read("issues", ISSUES).to_pandas()
    return vectors, issues[issues["check"] == "outlier"].set_index("path")["score"]


def photo_classes(items: pd.DataFrame) -> pd.DataFrame:
    """The foreign images as classes of their own, nothing planted: the LFW faces (one class of 100),
    the LFW non-face patches (one class of 100, as mixed as a class gets) and each package
    photograph's crops (11 classes of 10)."""
    foreign = items[items["kind"] != "digit"].copy()
    scene = foreign["path"].str.extract(r"^photo/(.+)_\d+\.png$")[0]
    foreign["label"] = scene.where(foreign["kind"] == "photo", foreign["kind"])
    foreign["planted"] = ""
    return foreign


def firing(scored: pd.DataFrame) -> pd.Series:
    """Per threshold of GRID: the share of `scored`'s images that fire."""
    return pd.Series([(scored["score"] < t).mean() for t in GRID], index=GRID)


def sweep(scored: pd.DataFrame) -> pd.DataFrame:
    """Per threshold of GRID: the share of the classes' own images that fire (fp), of the planted ones
    (recall, overall and per kind), and the planted share of what fires (precision)."""
    clean, planted = scored[scored["planted"] == ""], scored[scored["planted"] != ""]
    rows = []
    for t in GRID:
        fired = (scored["score"] < t).sum()
        row = {"threshold": t, "fp": (clean["score"] < t).mean(), "recall": (planted["score"] < t).mean(),
               "precision": (planted["score"] < t).sum() / max(1, fired)}
        row |= {k: (planted.loc[planted["planted"] == k, "score"] < t).mean() for k in KINDS}
        rows.append(row)
    return pd.DataFrame(rows)


def table(sweep_: pd.DataFrame, marks: dict[float, str]) -> list[str]:
    lines = ["| threshold | own images firing (FP rate) | recall, all planted | " + " | ".join(
        f"recall, {k}" for k in KINDS) + " | precision |", "|---|---:|---:|" + "---:|" * len(KINDS) + "---:|"]
    for r in sweep_.itertuples():
        mark = f" ({marks[r.threshold]})" if r.threshold in marks else ""
        lines.append(f"| {r.threshold:.2f}{mark} | {r.fp:.2%} | {r.recall:.2f} | "
                     + " | ".join(f"{getattr(r, k):.2f}" for k in KINDS) + f" | {r.precision:.2f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=0.05)
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--fp-budget", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    items = build(args.seed)
    rng = np.random.default_rng(args.seed)
    draws = [pd.concat([draw(items, half, args.rate, rng).assign(half=half) for half in HALVES])
             for _ in range(args.draws)]
    vectors, cli_scores = run_cli(draws[0])
    scored = []
    for d, used in enumerate(draws):
        scored.append(used.assign(draw=d, score=score(used, vectors)))
    first = scored[0].set_index("path")["score"]
    gap = float((first - cli_scores.reindex(first.index)).abs().max())
    if not gap < 1e-4:
        raise SystemExit(f"draw 0: the benchmark's scores and curate validate's differ by {gap}")
    everything = pd.concat(scored)
    photos = photo_classes(items)
    photos["score"] = score(photos, vectors)
    sweeps = {half: sweep(everything[everything["half"] == half]) for half in HALVES}
    calibration = sweeps["calibration"]
    within = calibration[calibration["fp"] <= args.fp_budget]
    chosen = float(within["threshold"].max()) if len(within) else float("nan")
    default = CHECKS.get("outlier").threshold
    marks = {default: "the default"} | ({chosen: "chosen"} if chosen != default else {})
    counts = everything.groupby("half").agg(own=("planted", lambda s: (s == "").sum() / args.draws),
                                            planted=("planted", lambda s: (s != "").sum() / args.draws))
    lines = [SECTION, "",
             f"Command: `.venv/bin/python benchmarks/outlier.py --rate {args.rate} --draws {args.draws} "
             f"--fp-budget {args.fp_budget} --seed {args.seed}`  ",
             f"Machine: {cpu_model()}, {os.cpu_count()} logical CPUs, {ram_gib():.0f} GiB. Classes: scikit-learn's handwritten digits (64x64 "
             f"PNGs), calibration classes 0-4, held-out classes 5-9; {args.rate:.0%} of each class planted "
             f"(another class's digit, an LFW face, an LFW non-face patch, a package-photo crop, drawn at random), "
             f"{args.draws} draws pooled; EfficientNet-Lite0 GeM embeddings from `curate embed`. Draw 0 scored by "
             f"`curate validate` and by the check's function: largest difference {gap:.1e}.", ""]
    for half, sw in sweeps.items():
        lines += [f"**{half.capitalize()} classes** ({counts.at[half, 'own']:.0f} own images and "
                  f"{counts.at[half, 'planted']:.0f} planted per draw):", "", *table(sw, marks), ""]
    own = pd.DataFrame({"digits 0-4": sweeps["calibration"].set_index("threshold")["fp"],
                        "digits 5-9": sweeps["held out"].set_index("threshold")["fp"]}
                       | {name: firing(photos[photos["kind"] == kind]) for kind, name in PHOTO_SETS.items()})
    clean = everything[everything["planted"] == ""]
    lowest = [clean.loc[clean["half"] == h, "score"].min() for h in HALVES] + [
        photos.loc[photos["kind"] == kind, "score"].min() for kind in PHOTO_SETS]
    lines += ["**Own images firing, every class set** (the digit classes as above; the faces, patches and "
              "scene crops as classes of their own, nothing planted):", "",
              "| threshold | " + " | ".join(own.columns) + " |", "|---|" + "---:|" * len(own.columns),
              *(f"| {t:.2f}{f' ({marks[t]})' if t in marks else ''} | " + " | ".join(f"{v:.2%}" for v in row)
                + " |" for t, row in own.iterrows()),
              "| lowest own score | " + " | ".join(f"{m:.3f}" for m in lowest) + " |", ""]
    held = sweeps["held out"].set_index("threshold")
    lines.append(f"Chosen on the calibration classes (the largest threshold with at most {args.fp_budget:.0%} of "
                 f"their own images firing): {chosen:.2f}. Held out at it: FP rate {held.at[chosen, 'fp']:.2%}, "
                 f"recall {held.at[chosen, 'recall']:.2f}, precision {held.at[chosen, 'precision']:.2f}; at the "
                 f"default {default:g}: FP rate {held.at[default, 'fp']:.2%}, recall {held.at[default, 'recall']:.2f}. "
                 f"Own images firing at {chosen:.2f} in the other class sets: "
                 + ", ".join(f"{name} {own.at[chosen, name]:.2%}" for name in PHOTO_SETS.values()) + "."
                 if chosen == chosen else f"No threshold on the grid keeps the calibration FP rate within "
                 f"{args.fp_budget:.0%}.")
    body = "\n".join(lines) + "\n"
    write_section(SECTION, body, keep_notes=True)
    print(body)


if __name__ == "__main__":
    main()
