"""Shard benchmark: write throughput of `curate shard` vs a plain copy of the same files, and read
throughput of curate's PyTorch datasets vs a one-file-per-item folder loader.

    .venv/bin/python benchmarks/shards.py              # ~10 minutes on 2 heavily shared cores
    .venv/bin/python benchmarks/shards.py --repeats 1 --no-cold   # quick look

Data. The ~2000 JPEG photos (about 500x375, quality 90) of benchmarks/data/photos-small-2000/
(made by benchmarks/scan.py) are copied - real copies, not hard links, so that evicting them
from the page cache touches no other benchmark's files - into
benchmarks/data/shardbench-src/class{0..3}/ (image i goes to class i mod 4). Without that set,
~2000 photos are generated from sample_data/'s JPEGs (seeded random crops, flips, resize to
~500x375, quality 90). The workspace is prepared once, untimed, with
`curate run SRC -o benchmarks/data/shardbench-base --workers 2` and stages scan, validate,
dedup, rebalance ([dedup] threshold = 0: the generated photos are crops of a few originals, and
the default threshold would drop a quarter of them as near-duplicates; exact pHash matches are
still dropped). The kept plan rows (one copy each) are "the files": every contender below moves
exactly those, except `cp -r`, which copies the whole source folder (its own bytes are counted).

Write (each repeat interleaves the contenders, rotating their order; median of `--repeats`):
  * `curate shard OUT --workers 2` as a subprocess, wall clock from spawn to exit, on a fresh
    copy of the prepared workspace (no shards, so every shard is written). With the default
    256MB shard size the ~84 MB become one shard, which the engine writes in-process;
  * the same with `--min-shards 2`: two shards, so a local Dask cluster of 2 workers is started;
  * a `shutil.copyfile` loop over the kept files into a fresh folder (in this process);
  * `cp -r SRC DST` (a subprocess).
MB/s = bytes of image data moved (for curate: the kept files' sizes, not the Parquet bytes) /
seconds, with MB = 2**20 bytes. "warm": the source files are in the page cache and the time
ends when the contender returns (its writes may still be in the cache). "cold": before each
contender the source files are evicted from the page cache (posix_fadvise DONTNEED on each file:
no root-wide drop_caches, which would disturb other work on a shared machine) and the time
includes a trailing `sync`, so writes reach the disk; to keep the run short, "cold" leaves out
the 2-shard Dask contender. "CPU s" is user + system time of this process and of every
descendant it waited for (the subprocess, its Dask workers): a measure of the work done that a
busy, shared machine disturbs less than the wall clock.

The stage's own time (OUT/runs/shard.json `elapsed_s`) is reported next to the wall clock, and
one in-process breakdown of a shard's work follows (read files, build the table, Parquet write
with zstd and without compression, sha256 of the written file, start and stop of a 2-worker
LocalCluster, and `import curate.pipeline` in a fresh interpreter).

Read (one full epoch per timing, decoded images/s, median of `--repeats`, interleaved):
every contender decodes each image fully to an RGB uint8 CHW tensor with curate.data.decode's
steps (PIL open, EXIF transpose, convert RGB, numpy, permute; no resize) and goes through
`torch.utils.data.DataLoader(..., batch_size=None, num_workers=2)`; the time runs from creating
the iterator (worker start-up included) to the last item:
  * `ShardIterableDataset(OUT, "train")` over the 2-shard workspace, and over the 1-shard one
    (where one of the two loader workers gets no shard);
  * `ShardDataset(OUT, "train")` (map-style, via index.parquet), shuffle=True, 2-shard workspace;
  * a folder dataset: a list of the kept files, `__getitem__` opens one file with PIL and
    decodes it as above (what torchvision's ImageFolder does), shuffle=True;
  * at training resolution (TRAIN_SIDE = 256 px on the longest side), the pair that a training
    run at that size compares: `ShardIterableDataset` over 2 shards written with
    `curate shard --normalize --max-side 256` (decode only: the shard holds 256 px JPEGs), and
    the folder dataset decoding the original files and then resizing (bilinear, as
    torchvision's `Resize` does), shuffle=True. Its "vs folder loader" is against that resizing
    folder loader; the other rows' is against the plain one.
Then, once, in this process without loader workers (warm): CPU ms/image of a bare decode of the
bytes already in memory, of the 2-shard ShardIterableDataset and of the folder dataset with
num_workers=0 (the loaders' own cost, without the workers' inter-process transfer), and the
cost of a ShardDataset item whose row group is not in its 8-entry cache (cache cleared before
each of 60 random items) against one whose row group is.
"cold" evicts the files the contender reads (shards or JPEGs) before each epoch, and runs only
the 2-shard ShardIterableDataset and the folder dataset. "CPU ms/image" counts this process and
the loader's workers (joined at the end of the epoch).

Results are printed and written to benchmarks/RESULTS-shards.md (`--no-write` to skip).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

from hostinfo import cpu_model, ram_gib

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = HERE / "data"
PHOTOS = DATA / "photos-small-2000"
SRC = DATA / "shardbench-src"
BASE = DATA / "shardbench-base"
WORK = DATA / "shardbench-work"
CURATE = ROOT / ".venv" / "bin" / "curate"
PYTHON = ROOT / ".venv" / "bin" / "python"
FRAGMENT = HERE / "RESULTS-shards.md"
CLASSES = 4
SEED = 20240917
TRAIN_SIDE = 256  # training resolution of the "normalised shards vs folder loader + resize" pair
MB = 2**20
STAMP = ".params.json"

CONFIG = """[run]
stages = ["scan", "validate", "dedup", "rebalance"]

