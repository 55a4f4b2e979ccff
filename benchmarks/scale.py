"""The scan at scale: peak memory of the driver and of every other process, on real files.

    .venv/bin/python benchmarks/scale.py scan 100000 1000000     # full scans (list, plan, decode)
    .venv/bin/python benchmarks/scale.py plan 10000000           # listing and plan only (no decode)
    .venv/bin/python benchmarks/scale.py stages 1000000          # validate, dedup, rebalance, report, status

`stages` builds an N-row manifest without N decodes: a real scan of the 2,000 seed photos, its ok
rows replicated under distinct paths and ids, 50 classes of Zipf-like sizes, pHashes and dHashes
drawn from the real hash distribution (benchmarks/hashgen.py: resampled real pHashes with bit
flips, planted near pairs), then runs each stage's command on it (`--workers 2`), sampled the same
way. The stages that read image bytes (shard, augment, embed, publish's thumbnails) are not run on
it: its paths name no file.

The tree of N files is hard links, under distinct paths (1,000 per folder, 50 classes), to 2,000
real photos (benchmarks/data/photos-small-5000, 500x375, reduced to 160x120 JPEGs once and kept in
benchmarks/data/scale-seed-2000/): real small photos without N decodes' worth of distinct files.
`scan` runs `curate scan SRC -o OUT --workers 2` as a subprocess; `plan` runs the scan's listing
(`curate.scan.listed.list_source_into`) and plan (`curate.scan.plan.plan`) in a subprocess. Both
sample every process of the run every 0.5 s (psutil): the driver (the command's own process: the
Dask scheduler runs in it) and the largest other process (a Dask worker, a decoder child). Figures
go to the "## Scale runs (MODE)" sections of benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from hostinfo import cpu_model, ram_gib
from results import write_section

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PHOTOS = HERE / "data" / "photos-small-5000"
SEED = HERE / "data" / "scale-seed-2000"
CURATE = Path(sys.executable).parent / "curate"
HEADING = "## Scale runs"

PLAN_ONLY = """
import sys
from curate.config import from_dict
from curate.scan.listed import list_source_into
from curate.scan.plan import plan
from curate.workspace import Workspace
src, out = sys.argv[1], sys.argv[2]
cfg = from_dict({"engine": {"workers": 2}})
Workspace(out).claim()
listing = list_source_into(src, out, cfg)
planned = plan(out, cfg, listing.files)
print(f"listed {listing.files} files in {listing.parts} parts, {listing.rounds} rounds; "
      f"{len(planned.groups)} groups, {sum(g.parts for g in planned.groups)} manifest parts")
