"""Scan throughput and memory benchmark: `curate scan` vs imagededup's PHash vs a bare decode loop.

    bash benchmarks/setup_imagededup.sh          # once: benchmarks/.venv-imagededup
    .venv/bin/python benchmarks/scan.py          # throughput: two photo sets, one run
    .venv/bin/python benchmarks/scan.py --memory # peak RSS of `curate scan` on 10k and 100k files

Throughput. On the same files and the same number of cores (`--workers`, default 2), in one run,
each set timed `--repeats` times (interleaved, median reported):
  * `curate scan DIR -o OUT --workers N`, a subprocess, wall-clock from spawn to exit (interpreter
    start, imports, listing, Dask LocalCluster start-up, decode, hashes, statistics, Parquet write);
  * imagededup's `PHash().encode_images(image_dir=DIR, num_enc_workers=N)`: the call itself,
    timed in a subprocess of benchmarks/.venv-imagededup (its own Pool start-up included, its
    interpreter start and imports not; they are reported separately as "process wall");
  * a bare loop: `multiprocessing.Pool(N)` mapping over the files, each one only
    `Image.open(path); im.draft(None, (32, 32)); im.load()`, the least work that still reads
    every entropy-coded byte of a JPEG (Pool start-up included); and the same loop at full scale
    (no `draft`), the reference of issue 25's CPU target.
The photos are generated from the real photographs scikit-image ships (skimage.data), with a
fixed seed: random crops, flips and colour shifts, saved as JPEG quality 90 at about 500x375
("small") and upscaled with LANCZOS plus sensor-like noise to 4000x3000 ("12mp"). The page cache
is warmed before timing, so every contender reads from memory.

Memory. `--memory` generates 10k and 100k tiny JPEGs (64x48) and runs `curate scan --workers N`
on each, sampling every 0.2 s the total RSS (and PSS) of the curate process and all its
descendants; the peaks are reported.

Results are printed as Markdown and written to the `## Scan` section of benchmarks/RESULTS.md
(`--no-write` to skip). Run it with the project venv's Python: it needs pyarrow and psutil.
"""
from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from multiprocessing import Pool
from pathlib import Path

from commits import environment, export
from hostinfo import cpu_model, ram_gib

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = HERE / "data"
RESULTS = HERE / "RESULTS.md"
BENCH_VENV = HERE / ".venv-imagededup"
BENCH_PY = BENCH_VENV / "bin" / "python"
PROJECT_PY = ROOT / ".venv" / "bin" / "python"
CURATE = ROOT / ".venv" / "bin" / "curate"
STAMP = ".params.json"  # hidden: skipped by imagededup's listing and by curate's default ignore list

SETS = {  # name: (width, height, noise sigma)
    "small": (500, 375, 0.0),
    "12mp": (4000, 3000, 5.0),
}
MEM_SIZE = (64, 48)
SEED = 20240917


# --------------------------------------------------------------------------------------------
# Data generation (runs in the benchmark venv: needs scikit-image for its bundled photographs)
# --------------------------------------------------------------------------------------------

_SOURCES: list | None = None


def _sources():
    """The real photographs scikit-image ships, as RGB uint8 arrays (greyscale ones tinted)."""
    global _SOURCES
    if _SOURCES is None:
        import numpy as np
        import skimage.data as d

        colour = ["astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
                  "retina", "colorwheel"]
        grey = ["camera", "moon", "coins", "grass", "gravel", "brick", "clock", "cell"]
        out = []
        for name in colour + grey:
            try:
                a = getattr(d, name)()
            except Exception:  # noqa: BLE001  (a sample that would need a download: skip it)
                continue
            if a.ndim == 2:
                a = np.stack([a] * 3, axis=-1)
            out.append(np.ascontiguousarray(a[..., :3]).astype(np.uint8))
        try:
            left, right, _ = d.stereo_motorcycle()
            out += [left, right]
        except Exception:  # noqa: BLE001  (it would need a download: go without it)
            pass
        _SOURCES = out
    return _SOURCES


