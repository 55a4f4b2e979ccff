"""The scan at scale: peak memory of the driver and of every other process, on real files.

    .venv/bin/python benchmarks/scale.py scan 100000 1000000     # full scans (list, plan, decode)
    .venv/bin/python benchmarks/scale.py plan 10000000           # listing and plan only (no decode)
    .venv/bin/python benchmarks/scale.py stages 1000000          # validate, dedup, rebalance, report, status, ...
    .venv/bin/python benchmarks/scale.py cluster 10000000 --stage validate   # on `dask scheduler` + 4 workers

`stages` builds an N-row manifest without N decodes: a real scan of the 2,000 seed photos, its ok
rows replicated under distinct paths and ids, 50 classes of Zipf-like sizes, pHashes and dHashes
drawn from the real hash distribution (benchmarks/hashgen.py: resampled real pHashes with bit
flips, planted near pairs: recall is the share of them dedup does not keep both of), then runs each stage's command on
it (`--workers 2`), sampled the same way, with the CPU seconds of the whole tree. `cluster` runs the
README's recipe on loopback instead: a `dask scheduler` process and `--cluster-workers` `dask worker`
processes with `--memory-limit` each, the stage given `--scheduler`, and the scheduler and workers
sampled with the command (as other processes). Its paths name no file, so `shard` and `augment`
(`--copies 1 --classes class_49`: the smallest class's sources) measure their planning, task
graph, index and summary with every file absent (each sample left out as vanished, each source
failing to decode), not the copying of bytes; embed and publish are measured elsewhere.

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
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
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
    """`n` real photos as 160x120 JPEGs (made once, from benchmarks/scan.py's 500x375 set, which
    is made first where it is missing)."""
    from PIL import Image
    from scan import ensure_data

    SEED.mkdir(parents=True, exist_ok=True)
    made = sorted(SEED.glob("*.jpg"))
    if len(made) >= n:
        return made[:n]
    ensure_data("small", 5000, os.cpu_count() or 2)  # PHOTOS
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


def run_sampled(cmd: list[str], interval: float = 0.5, timeout: float = 3600,
                also: Sequence[psutil.Process] = (), env: dict[str, str] | None = None) -> dict:
    """Run `cmd`; peak RSS of its own process and of the largest other process of its tree, and the
    CPU seconds of the tree (each process's last sample; a TimeoutError, the run killed, after
    `timeout` s). `also`: processes outside the tree (a separate Dask scheduler and its workers,
    with their children) sampled as other processes. `env`: the command's environment (None: this one's)."""
    started = time.perf_counter()
    log = tempfile.TemporaryFile("w+")  # not a pipe: a full pipe would stall the run
    popen = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True, env=env)
    driver = psutil.Process(popen.pid)
    peak_driver = peak_other = peak_tree = 0
    cpu: dict[int, float] = {}
    before = 0.0  # what `also` had spent before the run
    for root in also:
        with contextlib.suppress(psutil.Error):
            before += sum(sum(p.cpu_times()[:2]) for p in [root, *root.children(recursive=True)])
    while popen.poll() is None:
        procs = []
        for root in (driver, *also):
            with contextlib.suppress(psutil.Error):
                procs += [root, *root.children(recursive=True)]
        tree = 0
        for p in procs:
            try:
                rss = p.memory_info().rss
                times = p.cpu_times()
            except psutil.Error:
                continue
            cpu[p.pid] = times.user + times.system
            tree += rss
            if p.pid == driver.pid:
                peak_driver = max(peak_driver, rss)
            else:
                peak_other = max(peak_other, rss)
        peak_tree = max(peak_tree, tree)
        if time.perf_counter() - started > timeout:
            with contextlib.suppress(psutil.Error):
                for p in [*driver.children(recursive=True), driver]:  # not the cluster's
                    p.kill()
            raise TimeoutError(f"did not finish in {timeout:.0f} s (peak driver {peak_driver / 2**20:.0f} MiB)")
        time.sleep(interval)
    seconds = time.perf_counter() - started
    log.seek(0)
    said = log.read()
    if popen.returncode:
        raise RuntimeError(f"{cmd[:3]} failed:\n{said[-3000:]}")
    return {"seconds": seconds, "cpu": sum(cpu.values()) - before, "driver": peak_driver, "other": peak_other, "tree": peak_tree,
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


STAGES = ("validate", "dedup", "rebalance", "report", "status", "shard", "augment")
STAGE_ARGS = {"augment": ["--copies", "1", "--classes", "class_49"]}  # the plan asks for no variants
PART_ROWS = 2000


def synthetic_manifest(n: int, work: Path) -> Path:
    """OUT with an n-row manifest replicated from a real scan of the seed photos (see module doc),
    one Arrow `take` of the seed rows per part with the per-row columns replaced; the planted
    pHash pairs' row numbers go to OUT/planted.npz (the known answers of `dedup_recall`)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
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
        seed_photos()
        subprocess.run([str(CURATE), "scan", str(SEED), "-o", str(real), "--workers", "2"], check=True,
                       capture_output=True)
    seed = Workspace(str(real)).read("manifest", MANIFEST)
    seed = seed.filter(pc.equal(seed["status"], "ok"))
    phash, planted_a, planted_b = realistic_hashes(n, 8, seed=1)
    dhash, _a, _b = realistic_hashes(n, 8, seed=2)
    rng = np.random.default_rng(3)
    weights = 1 / np.arange(1, 51) ** 0.8  # 50 classes, the largest ~23x the smallest
    labels = rng.choice(50, n, p=weights / weights.sum())
    ws = Workspace(str(out))
    ws.claim()
    for part, lo in enumerate(range(0, n, PART_ROWS)):
        rows = np.arange(lo, min(n, lo + PART_ROWS))
        paths = [f"class_{labels[i]:02d}/b{i // 1000:05d}/{i:08d}.jpg" for i in rows]
        digests = [f"{i:032x}" for i in rows]
        columns = {"path": paths, "label": [p.partition("/")[0] for p in paths], "split": [None] * len(rows),
                   "bytes_hash": digests, "pixel_hash": digests, "phash": phash[rows], "dhash": dhash[rows],
                   "phash_d8": pa.FixedSizeListArray.from_arrays(np.repeat(phash[rows], 8), 8),
                   "sample_id": [sample_id(p, d) for p, d in zip(paths, digests)]}
        table = seed.take(pa.array(rows % len(seed)))
        for name, values in columns.items():
            field = MANIFEST.field(name)
            table = table.set_column(MANIFEST.get_field_index(name), field, pa.array(values, field.type))
        ws.write_table(f"manifest/part-{part:05d}.parquet", table, MANIFEST)
    np.savez(out / "planted.npz", a=planted_a, b=planted_b)
    (out / "runs").mkdir(exist_ok=True)  # the stages need a scan record: the seed scan's
    shutil.copy(real / "runs" / "scan.json", out / "runs" / "scan.json")
    (out / ".complete").touch()
    return out