"""


def seed_photos(n: int = 2000) -> list[Path]:
    """`n` real photos as 160x120 JPEGs (made once)."""
    from PIL import Image

    SEED.mkdir(parents=True, exist_ok=True)
    made = sorted(SEED.glob("*.jpg"))
    if len(made) >= n:
        return made[:n]
    for src in sorted(PHOTOS.glob("*.jpg"))[:n]:
        with Image.open(src) as im:
            im.convert("RGB").resize((160, 120), Image.Resampling.LANCZOS).save(SEED / src.name, quality=90)
    return sorted(SEED.glob("*.jpg"))[:n]


def make_tree(n: int, root: Path) -> Path:
    """`n` hard links to the seed photos, 1,000 per folder, folders spread over 50 classes."""
    seeds = seed_photos()
    done = root / f".complete-{n}"
    if done.exists():
        return root
    for start in range(0, n, 1000):
        folder = root / f"c{(start // 1000) % 50:02d}" / f"b{start // 1000:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(start, min(n, start + 1000)):
            target = folder / f"{i:08d}.jpg"
            if not target.exists():
                os.link(seeds[i % len(seeds)], target)
    done.touch()
    return root


def run_sampled(cmd: list[str], interval: float = 0.5, timeout: float = 3600) -> dict:
    """Run `cmd`; peak RSS of its own process and of the largest other process of its tree (a
    TimeoutError, the run killed, after `timeout` s)."""
    started = time.perf_counter()
    log = tempfile.TemporaryFile("w+")  # not a pipe: a full pipe would stall the run
    popen = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True)
    driver = psutil.Process(popen.pid)
    peak_driver = peak_other = peak_tree = 0
    while popen.poll() is None:
        try:
            procs = [driver, *driver.children(recursive=True)]
        except psutil.Error:
            procs = []
        tree = 0
        for p in procs:
            try:
                rss = p.memory_info().rss
            except psutil.Error:
                continue
            tree += rss
            if p.pid == driver.pid:
                peak_driver = max(peak_driver, rss)
            else:
                peak_other = max(peak_other, rss)
        peak_tree = max(peak_tree, tree)
        if time.perf_counter() - started > timeout:
            for p in procs:
                with contextlib.suppress(psutil.Error):
                    p.kill()
            raise TimeoutError(f"did not finish in {timeout:.0f} s (peak driver {peak_driver / 2**20:.0f} MiB)")
        time.sleep(interval)
    seconds = time.perf_counter() - started
    log.seek(0)
    said = log.read()
    if popen.returncode:
        raise RuntimeError(f"{cmd[:3]} failed:\n{said[-3000:]}")
    return {"seconds": seconds, "driver": peak_driver, "other": peak_other, "tree": peak_tree,
            "said": next((line for line in said.splitlines() if line.strip() and "Warning" not in line), "")[:160]}


def measure(mode: str, n: int, work: Path) -> list[dict]:
    """One `scan` (then the same scan again, nothing changed: the incremental rescan) or one
    listing and plan, of an n-file tree."""
    src = make_tree(n, work / f"tree-{n}")
    out = work / f"out-{mode}-{n}"
    shutil.rmtree(out, ignore_errors=True)
    if mode == "scan":
        cmd = [str(CURATE), "scan", str(src), "-o", str(out), "--workers", "2"]
        rows = [{"mode": "scan", "files": n, **run_sampled(cmd)}, {"mode": "rescan", "files": n, **run_sampled(cmd)}]
    else:
        rows = [{"mode": mode, "files": n, **run_sampled([sys.executable, "-c", PLAN_ONLY, str(src), str(out)])}]
    shutil.rmtree(out, ignore_errors=True)
    return rows


STAGES = ("validate", "dedup", "rebalance", "report", "status")
PART_ROWS = 2000


def synthetic_manifest(n: int, work: Path) -> Path:
    """OUT with an n-row manifest replicated from a real scan of the seed photos (see module doc)."""
    import numpy as np
    import pyarrow as pa
    from hashgen import realistic_hashes

    sys.path.insert(0, str(ROOT))
    from curate.imaging.formats import sample_id
    from curate.schema import MANIFEST
    from curate.workspace import Workspace

    out = work / f"manifest-{n}"
    if (out / ".complete").exists():
        return out
    shutil.rmtree(out, ignore_errors=True)
    real = work / "seed-scan"
    if not (real / "manifest").exists():
        subprocess.run([str(CURATE), "scan", str(SEED), "-o", str(real), "--workers", "2"], check=True,
                       capture_output=True)
    seed_rows = [r for r in Workspace(str(real)).read("manifest", MANIFEST).to_pylist() if r["status"] == "ok"]
    phash, _a, _b = realistic_hashes(n, 8, seed=1)
    dhash, _a, _b = realistic_hashes(n, 8, seed=2)
    rng = np.random.default_rng(3)
    weights = 1 / np.arange(1, 51) ** 0.8  # 50 classes, the largest ~23x the smallest
    labels = rng.choice(50, n, p=weights / weights.sum())
    ws = Workspace(str(out))
    ws.claim()
    for part, lo in enumerate(range(0, n, PART_ROWS)):
        rows = []
        for i in range(lo, min(n, lo + PART_ROWS)):
            row = dict(seed_rows[i % len(seed_rows)])
            path = f"class_{labels[i]:02d}/b{i // 1000:05d}/{i:08d}.jpg"
            row.update(path=path, label=f"class_{labels[i]:02d}", split=None, bytes_hash=f"{i:032x}",
                       pixel_hash=f"{i:032x}", phash=int(phash[i]), dhash=int(dhash[i]),
                       phash_d8=[int(phash[i])] * 8)
            row["sample_id"] = sample_id(path, row["bytes_hash"])
            rows.append(row)
        ws.write_table(f"manifest/part-{part:05d}.parquet", pa.Table.from_pylist(rows, schema=MANIFEST), MANIFEST)
    (out / "runs").mkdir(exist_ok=True)  # the stages need a scan record: the seed scan's
    shutil.copy(real / "runs" / "scan.json", out / "runs" / "scan.json")
    (out / ".complete").touch()
    return out


def measure_stages(n: int, work: Path, timeout: float) -> list[dict]:
    out = synthetic_manifest(n, work)
    rows = []
    for stage in STAGES:
        runs_on_dask = "--workers" in subprocess.run([str(CURATE), stage, "--help"], capture_output=True,
                                                     text=True).stdout
        args = [str(out), "--workers", "2"] if runs_on_dask else [str(out)]
        try:
            result = run_sampled([str(CURATE), stage, *args], timeout=timeout)
        except TimeoutError as exc:
            result = {"seconds": timeout, "driver": 0, "other": 0, "tree": 0, "said": str(exc)}
        rows.append({"mode": stage, "files": n, **result})
        print(table(rows[-1:]), "\n", rows[-1]["said"], flush=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| job | rows | wall s | driver peak RSS MiB | largest other process MiB | whole run MiB |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        job = {"scan": "`curate scan` (list, plan, decode)", "rescan": "`curate scan` again, nothing changed",
               "plan": "listing and plan only"}.get(
            r["mode"], f"`curate {r['mode']}`")
        lines.append(f"| {job} | {r['files']:,} | {r['seconds']:.0f} | {r['driver'] / 2**20:.0f} | "
                     f"{r['other'] / 2**20:.0f} | {r['tree'] / 2**20:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["scan", "plan", "stages"])
    parser.add_argument("sizes", type=int, nargs="+")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "curate-scale")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds one stage may run (stages)")
    args = parser.parse_args()
    rows = []
    for n in args.sizes:
        if args.mode == "stages":
            rows.extend(measure_stages(n, args.work, args.timeout))
            continue
        done = measure(args.mode, n, args.work)
        rows.extend(done)
        print(table(done), "\n", done[-1]["said"], flush=True)
    body = (f"{HEADING}\n\n`.venv/bin/python benchmarks/scale.py {args.mode} {' '.join(map(str, args.sizes))}` on "
            f"{os.cpu_count()} CPUs ({cpu_model()}, {ram_gib():.0f} GiB), 2 Dask workers, "
            f"{time.strftime('%Y-%m-%d')}; machine shared with other jobs (times are not comparable, memory is).\n\n"
            f"{table(rows)}\n")
    print(body)
    if not args.no_write:
        write_section(f"{HEADING} ({args.mode})", body.replace(HEADING, f"{HEADING} ({args.mode})", 1))


if __name__ == "__main__":
    main()
