"""`curate validate` and `curate rebalance --prefer diverse` with embeddings at scale: peak memory
and time of each whole command, with the embedding checks (outlier, label_suspect) and the diversity
order on N images, this tree against `--base`'s commit.

    .venv/bin/python benchmarks/validate_embeddings.py 250000 1000000 [--base 45fce88~1 --base-max 500000]
        [--class-rows 10000] [--dim 1280] [--work /tmp/validate-embeddings] [--no-write]

Data (built once per N under WORK, kept): an N-row manifest of ok, labelled 500x375 images (the
other columns validate's image checks read are null: they score nothing, so what is measured is
the collection, the tasks and the embedding checks) in classes of `--class-rows` images, and OUT/embeddings/ as
parts of 100k rows in another order than the manifest's (float16, unit): each row its class's
direction (weight 0.5), its cluster's (0.6; clusters of ~20 rows) and noise (0.6), as
benchmarks/embed_checks_scale.py generates them; 2% of the labels flipped to another class and
0.5% of the rows planted outliers (their class's direction at a weight in 0-1 plus noise). Generated
a part at a time: never N rows in memory.

Each run is `curate validate OUT --workers 2`, then `curate rebalance OUT --workers 2 --strategy cap
--cap CLASS_ROWS/2 --prefer diverse`, in a child process, sampled every 0.5 s (the driver
and the largest other process: a Dask worker), with the CPU of the tree (`scale.run_sampled`); the
base runs the same command with `--base`'s `curate` package first on the path (`commits.export`),
for N up to `--base-max` (the base holds every embedding in float32 and more: ~18 KB an image at
1280-d, so 1M would need ~18 GB). Also printed: the flipped labels label_suspect found (recall and
precision), the planted outliers outlier found, the share of planted outliers the diverse cap
keeps, and whether the base wrote the same issues (rows, and the largest difference of their
scores per check) and the same plan. Figures go to the "## Validate with embeddings
at scale" section of RESULTS.md.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from commits import environment, export  # noqa: E402
from results import write_table  # noqa: E402
from scale import CURATE, run_sampled  # noqa: E402

from curate.schema import MANIFEST, embeddings_schema  # noqa: E402
from curate.workspace import Workspace  # noqa: E402

PART_ROWS = 100_000
SECTION = "## Validate with embeddings at scale"


def build(n: int, class_rows: int, dim: int, work: Path) -> Path:
    """OUT with the n-row manifest and embeddings of the module doc (kept: rebuilt only when absent);
    the flipped and planted rows' numbers in OUT/truth.npz."""
    out = work / f"out-{n}-{class_rows}-{dim}"
    if (out / ".complete").exists():
        return out
    shutil.rmtree(out, ignore_errors=True)
    rng = np.random.default_rng(0)
    classes = max(2, n // class_rows)
    true = rng.integers(0, classes, n)
    flipped = rng.random(n) < 0.02
    given = np.where(flipped, (true + rng.integers(1, classes, n)) % classes, true)
    planted = rng.random(n) < 0.005
    ids = np.array([f"{k:016x}" for k in range(n)])
    ws = Workspace(str(out))
    ws.claim()
    for part, lo in enumerate(range(0, n, PART_ROWS)):
        rows = np.arange(lo, min(n, lo + PART_ROWS))
        ws.write_table(f"manifest/part-{part:05d}.parquet", _manifest_part(ids[rows], given[rows]), MANIFEST)
    directions = _unit(np.random.default_rng(1).normal(size=(classes, dim)))
    schema = embeddings_schema(dim, "synthetic")
    order = np.random.default_rng(2).permutation(n)  # the embed stage's order is not the manifest's
    for part, lo in enumerate(range(0, n, PART_ROWS)):
        rows = order[lo:lo + PART_ROWS]
        x = _vectors(true[rows], planted[rows], directions, np.random.default_rng(100 + part))
        ws.write_table(f"embeddings/part-{part:05d}.parquet", pa.table({
            "sample_id": ids[rows],
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1), pa.float16()), dim),
            "error": pa.nulls(len(rows), pa.string())}, schema=schema), schema)
    np.savez(out / "truth.npz", flipped=np.flatnonzero(flipped & ~planted), planted=np.flatnonzero(planted))
    (out / "runs").mkdir(exist_ok=True)  # validate needs a scan record: a real scan's, of sample_data/
    shutil.copy(seed_scan(work) / "runs" / "scan.json", out / "runs" / "scan.json")
    (out / ".complete").touch()
    return out


def seed_scan(work: Path) -> Path:
    """OUT of a real `curate scan` of sample_data/ (made once)."""
    seed = work / "seed-scan"
    if not (seed / "runs" / "scan.json").exists():
        subprocess.run([str(CURATE), "scan", str(HERE.parent / "sample_data"), "-o", str(seed), "--workers", "2"],
                       capture_output=True)
    return seed


def _manifest_part(ids: np.ndarray, given: np.ndarray) -> pa.Table:
    """Manifest rows of ok 500x375 images with these ids and class numbers; every other column null."""
    columns = {"sample_id": ids, "path": [f"class_{c:05d}/{i}.jpg" for i, c in zip(ids, given)],
               "label": [f"class_{c:05d}" for c in given], "status": ["ok"] * len(ids),
               "width": [500] * len(ids), "height": [375] * len(ids)}
    return pa.table([pa.array(columns[f.name], f.type) if f.name in columns else pa.nulls(len(ids), f.type)
                     for f in MANIFEST], schema=MANIFEST)


