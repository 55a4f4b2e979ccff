"""Rebalance at scale: wall time and peak memory of the plan for 1M and 10M manifest rows.

    .venv/bin/python benchmarks/rebalance_scale.py                    # 1M, then 10M if it is predicted in time
    .venv/bin/python benchmarks/rebalance_scale.py --rows 1000000 3000000 --mem-limit-gb 12

A synthetic workspace per size under benchmarks/data/rebalance-<rows>/ (built once; a stamp
records the parameters), written with pyarrow directly in curate.schema.MANIFEST:
  * OUT/manifest/part-*.parquet, 1M rows per part: sample_id (16 hex digits, like the scan's),
    path `c0042/000001234.jpg`, label (1000 classes, Zipf sizes: class k gets a share
    proportional to 1/(k+1), so the largest is ~750x the smallest), split (80/10/10 train/val/test,
    seeded), status 'ok' (0.2% 'error' with error_code 'corrupt'); every other column null.
    Rows are shuffled so every part holds every class.
  * OUT/issues/: one part with zero rows (ISSUES schema).
  * OUT/duplicates/: 1% of the rows in clusters of 2 within a class (DUPLICATES schema), one
    member kept.

Then `curate.rebalance.stage.rebalance(None, OUT, cfg)` for strategy none, cap (cap=1000) and
target (sqrt), each in a fresh child process with the default engine. The parent samples the
RSS of the child and of every process it starts (the Dask cluster) every 0.1 s (psutil) and
kills it above --mem-limit-gb (the tree's sum) or after --timeout-s; the child reports its own
ru_maxrss and rebalance's own elapsed time. A size is skipped when the previous size's time,
extrapolated linearly, predicts it would not finish in time.

Writes benchmarks/RESULTS-rebalance.md (a fragment for benchmarks/RESULTS.md).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from hostinfo import cpu_model, ram_gib

if TYPE_CHECKING:
    import numpy

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = HERE / "data"
FRAGMENT = HERE / "RESULTS-rebalance.md"
PY = ROOT / ".venv" / "bin" / "python"
SEED = 20240917
N_CLASSES = 1000
PART_ROWS = 1_000_000
DUP_FRACTION = 0.01
PARAMS_VERSION = 1
STRATEGIES = {  # name: rebalance config overrides
    "none": {"strategy": "none"},
    "cap": {"strategy": "cap", "cap": 1000},
    "target": {"strategy": "target", "target": "sqrt"},
}


# --------------------------------------------------------------------------------------------
# Synthetic workspace
# --------------------------------------------------------------------------------------------

def class_sizes(n: int) -> "numpy.ndarray":
    """Zipf sizes (share ∝ 1/(k+1)) for N_CLASSES classes, summing to n exactly."""
    import numpy as np

    w = 1.0 / np.arange(1, N_CLASSES + 1)
    exact = n * w / w.sum()
    sizes = np.floor(exact).astype(np.int64)
    sizes[np.argsort(-(exact - sizes))[: n - sizes.sum()]] += 1
    return sizes


def build(n: int) -> Path:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from curate.schema import DUPLICATES, ISSUES, MANIFEST

    out = DATA / f"rebalance-{n}"
    params = {"rows": n, "seed": SEED, "classes": N_CLASSES, "part_rows": PART_ROWS, "dups": DUP_FRACTION,
              "version": PARAMS_VERSION}
    stamp = out / ".params.json"
    if stamp.exists() and json.loads(stamp.read_text()) == params:
        return out
    if out.exists():
        shutil.rmtree(out)
    t0 = time.perf_counter()
    rng = np.random.default_rng([SEED, n])
    sizes = class_sizes(n)
    labels = rng.permutation(np.repeat(np.arange(N_CLASSES, dtype=np.int32), sizes))
    # a splitmix64 of the row number: unique 16-hex-digit ids, like xxh3_64_hexdigest
    z = np.arange(n, dtype=np.uint64) + np.uint64(SEED)
    with np.errstate(over="ignore"):
        z = (z + np.uint64(0x9E3779B97F4A7C15))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    split_idx = rng.choice(3, size=n, p=[0.8, 0.1, 0.1]).astype(np.int8)
    error = rng.random(n) < 0.002
    class_names = np.array([f"c{k:04d}" for k in range(N_CLASSES)], dtype=object)
    split_names = np.array(["train", "val", "test"], dtype=object)
    (out / "manifest").mkdir(parents=True)
    for p, start in enumerate(range(0, n, PART_ROWS)):
        stop = min(n, start + PART_ROWS)
        ids = [f"{x:016x}" for x in z[start:stop].tolist()]
        lab = class_names[labels[start:stop]]
        paths = [f"{c}/{i:09d}.jpg" for c, i in zip(lab.tolist(), range(start, stop))]
        m = stop - start
        err = error[start:stop]
        cols = {name: pa.nulls(m, MANIFEST.field(name).type) for name in MANIFEST.names}
        cols.update(
            sample_id=pa.array(ids, pa.string()), path=pa.array(paths, pa.string()),
            label=pa.array(lab, pa.string()), split=pa.array(split_names[split_idx[start:stop]], pa.string()),
            status=pa.array(np.where(err, "error", "ok"), pa.string()),
            error_code=pa.array(np.where(err, "corrupt", None), pa.string()),
        )
        table = pa.table([cols[name] for name in MANIFEST.names], schema=MANIFEST)
        pq.write_table(table, out / "manifest" / f"part-{p:05d}.parquet", compression="zstd")
    # duplicates: pairs of rows of the same class (adjacent in class order), chosen at random
    n_pairs = int(n * DUP_FRACTION / 2)
    order = np.argsort(labels, kind="stable")
    starts = np.arange(0, n - 1, 2)
    starts = starts[labels[order[starts]] == labels[order[starts + 1]]]
    starts = np.sort(rng.choice(starts, size=min(n_pairs, len(starts)), replace=False))
    a, b = order[starts], order[starts + 1]
    members = np.concatenate([a, b])
    ids = [f"{x:016x}" for x in z[members].tolist()]
    lab = class_names[labels[members]]
    k = len(a)
    dups = pa.table({
        "sample_id": pa.array(ids, pa.string()),
        "path": pa.array([f"{c}/{i:09d}.jpg" for c, i in zip(lab.tolist(), members.tolist())], pa.string()),
        "label": pa.array(lab, pa.string()),
        "split": pa.array(split_names[split_idx[members]], pa.string()),
        "cluster_id": pa.array(np.concatenate([np.arange(k), np.arange(k)]), pa.int64()),
        "kind": pa.array(["near"] * (2 * k), pa.string()),
        "distance": pa.array(np.concatenate([np.zeros(k), np.full(k, 3)]).astype(np.int16), pa.int16()),
        "keep": pa.array(np.concatenate([np.ones(k, bool), np.zeros(k, bool)])),
        "reason": pa.array(["representative"] * k + ["near duplicate"] * k, pa.string()),
        "leak": pa.array(np.tile(split_idx[a] != split_idx[b], 2)),
        "label_conflict": pa.array(np.zeros(2 * k, bool)),
    })
    (out / "duplicates").mkdir()
    pq.write_table(dups.cast(DUPLICATES), out / "duplicates" / "part-00000.parquet", compression="zstd")
    (out / "issues").mkdir()
    pq.write_table(ISSUES.empty_table(), out / "issues" / "part-00000.parquet")
    stamp.write_text(json.dumps(params))
    print(f"built {out} ({n} rows, {2 * k} duplicate rows) in {time.perf_counter() - t0:.0f}s", file=sys.stderr,
          flush=True)
    return out


def disk_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*.parquet")) / 2**20


# --------------------------------------------------------------------------------------------
# One run, in a child process
# --------------------------------------------------------------------------------------------

def child(out: str, strategy: str) -> None:
    from curate.config import Config, override
    from curate.rebalance.stage import rebalance

    cfg = override(Config(), "rebalance", **STRATEGIES[strategy])
    t0 = time.perf_counter()
    summary = rebalance(None, out, cfg)
    wall = time.perf_counter() - t0
    kept = sum(sum(v.values()) for v in summary.after.values())
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"cpu_s": ru.ru_utime + ru.ru_stime, "ru_maxrss": ru.ru_maxrss * 1024,
                      "rebalance_s": wall, "summary_s": summary.elapsed_s, "after_total": kept,
                      "after_train": sum(summary.after.get("train", {}).values()),
                      "excluded": summary.excluded}))


def measure(out: Path, strategy: str, mem_limit: float, timeout: float) -> dict:
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen([str(PY), __file__, "_child", str(out), strategy], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    peak, killed = 0, None
    per_process: dict[int, int] = {}  # pid -> peak RSS: the driver, and Dask's scheduler and workers
    while proc.poll() is None:
        try:
            procs = [ps, *ps.children(recursive=True)]
        except psutil.Error:
            procs = []
        rss = 0
        for p in procs:
            try:
                r = p.memory_info().rss
            except psutil.Error:
                continue
            rss += r
            per_process[p.pid] = max(per_process.get(p.pid, 0), r)
        peak = max(peak, rss)
        if rss > mem_limit:
            killed = f"killed: RSS {rss / 2**30:.1f} GiB over the {mem_limit / 2**30:.0f} GiB limit"
        elif time.perf_counter() - t0 > timeout:
            killed = f"killed: over the {timeout:.0f} s limit"
        if killed:
            proc.kill()
            break
        time.sleep(0.1)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    res = {"strategy": strategy, "process_s": wall, "sampled_peak": peak, "killed": killed,
           "processes": len(per_process), "driver_peak": per_process.get(proc.pid, 0),
           "largest_process_peak": max(per_process.values(), default=0)}
    if not killed:
        if proc.returncode != 0:
            sys.exit(f"child failed ({proc.returncode}):\n{stderr[-3000:]}")
        res.update(json.loads(stdout.strip().splitlines()[-1]))
        res["driver_peak"] = max(res["ru_maxrss"], res["driver_peak"])
        res["largest_process_peak"] = max(res["driver_peak"], res["largest_process_peak"])
    return res


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------

def machine() -> str:
    cpu, mem = cpu_model(), int(ram_gib())
    import pandas
    import pyarrow

    return (f"{dt.date.today().isoformat()}, {platform.platform()}, Python {platform.python_version()}, pandas "
            f"{pandas.__version__}, pyarrow {pyarrow.__version__}, nproc {os.cpu_count()} ({cpu}), {mem} GiB RAM, "
            f"shared with other work (times are noisy)")


def report(results: list[dict], skipped: list[str], args) -> str:
    from curate.rebalance.stage import CLUSTER_MIN_ROWS

    lines = ["## Rebalance at scale\n", f"Machine: {machine()}.\n", "Command:\n", "```",
             f".venv/bin/python benchmarks/rebalance_scale.py --rows {' '.join(map(str, args.rows))} "
             f"--strategies {' '.join(args.strategies)} --large-strategies {' '.join(args.large_strategies)} "
             f"--mem-limit-gb {args.mem_limit_gb:g} --timeout-s {args.timeout_s:g}", "```\n"]
    w = lines.append
    w(f"Synthetic workspaces (benchmarks/data/rebalance-N/): N manifest rows in {PART_ROWS:,}-row parts, "
      f"{N_CLASSES} classes with Zipf sizes (share ∝ 1/(k+1)), split 80/10/10, 0.2% scan errors, "
      f"{DUP_FRACTION:.0%} of rows in duplicate pairs (one kept), an empty issues table. Each run is "
      f"`curate.rebalance.stage.rebalance(None, OUT, cfg)` with the default engine (a local Dask cluster of "
      f"one worker process per core once the manifest has {CLUSTER_MIN_ROWS:,} rows and more than one part; "
      f"in-process otherwise) in a fresh child process (`python benchmarks/rebalance_scale.py _child OUT "
      f"STRATEGY`). RSS of the child and of every process it starts (Dask scheduler, nanny, workers) is "
      f"sampled every 0.1 s: driver peak = max(its ru_maxrss, samples); largest process peak = the largest "
      f"single process; tree peak = the largest sum over all of them at one time. rebalance() = its own "
      f"wall time; driver CPU = user + sys of the child alone (imports included; the workers' CPU is not "
      f"in it); process = spawn to exit.\n")
    rows = []
    for r in results:
        if r.get("killed"):
            rows.append([f"{r['rows']:,}", r["strategy"], str(r["parts"]), "–", "–", f"{r['process_s']:.0f}",
                         str(r["processes"]), "–", "–", f"≥ {gib(r['sampled_peak'])}", r["killed"]])
            continue
        rows.append([f"{r['rows']:,}", r["strategy"], str(r["parts"]), f"{r['rebalance_s']:.1f}",
                     f"{r['cpu_s']:.1f}", f"{r['process_s']:.1f}", str(r["processes"]), gib(r["driver_peak"]),
                     gib(r["largest_process_peak"]), gib(r["sampled_peak"]),
                     f"train after: {r['after_train']:,}; excluded: "
                     + ", ".join(f"{k} {v:,}" for k, v in r["excluded"].items())])
    header = ["rows", "strategy", "manifest parts", "rebalance() s", "driver CPU s", "process s", "processes",
              "driver peak GiB", "largest process peak GiB", "process tree peak GiB", "plan"]
    w("| " + " | ".join(header) + " |")
    w("| --- | --- | " + " | ".join("---:" for _ in header[2:-1]) + " | --- |")
    for r in rows:
        w("| " + " | ".join(r) + " |")
    w("")
    for s in skipped:
        w(f"- {s}")
    if skipped:
        w("")
    return "\n".join(lines) + "\n"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        child(sys.argv[2], sys.argv[3])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=list(STRATEGIES))
    ap.add_argument("--large-strategies", nargs="+", default=["cap"], choices=list(STRATEGIES),
                    help="strategies run at the sizes after the first (to keep the benchmark short)")
    ap.add_argument("--mem-limit-gb", type=float, default=12.0,
                    help="kill a run above this RSS, and skip a size predicted to need more")
    ap.add_argument("--timeout-s", type=float, default=900.0)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--report-only", action="store_true", help="rewrite the fragment from the last run's JSON")
    args = ap.parse_args()
    limit = args.mem_limit_gb * 2**30
    if args.report_only:
        saved = json.loads((DATA / "rebalance-scale.json").read_text())
        if isinstance(saved, list):  # older format: results only
            saved = {"results": saved, "skipped": []}
        text = report(saved["results"], saved["skipped"], args)
        print(text)
        FRAGMENT.write_text(text + analysis(saved["results"]) + DESIGN)
        return
    results, skipped = [], []
    s_per_row = 0.0
    for n in sorted(args.rows):
        if s_per_row and s_per_row * n > args.timeout_s:
            skipped.append(f"{n:,} rows not run: predicted {s_per_row * n:.0f} s, over the "
                           f"{args.timeout_s:.0f} s limit")
            continue
        out = build(n)
        print(f"{n:,} rows: {disk_mb(out / 'manifest'):.0f} MB of manifest", file=sys.stderr, flush=True)
        for strategy in (args.strategies if n == min(args.rows) else args.large_strategies):
            r = measure(out, strategy, limit, args.timeout_s)
            r["rows"] = n
            r["manifest_mb"] = disk_mb(out / "manifest")
            r["parts"] = len(list((out / "manifest").glob("part-*.parquet")))
            results.append(r)
            print(json.dumps(r), file=sys.stderr, flush=True)
            if not r.get("killed"):
                s_per_row = max(s_per_row, r["process_s"] / n)
    (DATA / "rebalance-scale.json").write_text(json.dumps({"results": results, "skipped": skipped}, indent=1))
    text = report(results, skipped, args)
    print(text)
    if not args.no_write:
        FRAGMENT.write_text(text + analysis(results) + DESIGN)


def analysis(results: list[dict]) -> str:
    ok = sorted((r for r in results if not r.get("killed")), key=lambda r: r["rows"])
    if len(ok) < 2:
        return ""
    small, big = ok[0], ok[-1]
    grow = big["largest_process_peak"] / small["largest_process_peak"]
    return "\n".join([
        "### What this says\n",
        f"- **Memory bounded by partition.** From {small['rows']:,} rows ({small['parts']} part, "
        f"{small['processes']} process) to {big['rows']:,} rows ({big['parts']} parts, {big['processes']} "
        f"processes), the largest single process grew {grow:.2f}x ({gib(small['largest_process_peak'])} -> "
        f"{gib(big['largest_process_peak'])} GiB) for {big['rows'] / small['rows']:.0f}x the rows, and the "
        f"driver peaked at {gib(big['driver_peak'])} GiB: no process holds more than one manifest part "
        f"({PART_ROWS:,} rows) plus per-class tables. The tree's sum is the number of workers times that.",
        f"- **Time**: {big['rows']:,} rows in {big['rebalance_s']:.0f} s wall on these 2 cores "
        f"({big['rebalance_s'] * 1e6 / big['rows']:.0f} s per million rows; {small['rebalance_s']:.0f} s for "
        f"{small['rows']:,} in-process). The passes: mark each part (read the part, its issues and duplicates "
        f"with a pushed-down `isin` filter, a seeded xxh3 key per row), count per class with a 1024-bucket "
        f"histogram of the seeded order, collect the rows of the one boundary bucket per class, write.\n"]) + "\n"


def gib(b: float) -> str:
    return f"{b / 2**30:.2f}"


DESIGN = """### How it stays partition-bounded