[dedup]
threshold = 0
"""


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------

def prepare_source() -> str:
    """SRC/<class>/*.jpg: copies of photos-small-2000, or generated photos. Returns a description."""
    photos = sorted(PHOTOS.glob("*.jpg")) if PHOTOS.is_dir() else []
    origin = f"copies of {PHOTOS.relative_to(ROOT)}" if len(photos) >= 100 else "generated from sample_data/"
    params = {"origin": origin, "count": len(photos) or 2000, "classes": CLASSES, "seed": SEED, "version": 1}
    stamp = SRC / STAMP
    if stamp.exists() and json.loads(stamp.read_text()) == params:
        return origin
    shutil.rmtree(SRC, ignore_errors=True)
    for c in range(CLASSES):
        (SRC / f"class{c}").mkdir(parents=True)
    if photos:
        for i, p in enumerate(photos):
            shutil.copyfile(p, SRC / f"class{i % CLASSES}" / p.name)
    else:
        generate(params["count"])
    stamp.write_text(json.dumps(params))
    shutil.rmtree(BASE, ignore_errors=True)
    return origin


def generate(count: int) -> None:
    from PIL import Image, ImageOps

    sources = sorted((ROOT / "sample_data").rglob("*.jpg"))
    rng = random.Random(SEED)
    opened = [ImageOps.exif_transpose(Image.open(p)).convert("RGB") for p in sources]
    for i in range(count):
        im = opened[rng.randrange(len(opened))]
        w, h = im.size
        scale = rng.uniform(0.5, 1.0)
        cw, ch = max(16, int(w * scale)), max(16, int(h * scale))
        x, y = rng.randrange(w - cw + 1), rng.randrange(h - ch + 1)
        out = im.crop((x, y, x + cw, y + ch)).resize((500, 375), Image.LANCZOS)
        if rng.random() < 0.5:
            out = ImageOps.mirror(out)
        out.save(SRC / f"class{i % CLASSES}" / f"gen_{i:05d}.jpg", quality=90)


def prepare_base(workers: int) -> float:
    """The scanned, validated, deduplicated, rebalanced workspace (untimed for the benchmark)."""
    if (BASE / "runs" / "rebalance.json").exists():
        return 0.0
    shutil.rmtree(BASE, ignore_errors=True)
    cfg = DATA / "shardbench.toml"
    cfg.write_text(CONFIG)
    t = time.perf_counter()
    subprocess.run([str(CURATE), "run", str(SRC), "-o", str(BASE), "--config", str(cfg), "--workers", str(workers)],
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def kept_files() -> list[tuple[str, int]]:
    """(path relative to SRC, size) of every kept plan row, in path order."""
    import pyarrow.dataset as pads

    plan = pads.dataset(str(BASE / "plan")).to_table(columns=["path", "keep", "copies"]).to_pylist()
    paths = sorted(r["path"] for r in plan if r["keep"] for _ in range(r["copies"]))
    return [(p, (SRC / p).stat().st_size) for p in paths]


# --------------------------------------------------------------------------------------------
# Page cache
# --------------------------------------------------------------------------------------------

def evict(paths) -> None:
    """Drop these files' pages from the page cache (clean pages only: sync first)."""
    os.sync()
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def warm(paths) -> None:
    for p in paths:
        with open(p, "rb") as f:
            while f.read(1 << 20):
                pass


def cpu_seconds() -> float:
    """User + system CPU of this process and of its reaped descendants (subprocesses, Dask workers,
    DataLoader and Pool workers are all waited for before the clock stops)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def tree_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


# --------------------------------------------------------------------------------------------
# Write
# --------------------------------------------------------------------------------------------

def fresh_workspace(name: str) -> Path:
    out = WORK / name
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(BASE, out)
    for leftover in ("shards", "index.parquet", "dataset.json", "runs/shard.json"):
        p = out / leftover
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    return out


def write_contenders(files: list[tuple[str, int]], workers: int):
    kept_bytes = sum(s for _, s in files)
    src_bytes = sum(p.stat().st_size for p in tree_files(SRC) if p.name != STAMP)

    def curate_shard(min_shards: int):
        name = f"out-{min_shards}shard"

        def prepare():
            return fresh_workspace(name)

        def run(out):
            subprocess.run([str(CURATE), "shard", str(out), "--workers", str(workers), "--min-shards", str(min_shards)],
                           check=True, stdout=subprocess.DEVNULL)

        def after(out):
            summary = json.loads((out / "runs" / "shard.json").read_text())["summary"]
            return {"stage_s": summary["elapsed_s"], "shards": sum(summary["shards"].values()),
                    "parquet_bytes": summary["bytes"]}
        return prepare, run, after

    def copyfile_prepare():
        dst = WORK / "copyfile"
        shutil.rmtree(dst, ignore_errors=True)
        dst.mkdir(parents=True)
        return dst

    def copyfile_run(dst):
        made = set()
        for rel, _ in files:
            parent = rel.rpartition("/")[0]
            if parent not in made:
                (dst / parent).mkdir(parents=True, exist_ok=True)
                made.add(parent)
            shutil.copyfile(SRC / rel, dst / rel)

    def cp_prepare():
        dst = WORK / "cp-r"
        shutil.rmtree(dst, ignore_errors=True)
        return dst

    def cp_run(dst):
        subprocess.run(["cp", "-r", str(SRC), str(dst)], check=True)

    none = lambda _: {}  # noqa: E731
    return {
        f"`curate shard --workers {workers}` (1 shard, in-process)": (*curate_shard(1), kept_bytes, True),
        f"`curate shard --workers {workers} --min-shards 2` (2 shards, Dask)": (*curate_shard(2), kept_bytes, False),
        "`shutil.copyfile` loop (kept files)": (copyfile_prepare, copyfile_run, none, kept_bytes, True),
        "`cp -r SRC DST` (whole folder)": (cp_prepare, cp_run, none, src_bytes, True),
    }


def interleaved(contenders: dict[str, tuple], repeats: int, modes: list[str]) -> Iterator[tuple[int, str, str]]:
    """(repeat, mode, contender) in run order: each repeat rotates the contenders' order; "cold"
    runs only the contenders whose last field (in_cold) is true."""
    names = list(contenders)
    for r in range(repeats):
        for mode in modes:
            for name in names[r % len(names):] + names[: r % len(names)]:
                if mode != "cold" or contenders[name][-1]:
                    yield r, mode, name


def bench_write(files, workers: int, repeats: int, modes: list[str]) -> dict:
    contenders = write_contenders(files, workers)
    src_paths = [SRC / rel for rel, _ in files] + [p for p in tree_files(SRC) if p.name != STAMP]
    src_paths = list(dict.fromkeys(src_paths))
    results: dict = {mode: {name: [] for name in contenders} for mode in modes}
    for r, mode, name in interleaved(contenders, repeats, modes):
        prepare, run, after, nbytes, _in_cold = contenders[name]
        target = prepare()
        os.sync()
        if mode == "cold":
            evict(src_paths)
        else:
            warm(src_paths)
        c, t = cpu_seconds(), time.perf_counter()
        run(target)
        if mode == "cold":
            os.sync()
        seconds, cpu = time.perf_counter() - t, cpu_seconds() - c
        extra = after(target)
        results[mode][name].append({"s": seconds, "cpu": cpu, "bytes": nbytes, **extra})
        print(f"  write {mode} r{r} {name}: {seconds:.2f} s {nbytes / MB / seconds:.1f} MB/s "
              f"cpu {cpu:.2f} s {extra}", flush=True)
    return {mode: {k: v for k, v in rows.items() if v} for mode, rows in results.items()}


_CLUSTER_SNIPPET = """
import logging, time
from distributed import LocalCluster, Client
if __name__ == "__main__":
    t = time.perf_counter()
    with LocalCluster(n_workers={workers}, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, silence_logs=logging.ERROR) as c, Client(c) as cl:
        cl.submit(sum, [1]).result()
        up = time.perf_counter() - t
        t = time.perf_counter()
    print(up, time.perf_counter() - t)
"""


def write_breakdown(files, workers: int) -> list[tuple[str, float]]:
    """Where a 1-shard write spends its time, step by step, in this process (warm cache)."""
    import hashlib

    import fsspec
    import pyarrow as pa
    import pyarrow.parquet as pq

    warm([SRC / rel for rel, _ in files])
    steps = []
    t = time.perf_counter()
    fs, root = fsspec.core.url_to_fs(str(SRC))
    datas = []
    for rel, _ in files:
        with fs.open(f"{root}/{rel}", "rb") as f:
            datas.append(f.read())
    steps.append(("read the files (fsspec open + read, as the writer does)", time.perf_counter() - t))
    t = time.perf_counter()
    table = pa.table({"image": pa.array([{"bytes": d, "path": rel} for d, (rel, _) in zip(datas, files)]),
                      "label": pa.array([i % CLASSES for i in range(len(files))], pa.int32())})
    steps.append(("build the Arrow table", time.perf_counter() - t))
    target = WORK / "breakdown.parquet"
    rg = max(16, int(32 * MB / (sum(len(d) for d in datas) / len(datas))))
    for compression in ("zstd", "none"):
        t = time.perf_counter()
        pq.write_table(table, str(target), row_group_size=rg, compression=compression)
        steps.append((f"Parquet write, compression={compression} ({target.stat().st_size / MB:.1f} MB)",
                      time.perf_counter() - t))
    t = time.perf_counter()
    with open(target, "rb") as f:
        hashlib.file_digest(f, "sha256").hexdigest()
    steps.append(("sha256 of the shard's bytes (the writer computes it while writing, for the stats sidecar)", time.perf_counter() - t))
    target.unlink()
    snippet = WORK / "cluster_probe.py"
    snippet.write_text(_CLUSTER_SNIPPET.replace("{workers}", str(workers)))
    up, down = map(float, subprocess.run([str(PYTHON), str(snippet)], check=True, capture_output=True,
                                          text=True).stdout.split())
    steps.append((f"LocalCluster({workers} workers) start + first task", up))
    steps.append(("LocalCluster close", down))
    t = time.perf_counter()
    subprocess.run([str(PYTHON), "-c", "import curate.pipeline"], check=True)
    steps.append(("fresh interpreter + `import curate.pipeline`", time.perf_counter() - t))
    return steps


# --------------------------------------------------------------------------------------------
# Read
# --------------------------------------------------------------------------------------------

def decode_file(path: str, max_side: int = 0):
    """curate.data.decode's steps, from a file: PIL open, EXIF transpose, RGB, uint8 CHW tensor;
    with `max_side`, then a bilinear resize so the longest side is max_side (torchvision's
    `Resize` on a PIL image)."""
    import numpy as np
    import torch
    from PIL import Image, ImageOps

    with open(path, "rb") as f, Image.open(f) as im:
        rgb = ImageOps.exif_transpose(im).convert("RGB")
    if max_side and max(rgb.size) > max_side:
        scale = max_side / max(rgb.size)
        rgb = rgb.resize((max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))), Image.BILINEAR)
    return torch.from_numpy(np.asarray(rgb).copy()).permute(2, 0, 1)


class FolderDataset:
    """One file per item, opened and decoded with PIL in __getitem__ (ImageFolder's way)."""

    def __init__(self, files: list[tuple[str, int]], max_side: int = 0) -> None:
        classes = sorted({rel.split("/")[0] for rel, _ in files})
        self.items = [(str(SRC / rel), classes.index(rel.split("/")[0])) for rel, _ in files]
        self.max_side = max_side

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        path, label = self.items[i]
        return decode_file(path, self.max_side), label


def epoch(loader) -> tuple[int, float, float]:
    """Images, seconds and CPU seconds (this process and the loader's workers) of one epoch."""
    c, t = cpu_seconds(), time.perf_counter()
    n = 0
    it = iter(loader)
    for image, _ in it:
        n += 1 if image.dim() == 3 else image.shape[0]
    seconds = time.perf_counter() - t
    del it  # exhausted: its workers have been joined
    return n, seconds, cpu_seconds() - c


def bench_read(files, workers: int, repeats: int, modes: list[str]) -> dict:
    import torch
    from torch.utils.data import DataLoader

    from curate.data import ShardDataset, ShardIterableDataset

    out1, out2, outn = WORK / "out-1shard", WORK / "out-2shard", WORK / f"out-2shard-max{TRAIN_SIDE}"
    for out, n, extra in ((out1, 1, []), (out2, 2, []), (outn, 2, ["--normalize", "--max-side", str(TRAIN_SIDE)])):
        if not (out / "index.parquet").exists():
            fresh_workspace(out.name)
            subprocess.run([str(CURATE), "shard", str(out), "--workers", str(workers), "--min-shards", str(n), *extra],
                           check=True, stdout=subprocess.DEVNULL)
    jpegs = [SRC / rel for rel, _ in files]
    shards1 = sorted((out1 / "shards").rglob("shard-*.parquet"))
    shards2 = sorted((out2 / "shards").rglob("shard-*.parquet"))
    shardsn = sorted((outn / "shards").rglob("shard-*.parquet"))
    torch.manual_seed(SEED)

    def iterable(out):
        def make(r):
            ds = ShardIterableDataset(str(out), "train")
            ds.set_epoch(r)
            return DataLoader(ds, batch_size=None, num_workers=workers)
        return make

    contenders = {
        f"`ShardIterableDataset`, 2 shards ({workers} workers)": (iterable(out2), shards2, True),
        f"`ShardIterableDataset`, 1 shard ({workers} workers)": (iterable(out1), shards1, False),
        f"`ShardDataset` (map-style), 2 shards, shuffle ({workers} workers)": (
            lambda r: DataLoader(ShardDataset(str(out2), "train"), batch_size=None, shuffle=True,
                                 num_workers=workers), shards2, False),
        f"folder dataset (PIL per file), shuffle ({workers} workers)": (
            lambda r: DataLoader(FolderDataset(files), batch_size=None, shuffle=True, num_workers=workers), jpegs,
            True),
        f"`ShardIterableDataset`, 2 shards normalised to {TRAIN_SIDE} px ({workers} workers)": (
            iterable(outn), shardsn, True),
        f"folder dataset (PIL per file) + resize to {TRAIN_SIDE} px, shuffle ({workers} workers)": (
            lambda r: DataLoader(FolderDataset(files, TRAIN_SIDE), batch_size=None, shuffle=True,
                                 num_workers=workers), jpegs, True),
    }
    results: dict = {mode: {name: [] for name in contenders} for mode in modes}
    for r, mode, name in interleaved(contenders, repeats, modes):
        make, paths, _in_cold = contenders[name]
        if mode == "cold":
            evict(paths)
        else:
            warm(paths)
        n, seconds, cpu = epoch(make(r))
        assert n == len(files), (name, n, len(files))
        results[mode][name].append({"n": n, "s": seconds, "cpu": cpu})
        print(f"  read {mode} r{r} {name}: {n / seconds:.0f} img/s, cpu {cpu / n * 1000:.2f} ms/img",
              flush=True)
    return {mode: {k: v for k, v in rows.items() if v} for mode, rows in results.items()}


def read_breakdown(files) -> list[tuple[str, str]]:
    """Per-image CPU of decode alone and of each loader without workers; ShardDataset cache misses."""
    import random as rnd

    from torch.utils.data import DataLoader

    from curate.data import ShardDataset, ShardIterableDataset, decode

    out2 = str(WORK / "out-2shard")
    datas = [(SRC / rel).read_bytes() for rel, _ in files]
    rows = []

    def per_image(label, items):
        c, t = cpu_seconds(), time.perf_counter()
        n = sum(1 for _ in items)
        rows.append((label, f"{(cpu_seconds() - c) / n * 1000:.2f} ms CPU/image ({n / (time.perf_counter() - t):.0f} "
                            "images/s, one process)"))

    per_image("decode only (`curate.data.decode` on bytes in memory)", (decode(d) for d in datas))
    per_image("`ShardIterableDataset`, 2 shards, num_workers=0",
              DataLoader(ShardIterableDataset(out2, "train"), batch_size=None, num_workers=0))
    per_image("folder dataset, shuffle, num_workers=0",
              DataLoader(FolderDataset(files), batch_size=None, shuffle=True, num_workers=0))
    ds = ShardDataset(out2, "train")
    idx = rnd.Random(SEED).sample(range(len(ds)), 60)
    t = time.perf_counter()
    for i in idx:
        ds._cache.clear()
        ds[i]
    miss = (time.perf_counter() - t) / len(idx)
    t = time.perf_counter()
    for i in idx:
        ds[i]
    hit = (time.perf_counter() - t) / len(idx)
    rows.append(("`ShardDataset` item, row group not cached / cached",
                 f"{miss * 1000:.1f} ms / {hit * 1000:.1f} ms wall per item"))
    return rows


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------

def machine() -> str:
    cpu, mem = cpu_model(), ram_gib()
    return (f"{os.cpu_count()} logical CPUs ({cpu}), {mem:.0f} GiB RAM; Linux {platform.release()}; "
            f"Python {platform.python_version()}")


def versions() -> str:
    from importlib import metadata

    names = ("curate", "pyarrow", "pillow", "torch", "dask", "distributed")
    found = []
    for n in names:
        try:
            found.append(f"{n} {metadata.version(n)}")
        except metadata.PackageNotFoundError:
            pass
    return ", ".join(found)


def write_table(results: dict, modes: list[str]) -> list[str]:
    lines = []
    copy_name = "`shutil.copyfile` loop (kept files)"
    for mode in modes:
        rows = results[mode]
        ref = statistics.median(x["bytes"] / x["s"] for x in rows[copy_name])
        lines += ["", f"**Write, {mode}** ({'source in page cache, no sync' if mode == 'warm' else 'source evicted, trailing sync timed'}):",
                  "", "| contender | MB | seconds (median) | MB/s | vs copyfile | stage's own s (MB/s) | CPU s | runs (s) |",
                  "|---|---:|---:|---:|---:|---:|---:|---|"]
        for name, runs in rows.items():
            s = statistics.median(x["s"] for x in runs)
            rate = statistics.median(x["bytes"] / x["s"] for x in runs)
            stage = ""
            if "stage_s" in runs[0]:
                st = statistics.median(x["stage_s"] for x in runs)
                stage = f"{st:.2f} ({runs[0]['bytes'] / MB / st:.1f} MB/s)"
            each = ", ".join(f"{x['s']:.2f}" for x in runs)
            lines.append(f"| {name} | {runs[0]['bytes'] / MB:.1f} | {s:.2f} | {rate / MB:.1f} | "
                         f"{rate / ref:.0%} | {stage} | {statistics.median(x['cpu'] for x in runs):.2f} | {each} |")
    return lines


def read_table(results: dict, modes: list[str]) -> list[str]:
    lines = []
    names = list(next(iter(results.values())))
    plain = next(k for k in names if k.startswith("folder") and "resize" not in k)
    resized = next(k for k in names if k.startswith("folder") and "resize" in k)
    for mode in modes:
        rows = results[mode]
        ref = {k: statistics.median(x["n"] / x["s"] for x in rows[k]) for k in (plain, resized)}
        lines += ["", f"**Read, {mode}** ({'files in page cache' if mode == 'warm' else 'files read evicted before each epoch'}):",
                  "", "| contender | images | seconds (median) | images/s | vs folder loader (same output size) | CPU ms/image | "
                      "runs (images/s) |",
                  "|---|---:|---:|---:|---:|---:|---|"]
        for name, runs in rows.items():
            rate = statistics.median(x["n"] / x["s"] for x in runs)
            each = ", ".join(f"{x['n'] / x['s']:.0f}" for x in runs)
            base = resized if f"{TRAIN_SIDE} px" in name else plain
            lines.append(f"| {name} | {runs[0]['n']} | {statistics.median(x['s'] for x in runs):.2f} | {rate:.0f} | "
                         f"{rate / ref[base]:.2f}x | {statistics.median(x['cpu'] / x['n'] for x in runs) * 1000:.2f} | "
                         f"{each} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-cold", action="store_true", help="skip the page-cache-evicted runs")
    ap.add_argument("--no-write", action="store_true", help=f"do not write {FRAGMENT.name}")
    args = ap.parse_args()
    modes = ["warm"] if args.no_cold else ["warm", "cold"]
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    WORK.mkdir(parents=True, exist_ok=True)
    origin = prepare_source()
    prep_s = prepare_base(args.workers)
    files = kept_files()
    n_src = sum(1 for p in tree_files(SRC) if p.name != STAMP)
    print(f"source: {n_src} files ({origin}); kept: {len(files)} files, {sum(s for _, s in files) / MB:.1f} MB; "
          f"prepare {prep_s:.1f} s", flush=True)
    print("write:", flush=True)
    wres = bench_write(files, args.workers, args.repeats, modes)
    print("breakdown:", flush=True)
    steps = write_breakdown(files, args.workers)
    for label, s in steps:
        print(f"  {label}: {s:.2f} s", flush=True)
    print("read:", flush=True)
    rres = bench_read(files, args.workers, args.repeats, modes)
    print("read breakdown:", flush=True)
    rsteps = read_breakdown(files)
    for label, v in rsteps:
        print(f"  {label}: {v}", flush=True)
    load_after = os.getloadavg()[0]
    total = time.perf_counter() - started

    argv = " ".join(sys.argv[1:])
    kept_mb = sum(s for _, s in files) / MB
    lines = ["<!-- shards -->", "## Shards: write and read throughput", "",
             f"Run {dt.date.today().isoformat()} in {total:.0f} s with:", "", "```",
             f".venv/bin/python benchmarks/shards.py{(' ' + argv) if argv else ''}", "```", "",
             f"Machine: {machine()}; {versions()}. Load average (1 min) {load_before:.2f} before, {load_after:.2f} "
             "after, on 2 cores (a shared machine: absolute times are noisy); the contenders were interleaved, so "
             "ratios are fairer than absolute numbers.", "",
             f"Data: {n_src} JPEG photos, ~500x375, quality 90 ({origin}) in 4 class folders; {len(files)} kept by "
             f"the plan ({kept_mb:.1f} MB). Median of {args.repeats}. See the docstring of benchmarks/shards.py for "
             "what each row times."]
    lines += write_table(wres, modes)
    lines += ["", "Where a 1-shard write's time goes (in-process, warm, one run):", "", "| step | seconds |", "|---|---:|"]
    lines += [f"| {label} | {s:.2f} |" for label, s in steps]
    lines += read_table(rres, modes)
    lines += ["", "Where a read's time goes (warm, one run):", "", "| what | cost |", "|---|---|"]
    lines += [f"| {label} | {v} |" for label, v in rsteps]
    lines += ["<!-- /shards -->", ""]
    text = "\n".join(lines)
    print("\n" + text)
    if not args.no_write:
        FRAGMENT.write_text(text)
        print(f"wrote {FRAGMENT}")


if __name__ == "__main__":
    main()