def _vectors(true: np.ndarray, planted: np.ndarray, directions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """float16 unit rows: class direction, cluster and noise (planted outliers: a weaker class
    direction and noise), as `embed_checks_scale.generate` makes them."""
    n, dim = len(true), directions.shape[1]
    clusters = _unit(rng.normal(size=(max(1, n // 20), dim)))
    x = _unit(0.5 * directions[true] + 0.6 * clusters[rng.integers(0, len(clusters), n)]
              + 0.6 * _unit(rng.normal(size=(n, dim))))
    weight = rng.uniform(0, 1, (int(planted.sum()), 1))
    x[planted] = _unit(weight * directions[true[planted]] + _unit(rng.normal(size=(len(weight), dim))))
    return x.astype(np.float16)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def found(out: Path) -> str:
    """What the run's issues say of the known answers: label_suspect's recall and precision on the
    flipped labels, outlier's recall on the planted rows and how many rows it fired on."""
    issues = pq.read_table(out / "issues", columns=["path", "check"]).to_pandas()
    row = issues["path"].str.extract(r"/([0-9a-f]{16})\.jpg$")[0].map(lambda h: int(h, 16))
    truth = np.load(out / "truth.npz")
    suspect, outlier = set(row[issues["check"] == "label_suspect"]), set(row[issues["check"] == "outlier"])
    flipped, planted = set(truth["flipped"].tolist()), set(truth["planted"].tolist())
    return (f"label_suspect {len(suspect):,} fired: recall {len(suspect & flipped) / max(1, len(flipped)):.3f}, "
            f"precision {len(suspect & flipped) / max(1, len(suspect)):.3f}; outlier {len(outlier):,} fired, "
            f"{len(outlier & planted) / max(1, len(planted)):.3f} of the planted")


def issues_of(out: Path) -> pd.DataFrame:
    return pq.read_table(out / "issues", columns=["sample_id", "check", "score"]).to_pandas().sort_values(
        ["sample_id", "check"], ignore_index=True)


def plan_of(out: Path) -> pd.DataFrame:
    return pq.read_table(out / "plan", columns=["sample_id", "keep"]).to_pandas().sort_values(
        "sample_id", ignore_index=True)


def kept(out: Path) -> str:
    """How many images the plan keeps, and how many of the planted outliers (the least redundant)."""
    plan = plan_of(out)
    row = plan["sample_id"].map(lambda h: int(h, 16))
    planted = set(np.load(out / "truth.npz")["planted"].tolist())
    keep = plan["keep"].to_numpy()
    return (f"{int(keep.sum()):,} kept of {len(plan):,}; planted outliers kept: "
            f"{keep[row.isin(planted).to_numpy()].mean():.3f} (all images: {keep.mean():.3f})")


def _compared(a: pd.DataFrame, b: pd.DataFrame) -> str:
    """Whether two runs wrote the same rows (issues: the same (sample, check) rows, and their scores'
    largest difference per check; plans: the same images kept)."""
    if "keep" in a:
        return "the same plan as this tree's" if a.equals(b) else "ANOTHER PLAN than this tree's"
    if not a[["sample_id", "check"]].equals(b[["sample_id", "check"]]):
        return "OTHER ISSUES than this tree's"
    apart = (a["score"] - b["score"]).abs().groupby(a["check"]).max()
    return "the same issues as this tree's, scores within " + ", ".join(f"{v:.1e} ({c})" for c, v in apart.items())


# command, its arguments after OUT and --workers, what its run found, the rows compared between trees
COMMANDS = [("validate", [], found, issues_of),
            ("rebalance", ["--strategy", "cap", "--cap", "{cap}", "--prefer", "diverse"], kept, plan_of)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sizes", type=int, nargs="+")
    parser.add_argument("--class-rows", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--base", default="", help="also run `curate validate` at this commit (the code before)")
    parser.add_argument("--base-max", type=int, default=500_000, help="the largest N the base runs")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "validate-embeddings")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    trees = {"this tree": None, **({f"{args.base} (before)": export(args.base)} if args.base else {})}
    lines = []
    try:
        for n in args.sizes:
            out = build(n, args.class_rows, args.dim, args.work)
            first: dict[str, pd.DataFrame] = {}
            for name, tree in trees.items():
                if tree and n > args.base_max:
                    continue
                for command, args_, result, read in COMMANDS:
                    r = run_sampled([str(CURATE), command, str(out), "--workers", "2",
                                     *[a.format(cap=args.class_rows // 2) for a in args_]],
                                    timeout=7200, env=environment(tree) if tree else None)
                    table = read(out)
                    same = f"; {_compared(first[command], table)}" if command in first else ""
                    first.setdefault(command, table)
                    lines.append(f"| {n:,} | {max(2, n // args.class_rows):,} | `{command}` | {name} | "
                                 f"{r['seconds']:.0f} | {r['cpu']:.0f} | {r['driver'] / 2**20:,.0f} | "
                                 f"{r['other'] / 2**20:,.0f} | {result(out)}{same} |")
                    print(lines[-1], flush=True)
    finally:
        for tree in trees.values():
            if tree:
                shutil.rmtree(tree, ignore_errors=True)
    write_table(SECTION, f"benchmarks/validate_embeddings.py {' '.join(map(str, args.sizes))} --class-rows "
                f"{args.class_rows} --dim {args.dim}" + (f" --base {args.base} --base-max {args.base_max}" if args.base else ""),
                "| images | classes | command | code | wall s | CPU s | driver peak RSS MiB | largest worker MiB | found |",
                "| ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | --- |", lines, not args.no_write)


if __name__ == "__main__":
    main()