def dedup_recall(out: Path) -> float:
    """The share of the planted pHash pairs (OUT/planted.npz) that dedup does not keep both of (one
    member dropped as a duplicate: same cluster, or the cover put one in a cluster whose keeper is
    farther than the threshold from the other, which stays alone)."""
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    planted = np.load(out / "planted.npz")
    dups = pq.read_table(out / "duplicates", columns=["path", "keep"])
    row = pc.cast(pc.utf8_slice_codeunits(pc.utf8_slice_codeunits(dups["path"], -12), 0, 8), "int64").to_numpy()
    kept = np.ones(int(max(planted["b"].max(), row.max(initial=0))) + 1, bool)
    kept[row] = dups["keep"].to_numpy(zero_copy_only=False)
    return float(np.mean(~(kept[planted["a"]] & kept[planted["b"]])))


@contextlib.contextmanager
def dask_cluster(workers: int, memory_limit: str) -> Iterator[tuple[str, list[psutil.Process]]]:
    """The README's cluster recipe on loopback: `dask scheduler` and `workers` x `dask worker`
    processes (one thread each, `memory_limit` each); yields the address and the processes."""
    from distributed import Client

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    dask = str(Path(sys.executable).parent / "dask")
    log = tempfile.TemporaryFile("w+")
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                              stdout=log, stderr=subprocess.STDOUT)]
    try:
        time.sleep(3)
        procs += [subprocess.Popen([dask, "worker", address, "--nthreads", "1", "--memory-limit", memory_limit,
                                    "--no-dashboard"], stdout=log, stderr=subprocess.STDOUT)
                  for _ in range(workers)]
        with Client(address, timeout=60) as client:
            client.wait_for_workers(workers, timeout=120)
        yield address, [psutil.Process(p.pid) for p in procs]
    finally:
        for p in reversed(procs):
            p.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(30)