`curate/rebalance/stage.py` runs passes over the manifest parts on the run's Dask cluster; each task
reads one part (`curate/rebalance/marks.py`) and returns small tables:

1. **Mark** each part: its pre-strategy exclusions (scan error, an excluding issue, a dropped duplicate,
   no label), the warned flag, the cluster id and a seeded 64-bit key per row, written to a narrow
   marks file the later passes read; it returns the part's duplicate-cluster members only, from which
   the driver computes each cluster's split (the anchor, or the re-split's placement).
2. **Count** per (split, class) and a histogram of the top 10 bits of the order key (tier in the top two
   bits: warned images last, duplicate-cluster members next, then the seeded key). The strategy turns
   the counts into targets on the driver.
3. **Rank cut-offs without a global sort** (`curate/rebalance/ranks.py`): keeping the first `target`
   rows of a class is keeping the rows before the class's cut-off `(order*, path*)`; the histogram says
   which bucket holds it, and one more pass returns only the rows of those buckets (about a
   thousandth of the rows) for the exact cut. A re-split's train and val quotas per class are the same
   problem over the single (unclustered) images.
4. **Write** each part's plan file from its marks and the broadcast decisions; the summary is the sum of
   what the parts wrote.

The same code runs in-process on one part: `tests/test_rebalance.py` checks that 14 parts on a
two-worker cluster give the same plan as one part in-process, for every strategy and a re-split.
"""

if __name__ == "__main__":
    main()
