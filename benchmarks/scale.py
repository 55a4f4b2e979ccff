"""The scan at scale: peak memory of the driver and of every other process, on real files.

    .venv/bin/python benchmarks/scale.py scan 100000 1000000     # full scans (list, plan, decode)
    .venv/bin/python benchmarks/scale.py plan 10000000           # listing and plan only (no decode)

The tree of N files is hard links, under distinct paths (1,000 per folder, 50 classes), to 2,000
real photos (benchmarks/data/photos-small-5000, 500x375, reduced to 160x120 JPEGs once and kept in
benchmarks/data/scale-seed-2000/): real small photos without N decodes' worth of distinct files.
`scan` runs `curate scan SRC -o OUT --workers 2` as a subprocess; `plan` runs the scan's listing
(`curate.scan.listed.list_source_into`) and plan (`curate.scan.plan.plan`) in a subprocess. Both
sample every process of the run every 0.5 s (psutil): the driver (the command's own process: the
Dask scheduler runs in it) and the largest other process (a Dask worker, a decoder child). Figures
go to the "## Scale: the scan's driver" section of benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
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
HEADING = "## Scale: the scan's driver at 100k, 1M and 10M files"

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


def run_sampled(cmd: list[str], interval: float = 0.5) -> dict:
    """Run `cmd`; peak RSS of its own process and of the largest other process of its tree."""
    started = time.perf_counter()
    popen = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
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
        time.sleep(interval)
    stdout, stderr = popen.communicate()
    if popen.returncode:
        raise RuntimeError(f"{cmd[:3]} failed:\n{stdout[-2000:]}\n{stderr[-3000:]}")
    return {"seconds": time.perf_counter() - started, "driver": peak_driver, "other": peak_other,
            "tree": peak_tree, "said": (stdout.strip().splitlines() or [""])[0][:160]}


def measure(mode: str, n: int, work: Path) -> dict:
    src = make_tree(n, work / f"tree-{n}")
    out = work / f"out-{mode}-{n}"
    shutil.rmtree(out, ignore_errors=True)
    if mode == "scan":
        cmd = [str(CURATE), "scan", str(src), "-o", str(out), "--workers", "2"]
    else:
        cmd = [sys.executable, "-c", PLAN_ONLY, str(src), str(out)]
    result = run_sampled(cmd)
    shutil.rmtree(out, ignore_errors=True)
    return {"mode": mode, "files": n, **result}


def table(rows: list[dict]) -> str:
    lines = ["| job | files | wall s | driver peak RSS MiB | largest other process MiB | whole run MiB |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        job = "`curate scan` (list, plan, decode)" if r["mode"] == "scan" else "listing and plan only"
        lines.append(f"| {job} | {r['files']:,} | {r['seconds']:.0f} | {r['driver'] / 2**20:.0f} | "
                     f"{r['other'] / 2**20:.0f} | {r['tree'] / 2**20:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["scan", "plan"])
    parser.add_argument("sizes", type=int, nargs="+")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "curate-scale")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rows = []
    for n in args.sizes:
        rows.append(measure(args.mode, n, args.work))
        print(table(rows[-1:]), "\n", rows[-1]["said"], flush=True)
    body = (f"{HEADING}\n\n`.venv/bin/python benchmarks/scale.py {args.mode} {' '.join(map(str, args.sizes))}` on "
            f"{os.cpu_count()} CPUs ({cpu_model()}, {ram_gib():.0f} GiB), 2 Dask workers, "
            f"{time.strftime('%Y-%m-%d')}; machine shared with other jobs (times are not comparable, memory is).\n\n"
            f"{table(rows)}\n")
    print(body)
    if not args.no_write:
        write_section(f"{HEADING} ({args.mode})", body.replace(HEADING, f"{HEADING} ({args.mode})", 1))


if __name__ == "__main__":
    main()