def _make_photo(args: tuple[str, int, int, int, float, str]) -> int:
    """One deterministic photo: crop, flip, colour shift, resize, noise; JPEG q90. Returns bytes written."""
    import numpy as np
    from PIL import Image

    set_name, index, width, height, noise, path = args
    rng = np.random.default_rng([SEED, sum(map(ord, set_name)), index])
    srcs = _sources()
    src = srcs[int(rng.integers(len(srcs)))]
    portrait = rng.random() < 0.2
    w_out, h_out = (height, width) if portrait else (width, height)
    aspect = w_out / h_out
    sh, sw = src.shape[:2]
    frac = rng.uniform(0.55, 1.0)
    cw = int(min(sw, sh * aspect) * frac)
    ch = max(8, int(cw / aspect))
    x0 = int(rng.integers(0, sw - cw + 1))
    y0 = int(rng.integers(0, sh - ch + 1))
    crop = src[y0:y0 + ch, x0:x0 + cw].astype(np.float32)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    gain = rng.uniform(0.8, 1.2, size=3).astype(np.float32)
    gamma = np.float32(rng.uniform(0.75, 1.3))
    crop = 255.0 * (np.clip(crop * gain / 255.0, 0, 1) ** gamma) + np.float32(rng.uniform(-12, 12))
    im = Image.fromarray(np.clip(crop, 0, 255).astype(np.uint8), "RGB")
    im = im.resize((w_out, h_out), Image.Resampling.LANCZOS)
    if noise:
        arr = np.asarray(im, dtype=np.int16)
        arr = arr + rng.normal(0.0, noise, size=arr.shape[:2] + (1,)).astype(np.int16)  # luma-like grain
        arr += rng.normal(0.0, noise / 2, size=arr.shape).astype(np.int16)
        im = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    Path(path).write_bytes(buf.getvalue())
    return buf.tell()