def measure_stages(n: int, work: Path, timeout: float, stages: Sequence[str] = STAGES, scheduler: str = "",
                   cluster: Sequence[psutil.Process] = ()) -> list[dict]:
    """Each of `stages` on the synthetic n-row OUT: on 2 local Dask workers, or on the cluster at
    `scheduler` (whose processes, `cluster`, are sampled with the command's)."""
    out = synthetic_manifest(n, work)
    rows = []
    for stage in stages:
        runs_on_dask = "--workers" in subprocess.run([str(CURATE), stage, "--help"], capture_output=True,
                                                     text=True).stdout
        args = ([str(out)] + (["--scheduler", scheduler] if scheduler else ["--workers", "2"]) * runs_on_dask
                + STAGE_ARGS.get(stage, []))
        try:
            result = run_sampled([str(CURATE), stage, *args], timeout=timeout, also=cluster)
        except TimeoutError as exc:
            result = {"seconds": timeout, "cpu": 0, "driver": 0, "other": 0, "tree": 0, "said": str(exc),
                      "timed_out": True}
        rows.append({"mode": f"{stage} --scheduler" if scheduler else stage, "files": n, **result})
        if stage == "dedup" and not result.get("timed_out"):
            rows[-1]["recall"] = dedup_recall(out)
        print(table(rows[-1:]), "\n", rows[-1]["said"], flush=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| job | rows | wall s | CPU s | driver peak RSS MiB | largest other process MiB | whole run MiB "
             "| recall, planted pairs |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        job = {"scan": "`curate scan` (list, plan, decode)", "rescan": "`curate scan` again, nothing changed",
               "plan": "listing and plan only"}.get(r["mode"], f"`curate {r['mode']}`")
        recall = f"{r['recall']:.4f}" if "recall" in r else "-"
        lines.append(f"| {job} | {r['files']:,} | {r['seconds']:.0f} | {r.get('cpu', 0):.0f} | "
                     f"{r['driver'] / 2**20:.0f} | {r['other'] / 2**20:.0f} | {r['tree'] / 2**20:.0f} | {recall} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["scan", "plan", "stages", "cluster"])
    parser.add_argument("sizes", type=int, nargs="+")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "curate-scale")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds one stage may run (stages, cluster)")
    parser.add_argument("--stage", action="append", choices=STAGES, help="the stage(s) to run (default: all; cluster: validate)")
    parser.add_argument("--cluster-workers", type=int, default=4, help="cluster: `dask worker` processes")
    parser.add_argument("--memory-limit", default="2GiB", help="cluster: each worker's memory limit")
    args = parser.parse_args()
    rows = []
    for n in args.sizes:
        if args.mode == "stages":
            rows.extend(measure_stages(n, args.work, args.timeout, args.stage or STAGES))
            continue
        if args.mode == "cluster":
            synthetic_manifest(n, args.work)  # before the cluster starts: it is not part of the run
            with dask_cluster(args.cluster_workers, args.memory_limit) as (address, procs):
                rows.extend(measure_stages(n, args.work, args.timeout, args.stage or ["validate"], address, procs))
            continue
        done = measure(args.mode, n, args.work)
        rows.extend(done)
        print(table(done), "\n", done[-1]["said"], flush=True)
    workers = (f"a `dask scheduler` and {args.cluster_workers} `dask worker` processes (1 thread, "
               f"{args.memory_limit} each) on loopback" if args.mode == "cluster" else "2 Dask workers")
    body = (f"{HEADING}\n\n`.venv/bin/python benchmarks/scale.py {' '.join(sys.argv[1:])}` on "
            f"{os.cpu_count()} CPUs ({cpu_model()}, {ram_gib():.0f} GiB), {workers}, "
            f"{time.strftime('%Y-%m-%d')}; machine shared with other jobs (times are not comparable, memory is).\n\n"
            f"{table(rows)}\n")
    print(body)
    if not args.no_write:
        # the section's hand-written subsections (later runs, their notes) stay below the new table
        write_section(f"{HEADING} ({args.mode})", body.replace(HEADING, f"{HEADING} ({args.mode})", 1),
                      keep_notes=True, notes="### ")


if __name__ == "__main__":
    main()