def _make_tiny(args: tuple[int, str]) -> int:
    import numpy as np
    from PIL import Image

    index, path = args
    rng = np.random.default_rng([SEED, 7, index])
    srcs = _sources()
    src = srcs[index % len(srcs)]
    sh, sw = src.shape[:2]
    cw, ch = int(rng.integers(64, min(sw, 256))), 0
    ch = min(sh, cw * 3 // 4)
    x0, y0 = int(rng.integers(0, sw - cw + 1)), int(rng.integers(0, sh - ch + 1))
    im = Image.fromarray(src[y0:y0 + ch, x0:x0 + cw]).resize(MEM_SIZE, Image.Resampling.BILINEAR)
    if rng.random() < 0.5:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    Path(path).write_bytes(buf.getvalue())
    return buf.tell()


def generate(kind: str, count: int, folder: Path, workers: int) -> None:
    """Fill `folder` with `count` images of `kind` ("small", "12mp" or "tiny"), in parallel."""
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "tiny":
        jobs = []
        for i in range(count):
            sub = folder / f"d{i // 1000:03d}"
            if i % 1000 == 0:
                sub.mkdir(exist_ok=True)
            jobs.append((i, str(sub / f"t{i:06d}.jpg")))
        fn = _make_tiny
    else:
        w, h, noise = SETS[kind]
        jobs = [(kind, i, w, h, noise, str(folder / f"{kind}_{i:05d}.jpg")) for i in range(count)]
        fn = _make_photo
    with Pool(workers) as pool:
        total = sum(pool.imap_unordered(fn, jobs, chunksize=16 if kind != "12mp" else 1))
    print(json.dumps({"files": count, "bytes": total}))


def ensure_data(kind: str, count: int, workers: int, python: Path = BENCH_PY) -> Path:
    """The data folder for (kind, count), generated once (a stamp records the parameters) by
    `python` (the imagededup environment's by default; any with scikit-image and Pillow will do)."""
    name = {"small": "photos-small", "12mp": "photos-12mp", "tiny": "mem"}[kind]
    folder = DATA / f"{name}-{count}"
    params = {"kind": kind, "count": count, "seed": SEED, "sets": SETS, "mem_size": MEM_SIZE, "version": 2}
    stamp = folder / STAMP
    if stamp.exists() and json.loads(stamp.read_text()) == json.loads(json.dumps(params)):
        return folder
    if folder.exists():
        shutil.rmtree(folder)
    print(f"generating {count} {kind} images in {folder} ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    subprocess.run([str(python), __file__, "_generate", kind, str(count), str(folder), str(workers)], check=True)
    print(f"  done in {time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)
    stamp.write_text(json.dumps(params))
    return folder


# --------------------------------------------------------------------------------------------
# Contenders
# --------------------------------------------------------------------------------------------

def _bare_decode(path: str, full: bool = False) -> int:
    from PIL import Image

    with Image.open(path) as im:
        if not full:
            im.draft(None, (32, 32))
        im.load()
        return im.size[0]


def bare_loop(folder: str, workers: int, full: bool = False) -> None:
    """Child process: time Pool(workers) decoding every .jpg at reduced scale (`full`: at full
    scale), nothing else."""
    files = sorted(str(p) for p in Path(folder).rglob("*.jpg"))
    t0 = time.perf_counter()
    with Pool(workers) as pool:
        chunk = max(1, min(32, len(files) // (workers * 16)))  # small chunks: big files balance across workers
        n = sum(1 for _ in pool.imap_unordered(partial(_bare_decode, full=full), files, chunksize=chunk))
    print(json.dumps({"seconds": time.perf_counter() - t0, "images": n}))


def imagededup_run(folder: str, workers: int, hashes_json: str) -> None:
    """Child process (benchmark venv): time PHash().encode_images on the folder."""
    t_import = time.perf_counter()
    from imagededup.methods import PHash

    import_s = time.perf_counter() - t_import
    hasher = PHash(verbose=False)
    t0 = time.perf_counter()
    hashes = hasher.encode_images(image_dir=folder, num_enc_workers=workers)
    seconds = time.perf_counter() - t0
    Path(hashes_json).write_text(json.dumps(hashes))
    print(json.dumps({"seconds": seconds, "images": len(hashes), "import_s": import_s}))


def _last_json(stdout: str) -> dict:
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"no result in output:\n{stdout[-2000:]}")


class ForeignCpu:
    """CPU seconds used by processes outside this benchmark's own process tree while it runs.

    Sampled per process from /proc/PID/stat (psutil) every `interval` s in a thread: this VM's
    system-wide /proc/stat counters are not reliable. A process that starts and ends between two
    samples is missed, so this is a lower bound on the competition for the CPUs.
    """

    def __init__(self, interval: float = 0.5):
        import threading

        self.interval, self.me = interval, os.getpid()
        self.first: dict[tuple[int, float], float] = {}
        self.last: dict[tuple[int, float], float] = {}
        self.own: set[tuple[int, float]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.t0 = 0.0

    def _sample(self, baseline: bool) -> None:
        import psutil

        parents: dict[int, int] = {}
        seen = []
        for p in psutil.process_iter(["ppid", "create_time", "cpu_times"]):
            info = p.info
            if info["cpu_times"] is None or info["create_time"] is None:
                continue
            parents[p.pid] = info["ppid"]
            t = info["cpu_times"]
            seen.append(((p.pid, info["create_time"]), t.user + t.system))
        for key, cpu in seen:
            if key not in self.first:
                self.first[key] = cpu if baseline else 0.0
                pid, hops = key[0], 0
                while pid and pid != self.me and hops < 64:
                    pid, hops = parents.get(pid, 0), hops + 1
                if pid == self.me:
                    self.own.add(key)
            self.last[key] = cpu

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample(baseline=False)

    def __enter__(self) -> "ForeignCpu":
        self._sample(baseline=True)
        self.t0 = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample(baseline=False)
        self.wall = time.perf_counter() - self.t0

    @property
    def share(self) -> float:
        """Foreign CPU time as a fraction of the machine's CPU time over the window."""
        used = sum(self.last[k] - self.first[k] for k in self.last if k not in self.own)
        return max(0.0, used) / (max(self.wall, 1e-9) * (os.cpu_count() or 1))


def wait_idle(max_wait: float, threshold: float = 0.15) -> float:
    """Wait (up to `max_wait` s) until other processes use < `threshold` of the machine's CPUs
    over a 3 s window. Returns the last measured foreign load (fraction of all cores)."""
    deadline, said = time.monotonic() + max_wait, False
    while True:
        with ForeignCpu(interval=1.0) as watch:
            time.sleep(3)
        if watch.share < threshold or time.monotonic() > deadline:
            return watch.share
        if not said:
            print(f"   waiting for the machine to go idle (other processes use {watch.share:.0%} of the CPUs)",
                  file=sys.stderr, flush=True)
            said = True


def _children_cpu_s() -> float:
    """User+system CPU seconds of all descendants waited for so far (getrusage RUSAGE_CHILDREN)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _run(cmd: list[str], **kw) -> tuple[float, subprocess.CompletedProcess, float, float]:
    """Run `cmd`; returns wall seconds, the process, the CPU share other processes took
    meanwhile, and the CPU seconds the command's whole process tree used."""
    with ForeignCpu() as watch:
        c0 = _children_cpu_s()
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
        wall = time.perf_counter() - t0
        cpu = _children_cpu_s() - c0
    foreign = watch.share
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return wall, proc, foreign, cpu


def _curate_env(tree: Path | None) -> dict[str, str]:
    """The environment of a timed `curate scan`: this checkout's, or the package in `tree`'s."""
    return {**(environment(tree) if tree else os.environ), "COLUMNS": "200"}


def time_curate(folder: Path, workers: int, tmp: Path, config: Path | None = None, tree: Path | None = None) -> dict:
    """`curate scan` of `folder` into a fresh OUT under `tmp`, with `config`; `tree`: run the
    `curate` package in that folder instead of this checkout's (`commits.export`)."""
    out = tmp / "curate-out"
    if out.exists():
        shutil.rmtree(out)
    tmp.mkdir(exist_ok=True)
    cmd = [str(CURATE), "scan", str(folder), "-o", str(out), "--workers", str(workers)]
    if config:
        cmd += ["--config", str(config)]
    wall, proc, foreign, cpu = _run(cmd, env=_curate_env(tree))
    m = re.search(r"decoded (\d+) \(reused \d+\) in ([\d.]+)s", proc.stdout)
    return {"seconds": wall, "images": int(m.group(1)) if m else None, "foreign": foreign, "cpu_s": cpu,
            "inner_s": float(m.group(2)) if m else None, "manifest": out / "manifest"}


def time_imagededup(folder: Path, workers: int, tmp: Path) -> dict:
    hashes = tmp / "imagededup-hashes.json"
    wall, proc, foreign, cpu = _run([str(BENCH_PY), __file__, "_imagededup", str(folder), str(workers),
                                     str(hashes)])
    res = _last_json(proc.stdout)
    res.update(process_s=wall, hashes=hashes, foreign=foreign, cpu_s=cpu)
    return res


def time_bare(folder: Path, workers: int, full: bool = False) -> dict:
    wall, proc, foreign, cpu = _run([str(PROJECT_PY), __file__, "_bare", str(folder), str(workers),
                                     "full" if full else "draft"])
    res = _last_json(proc.stdout)
    res.update(process_s=wall, foreign=foreign, cpu_s=cpu)
    return res


def warm_cache(folder: Path) -> int:
    total = 0
    for p in folder.rglob("*.jpg"):
        total += len(p.read_bytes())
    return total


def _imagehash_phash(path: str) -> tuple[str, str]:
    import imagehash
    from PIL import Image

    with Image.open(path) as im:
        return Path(path).name, str(imagehash.phash(im))


def reference_phashes(folder: Path, workers: int) -> dict[str, str]:
    """imagehash.phash of every file, full decode (untimed): the definition curate's pHash follows.
    Cached beside the data (a hidden file, which neither curate nor imagededup lists)."""
    cache = folder / ".imagehash-phash.json"
    if cache.exists() and cache.stat().st_mtime >= (folder / STAMP).stat().st_mtime:
        return json.loads(cache.read_text())
    files = sorted(str(p) for p in folder.glob("*.jpg"))
    with Pool(workers) as pool:
        hashes = dict(pool.imap_unordered(_imagehash_phash, files, chunksize=1))
    cache.write_text(json.dumps(hashes))
    return hashes


def curate_phashes(manifest: Path) -> dict[str, int]:
    import pyarrow.parquet as pq

    t = pq.read_table(manifest, columns=["path", "phash"])
    return {p.rpartition("/")[2]: h for p, h in zip(t.column("path").to_pylist(), t.column("phash").to_pylist())
            if h is not None}


def phash_agreement(ours: dict[str, int | str], theirs: dict[str, str]) -> dict:
    """Hamming distances between two sets of 64-bit pHashes (int64 or 16-digit hex) for the same files."""
    import numpy as np

    def as_int64(values):
        return np.array([int(v, 16) if isinstance(v, str) else v & 0xFFFFFFFFFFFFFFFF for v in values],
                        dtype=np.uint64).view(np.int64)

    common = sorted(set(ours) & set(theirs))
    a, b = as_int64([ours[k] for k in common]), as_int64([theirs[k] for k in common])
    d = np.bitwise_count(np.bitwise_xor(a, b)) if len(common) else np.array([])
    return {"n": len(common), "missing": len(set(theirs) ^ set(ours)),
            **{f"<={k}": float(np.mean(d <= k)) if len(d) else float("nan") for k in (0, 2, 4, 8)},
            "mean": float(d.mean()) if len(d) else float("nan"), "max": int(d.max()) if len(d) else 0}


# --------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------

def _tree_memory(proc) -> tuple[int, int, int]:
    """(rss, pss, processes) summed over `proc` and all its descendants; vanished ones skipped."""
    import psutil

    rss = pss = n = 0
    try:
        procs = [proc] + proc.children(recursive=True)
    except psutil.Error:
        return 0, 0, 0
    for p in procs:
        try:
            info = p.memory_full_info()
            rss += info.rss
            pss += getattr(info, "pss", info.rss)
            n += 1
        except psutil.Error:
            continue
    return rss, pss, n


def measure_memory(folder: Path, workers: int, tmp: Path, tree: Path | None = None, interval: float = 0.2) -> dict:
    """Peak memory of `curate scan` (this checkout's, or the package in `tree`) and its process tree."""
    import psutil

    out = tmp / "curate-mem-out"
    if out.exists():
        shutil.rmtree(out)
    cmd = [str(CURATE), "scan", str(folder), "-o", str(out), "--workers", str(workers)]
    t0 = time.perf_counter()
    popen = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=_curate_env(tree))
    proc = psutil.Process(popen.pid)
    peak_rss = peak_pss = peak_n = samples = peak_main = 0
    while popen.poll() is None:
        rss, pss, n = _tree_memory(proc)
        peak_rss, peak_pss, peak_n = max(peak_rss, rss), max(peak_pss, pss), max(peak_n, n)
        try:
            peak_main = max(peak_main, proc.memory_info().rss)
        except psutil.Error:
            pass
        samples += 1
        time.sleep(interval)
    stdout, stderr = popen.communicate()
    wall = time.perf_counter() - t0
    if popen.returncode:
        raise RuntimeError(f"curate scan failed:\n{stdout[-2000:]}\n{stderr[-2000:]}")
    m = re.search(r"decoded (\d+) \(reused \d+\) in ([\d.]+)s", stdout)
    shutil.rmtree(out, ignore_errors=True)
    return {"files": int(m.group(1)) if m else None, "seconds": wall, "peak_rss": peak_rss, "peak_pss": peak_pss,
            "peak_main": peak_main,
            "processes": peak_n, "samples": samples}


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------

def machine() -> str:
    from PIL import Image, features

    model, mem = cpu_model(), ram_gib()
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "curate"], cwd=ROOT, capture_output=True,
                               text=True).stdout.strip()
        rev = f"curate at {head}" + (" with uncommitted changes under curate/" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        rev = "curate (no git revision)"
    return (f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {model}, {mem:.0f} GiB RAM, "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}, "
            f"Pillow {Image.__version__} (libjpeg-turbo {features.version('jpg')}); {rev}")


def write_section(body: str) -> None:
    """Replace (or append) the `## Scan` section of RESULTS.md with `body`."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    section = "## Scan\n\n" + body.strip() + "\n"
    pattern = re.compile(r"^## Scan\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _m: section + "\n", text, count=1).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section
    RESULTS.write_text(text)


def read_section() -> str:
    if not RESULTS.exists():
        return ""
    m = re.search(r"^## Scan\n(.*?)(?=^## |\Z)", RESULTS.read_text(), re.S | re.M)
    return m.group(1) if m else ""


def keep_block(old: str, marker: str) -> str:
    """The block of an earlier run starting at `### marker`, to keep when only the other part reruns."""
    m = re.search(rf"^### {re.escape(marker)}.*?(?=^### |\Z)", old, re.S | re.M)
    return m.group(0).strip() if m else ""


TARGETS = {  # set: (x imagededup's images/s, share of the bare loop's images/s, x the full-scale bare loop's
    "small": (1.5, 0.35, 2.5),  # CPU per image); issue 25
    "12mp": (None, 0.85, None),
}


def target_verdicts(name: str, vs_imagededup: float, vs_bare: float, cpu_vs_full: float) -> str:
    """One line: each ratio against the set's target (`TARGETS`), met or MISSED."""
    want_dedup, want_bare, want_cpu = TARGETS[name]
    parts = [f"{vs_imagededup:.2f}x imagededup" + (
                 f" (target >= {want_dedup:g}x: {'met' if vs_imagededup >= want_dedup else 'MISSED'})"
                 if want_dedup else ""),
             f"{vs_bare:.0%} of the bare loop (target >= {want_bare:.0%}: {'met' if vs_bare >= want_bare else 'MISSED'})",
             f"CPU per image {cpu_vs_full:.2f}x the full-scale bare loop's" + (
                 f" (target <= {want_cpu:g}x: {'met' if cpu_vs_full <= want_cpu else 'MISSED'})" if want_cpu else "")]
    return ", ".join(parts)


def curate_variants(args: argparse.Namespace, n: int, stem: Path, base_tree: Path | None
                    ) -> dict[str, tuple[str, Path | None, Path | None]]:
    """The other `curate scan` runs to time beside the default: key -> (label, config file, code
    tree): other settings, and `--base`'s commit with the default settings."""
    settings = []
    if args.partition_size:
        psize = -(-n // (2 * args.workers)) if args.partition_size == "auto" else int(args.partition_size)
        settings.append(("curate_ps", "engine", "partition_size", psize))
    settings += [(f"curate_ds{size}", "scan", "decode_size", size) for size in args.decode_sizes]
    variants: dict[str, tuple[str, Path | None, Path | None]] = {}
    if base_tree:
        variants["curate_base"] = (f"`curate scan --workers {args.workers}` at {args.base} (before)", None, base_tree)
    for key, section, option, value in settings:
        config = stem.with_name(f"{stem.name}-{key}.toml")
        config.write_text(f"[{section}]\n{option} = {value}\n")
        variants[key] = (f"`curate scan --workers {args.workers}` with `{section}.{option} = {value}`", config, None)
    return variants


def throughput(args: argparse.Namespace) -> str:
    tmp = Path(tempfile.mkdtemp(prefix="curate-bench-"))
    base_tree = export(args.base) if args.base else None
    sets = [("small", args.small), ("12mp", args.large)]
    folders = {name: ensure_data(name, n, args.gen_workers) for name, n in sets if n}
    rows, agreement, notes = [], [], []
    foreign_max = 0.0
    try:
        for name, n in sets:
            if not n:
                continue
            folder = folders[name]
            variants = curate_variants(args, n, tmp / name, base_tree)
            size_mb = warm_cache(folder) / 1e6
            results: dict[str, list[dict]] = {"curate": [], **{k: [] for k in variants}, "imagededup": [], "bare": [],
                                              "bare_full": []}
            for r in range(args.repeats):
                print(f"[{name}] repeat {r + 1}/{args.repeats}", file=sys.stderr, flush=True)
                runs = [("bare", partial(time_bare, folder, args.workers)),
                        ("bare_full", partial(time_bare, folder, args.workers, True)),
                        ("imagededup", partial(time_imagededup, folder, args.workers, tmp)),
                        ("curate", partial(time_curate, folder, args.workers, tmp / "curate"))]
                runs += [(k, partial(time_curate, folder, args.workers, tmp / k, config, tree))
                         for k, (_label, config, tree) in variants.items()]
                for k, fn in runs:
                    wait_idle(args.wait_idle)
                    results[k].append(fn())
                    with open(DATA / "scan-runs.jsonl", "a") as log:  # raw results, should the run be cut short
                        log.write(json.dumps({"set": name, "contender": k, "repeat": r, **{
                            a: b for a, b in results[k][-1].items() if isinstance(b, (int, float, str))}}) + "\n")
                    print(f"   {k}: {results[k][-1]['seconds']:.2f}s (other processes: "
                          f"{results[k][-1]['foreign']:.0%} of the CPUs)", file=sys.stderr, flush=True)
            med = {k: statistics.median(x["seconds"] for x in v) for k, v in results.items()}
            ips = {k: n / s for k, s in med.items()}
            all_s = {k: " / ".join(f"{x['seconds']:.2f}" for x in v) for k, v in results.items()}
            labels = {
                "curate": f"`curate scan --workers {args.workers}` (end-to-end)",
                **{k: label for k, (label, _config, _tree) in variants.items()},
                "imagededup": f"imagededup `PHash().encode_images(num_enc_workers={args.workers})`",
                "bare": f"bare loop: Pool({args.workers}), `draft(None, (32, 32))` + `load()`",
                "bare_full": f"bare loop at full scale: Pool({args.workers}), `load()`",
            }
            for k in results:
                extra = ""
                if k.startswith("curate"):
                    inner = statistics.median(x["inner_s"] for x in results[k] if x["inner_s"] is not None)
                    extra = f"in-process {inner:.1f}s"
                elif k == "imagededup":
                    extra = f"process wall {statistics.median(x['process_s'] for x in results[k]):.2f}s"
                else:
                    extra = f"process wall {statistics.median(x['process_s'] for x in results[k]):.2f}s"
                worst = max(x["foreign"] for x in results[k])
                foreign_max = max(foreign_max, worst)
                cpu = statistics.median(x["cpu_s"] for x in results[k])
                rows.append(f"| {name} | {n} ({size_mb / n:.2f} MB avg) | {labels[k]} | {med[k]:.2f} ({all_s[k]}) "
                            f"| {ips[k]:.0f} | {ips[k] / ips['imagededup']:.2f}x | {ips[k] / ips['bare']:.0%} "
                            f"| {cpu:.1f} | {1000 * cpu / n:.2f} | {extra}; other load <= {worst:.0%} |")
            ours = curate_phashes(results["curate"][-1]["manifest"])
            dedup = json.loads(results["imagededup"][-1]["hashes"].read_text())
            print(f"[{name}] imagehash reference hashes (untimed)", file=sys.stderr, flush=True)
            ref = reference_phashes(folder, args.workers)
            for a_name, b_name, a, b in (("curate", "imagededup", ours, dedup),
                                         ("curate", "imagehash, full decode", ours, ref),
                                         ("imagededup", "imagehash, full decode", dedup, ref)):
                ag = phash_agreement(a, b)
                agreement.append(f"| {name} | {a_name} vs {b_name} | {ag['n']} | {ag['<=0']:.1%} | {ag['<=2']:.1%} "
                                 f"| {ag['<=4']:.1%} | {ag['<=8']:.1%} | {ag['mean']:.2f} | {ag['max']} |")
            for key in ("imagededup", "bare", "bare_full"):
                imgs = {x["images"] for x in results[key]}
                if imgs != {n}:
                    notes.append(f"- {name}: {key} processed {sorted(imgs)} images, expected {n}")
            imgs = {x["images"] for x in results["curate"]}
            if imgs != {n}:
                notes.append(f"- {name}: curate decoded {sorted(imgs)} images, expected {n}")
            clean = [r for r in range(args.repeats) if all(v[r]["foreign"] < 0.05 for v in results.values())]
            if clean:
                cips = {k: n / statistics.median(v[r]["seconds"] for r in clean) for k, v in results.items()}
                for k in (k for k in cips if k.startswith("curate")):
                    notes.append(f"- {name}, {labels[k]}, only the {len(clean)} repeat(s) in which every "
                                 f"contender ran with other load < 5%: {cips[k] / cips['imagededup']:.2f}x "
                                 f"imagededup, {cips[k] / cips['bare']:.0%} of the bare loop")
            else:
                notes.append(f"- {name}: no repeat ran entirely with other load < 5%")
            cpu_per = {k: statistics.median(x["cpu_s"] for x in v) / n for k, v in results.items()}
            for k in (k for k in ips if k.startswith("curate")):
                notes.append(f"- {name}, {labels[k]}: " + target_verdicts(
                    name, ips[k] / ips["imagededup"], ips[k] / ips["bare"], cpu_per[k] / cpu_per["bare_full"]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if base_tree:
            shutil.rmtree(base_tree, ignore_errors=True)
    cmd = "python benchmarks/scan.py " + " ".join(a for a in sys.argv[1:])
    lines = [
        "### Throughput",
        "",
        f"Command: `bash benchmarks/setup_imagededup.sh && .venv/bin/{cmd.strip()}`  ",
        f"Date: {dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}  ",
        f"Machine: {machine()}  ",
        f"Workers: {args.workers} processes for every contender; median of {args.repeats} interleaved "
        f"run(s) (all runs in brackets); page cache warm. \"other load\" is the largest share of the "
        f"machine's CPU time that processes outside the benchmark used during any run of that row "
        f"(each run waits, up to {args.wait_idle:.0f} s, for the machine to go idle first)"
        + (f"; **up to {foreign_max:.0%}: other work was running on this machine, so these timings are "
           f"pessimistic**." if foreign_max > 0.1 else "."),
        "",
        "| set | images | contender | seconds | images/s | vs imagededup | vs bare loop | CPU s | CPU ms/image "
        "| notes |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        *rows,
        "",
        "Targets (issue 25): ~500x375 photos >= 1.5x imagededup's images/s, >= 35% of the bare loop's, and "
        "CPU per image <= 2.5x the full-scale bare loop's; 12 MP >= 85% of the bare loop's:",
        "",
        *notes,
        "",
        "curate's seconds are the wall-clock of the whole `curate scan` process: interpreter start, "
        "imports, listing, decode (a job of one partition runs in the curate process with `--workers` "
        "sandboxed decoder child processes; more partitions run on the curate process's threads, "
        "each with one decoder child), "
        "content and pixel hashes, pHash (8 dihedral variants) and dHash, quality statistics, Parquet "
        "write. \"in-process\" is the scan's own elapsed time as it prints it (from listing to the "
        "manifest swap, cluster start-up included). imagededup's seconds are the `encode_images` call "
        "(its Pool start-up included); \"process wall\" adds its interpreter start and imports. The bare "
        "loop's seconds include its Pool start-up. \"CPU s\" is the user+system CPU time of the "
        "contender's whole process tree (getrusage of the waited-for children, so interpreter start and "
        "imports included for all three): it is much less sensitive than wall time to other load on the "
        "machine.",
        "",
        "pHash agreement (Hamming distance between the 64-bit hashes of the same file). curate's `phash` "
        "follows imagehash's definition on a 64x64 thumbnail of the scan's decode (at the smallest DCT "
        "scale keeping both sides >= `scan.decode_size`, 256: 1/1 for the small photos, 1/8 for 12 MP). imagededup decodes in full and resizes RGB to 32x32 with LANCZOS before the grey "
        "conversion, and thresholds with `>=` against the median of the 63 non-DC coefficients, so its "
        "hash always sets the median coefficient's bit where imagehash's (`>` the median of all 64) "
        "does not: it differs from imagehash in at least one bit by definition. imagehash "
        "(`imagehash.phash`, full decode, untimed) is therefore shown as the reference too:",
        "",
        "| set | pair | images | identical | <= 2 bits | <= 4 bits | <= 8 bits | mean bits | max bits |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *agreement,
    ]
    return "\n".join(lines)


def memory(args: argparse.Namespace) -> str:
    tmp = Path(tempfile.mkdtemp(prefix="curate-bench-mem-"))
    trees = {"this tree": None, **({f"{args.base} (before)": export(args.base)} if args.base else {})}
    rows = []
    try:
        for n in args.mem_sizes:
            folder = ensure_data("tiny", n, args.gen_workers)
            warm_cache(folder)
            for code, tree in trees.items():
                print(f"[memory] {n} files, {code}", file=sys.stderr, flush=True)
                wait_idle(args.wait_idle)
                with ForeignCpu() as watch:
                    r = measure_memory(folder, args.workers, tmp, tree)
                r["foreign"] = watch.share
                rows.append(r | {"n": n, "code": code})
                print(f"   {r}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        for tree in trees.values():
            if tree:
                shutil.rmtree(tree, ignore_errors=True)
    table = [f"| {r['code']} | {r['n']:,} | {r['files']:,} | {r['seconds']:.1f} | {r['n'] / r['seconds']:.0f} "
             f"| {r['peak_rss'] / 2 ** 20:.0f} | {r['peak_pss'] / 2 ** 20:.0f} | {r['peak_main'] / 2 ** 20:.0f} "
             f"| {r['processes']} | {r['foreign']:.0%} |"
             for r in rows]
    growth = []
    for code in trees:
        mine = [r for r in rows if r["code"] == code]
        if len(mine) >= 2:
            a, b = mine[0], mine[-1]
            growth.append(f"- {code}: peak RSS grows {b['peak_rss'] / a['peak_rss']:.2f}x (PSS "
                          f"{b['peak_pss'] / a['peak_pss']:.2f}x, driver {b['peak_main'] / a['peak_main']:.2f}x) "
                          f"for {b['n'] / a['n']:.0f}x the files.")
    cmd = "python benchmarks/scan.py " + " ".join(sys.argv[1:])
    return "\n".join([
        "### Peak memory",
        "",
        f"Command: `.venv/bin/{cmd.strip()}`  ",
        f"Date: {dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}  ",
        f"Machine: {machine()}  ",
        f"`curate scan --workers {args.workers}` on generated {MEM_SIZE[0]}x{MEM_SIZE[1]} JPEGs (1,000 per "
        f"folder), default config (partition_size 2000). Memory of the curate process and all its descendants "
        f"(Dask scheduler, nanny and worker processes, and each worker's decoder child), summed, sampled every "
        f"0.2 s; RSS counts shared pages once per process, PSS splits them. \"driver\" is the `curate` process "
        f"alone (listing, planning, scheduler). \"other load\": share of the machine's CPU time used by "
        f"processes outside the benchmark meanwhile.",
        "",
        "| code | files | decoded | seconds | files/s | peak RSS (MiB) | peak PSS (MiB) | driver process peak RSS (MiB) "
        "| processes | other load |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *table,
        "",
        *growth,
    ])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1].startswith("_"):  # child modes
        mode, rest = sys.argv[1], sys.argv[2:]
        if mode == "_generate":
            generate(rest[0], int(rest[1]), Path(rest[2]), int(rest[3]))
        elif mode == "_bare":
            bare_loop(rest[0], int(rest[1]), rest[2:] == ["full"])
        elif mode == "_imagededup":
            imagededup_run(rest[0], int(rest[1]), rest[2])
        else:
            sys.exit(f"unknown mode {mode}")
        return

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--small", type=int, default=2000, help="images in the ~500x375 set (0 = skip)")
    p.add_argument("--large", type=int, default=150, help="images in the 12 MP set (0 = skip)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per contender and set (median reported)")
    p.add_argument("--workers", type=int, default=2, help="processes for every contender")
    p.add_argument("--partition-size", default="auto",
                   help="also time curate with this engine.partition_size; 'auto' = 2 tasks per worker, "
                        "0 = only the default config")
    p.add_argument("--wait-idle", type=float, default=60.0,
                   help="before each timed run, wait up to this many seconds for other processes to go quiet")
    p.add_argument("--decode-sizes", type=lambda v: [int(x) for x in v.split(",") if x], default=[],
                   help="also time curate with each of these scan.decode_size values (comma-separated)")
    p.add_argument("--base", default="", help="also time `curate scan` at this commit (the code before a change)")
    p.add_argument("--gen-workers", type=int, default=os.cpu_count() or 2, help="processes generating data")
    p.add_argument("--memory", action="store_true", help="run the peak-memory benchmark instead")
    p.add_argument("--mem-sizes", type=lambda s: [int(x) for x in s.split(",")], default=[10_000, 100_000],
                   help="file counts for --memory (comma-separated)")
    p.add_argument("--no-write", action="store_true", help="print only; leave benchmarks/RESULTS.md alone")
    args = p.parse_args()
    if args.partition_size in ("0", "", "none"):
        args.partition_size = None
    elif args.partition_size != "auto":
        args.partition_size = int(args.partition_size)

    for exe, hint in ((BENCH_PY, "run: bash benchmarks/setup_imagededup.sh"), (CURATE, "run: make install")):
        if not exe.exists():
            sys.exit(f"{exe} is missing; {hint}")
    old = read_section()
    notes = keep_block(old, "Notes")  # hand-written analysis, kept across runs
    if args.memory:
        part = memory(args)
        body = "\n\n".join(x for x in (keep_block(old, "Throughput"), part, notes) if x)
    else:
        part = throughput(args)
        body = "\n\n".join(x for x in (part, keep_block(old, "Peak memory"), notes) if x)
    print(part)
    if not args.no_write:
        write_section(body)
        print(f"\nwrote the Scan section of {RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    main()
