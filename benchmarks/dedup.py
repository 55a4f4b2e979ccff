"""Near-duplicate search benchmark: curate's multi-index hashing vs imagededup's `find_duplicates`.

    bash benchmarks/setup_imagededup.sh      # once: benchmarks/.venv-imagededup
    .venv/bin/python benchmarks/dedup.py     # everything below, one run; writes benchmarks/RESULTS-dedup.md

Hashes. Random 64-bit hashes (numpy PCG64, fixed seed) with planted near pairs: a twentieth of
the rows are copies of other rows with exactly d distinct bits flipped, d cycling over 0..t, so
every distance the threshold accepts is present. The same hashes go to both tools; imagededup
gets them as its 16-hex-digit strings (`f"{v & (2**64 - 1):016x}"`), keyed by row number.

Comparison (`--compare-sizes`, default 10k and 100k, at `--compare-thresholds`, default 4 and 10):
  * curate: `curate.dedup.search.radius_pairs(hashes, t)`, the exact all-pairs search that
    `curate dedup` runs on the manifest's pHash column (in-process, one core), in a child process
    that loads the hashes from a .npy file; the search call is timed, `--repeats` times, median
    reported. Also timed once: `near_edges` + `components` (hashes to duplicate clusters, what
    the stage does after reading the manifest, identical-hash collapsing included).
  * imagededup 0.3.3.post2, in benchmarks/.venv-imagededup: `PHash().find_duplicates(
    encoding_map=..., max_distance_threshold=t, search_method=M, num_dist_workers=2)` with M in
    `bktree` and `brute_force_cython`; the call is timed inside its process. Each run is killed at
    a time cap (`--cap`, seconds, per size), and then reported as "> cap" with how many of the
    queries its progress bar had reached (and the tree still being built if it had reached none).
  * agreement: the unordered pairs imagededup returns against curate's.
Scale (`--scale`, default 1M hashes at t=10 and 10M at t=4): `radius_pairs` alone in a child
process (wall time of the call; peak RSS = the child's ru_maxrss, interpreter and the loaded
hash column included), and with `--dask` also `radius_pairs_on` on a 2-worker, 1-thread
LocalCluster (peak RSS = sum over the process tree, sampled every 0.2 s). Recall: every planted
pair must be found, and for `--recall-queries` queries (half of them planted rows, half uniform)
every neighbour within t found by numpy brute force over the whole array
(popcount of the XOR viewed as uint64, `<= t`) must be in the result; every reported pair's
distance is recomputed too (a reported pair farther than t does not count as found).

The machine's 2 cores may be shared with other benchmarks: before each timed run this waits
(up to `--max-wait` s) while a `benchmarks/scan.py` process is running, and records the load
average and any other busy processes seen during the run.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
from hashgen import PLANT_FRACTION, plant, realistic_hashes
from hostinfo import cpu_model, ram_gib

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "RESULTS-dedup.md"
BENCH_PY = HERE / ".venv-imagededup" / "bin" / "python"
PROJECT_PY = ROOT / ".venv" / "bin" / "python"
MB = 1024 * 1024


# ---------------------------------------------------------------- hashes

def make_hashes(n: int, t: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n random int64 hashes, n // 20 of them planted at exactly d = k % (t + 1) bits from another row.

    Returns (hashes, planted_a, planted_b); planted pairs are disjoint rows.
    """
    rng = np.random.default_rng(seed)
    h = rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)
    dist = np.arange(n // PLANT_FRACTION) % (t + 1)
    lo_, hi_ = plant(rng, h, dist)
    assert (np.bitwise_count(h[lo_] ^ h[hi_]) == dist).all()  # uint64 here
    return h.view(np.int64), lo_, hi_


def hamming(a: np.ndarray, b: np.ndarray | np.integer) -> np.ndarray:
    """Bits differing between int64 hashes. The XOR is viewed as uint64 first: np.bitwise_count on a
    signed integer counts the bits of its absolute value, so a negative XOR (top bit differs) miscounts."""
    return np.bitwise_count(np.bitwise_xor(a, b).view(np.uint64))


def hexes(h: np.ndarray) -> list[str]:
    return [f"{v & (2**64 - 1):016x}" for v in h.tolist()]


def pair_codes(i: np.ndarray, j: np.ndarray, n: int) -> np.ndarray:
    a, b = np.minimum(i, j).astype(np.int64), np.maximum(i, j).astype(np.int64)
    return np.unique(a * n + b)


# ---------------------------------------------------------------- child processes

CHILD_CURATE = "curate-child"


def curate_child(args: list[str]) -> None:
    """In a child: load hashes, run one curate variant, save pairs, print a JSON line. An optional
    sixth argument names another search.py to run `radius_pairs` from (an older version of it)."""
    import resource

    mode, path, t, repeats, out = args[0], args[1], int(args[2]), int(args[3]), args[4]
    h = np.load(path)
    times = []
    if mode == "search":
        radius_pairs = search_module(args[5] if len(args) > 5 else None).radius_pairs
        for _ in range(repeats):
            t0 = time.perf_counter()
            i, j, d = radius_pairs(h, t)
            times.append(time.perf_counter() - t0)
    elif mode == "clusters":
        from curate.dedup.cluster import components, near_edges
        for _ in range(repeats):
            t0 = time.perf_counter()
            same, near, _pairs = near_edges(h[:, None], t)
            edges = same + near
            labels = components(len(h), edges)
            times.append(time.perf_counter() - t0)
        i, j = edges.a, edges.b
        d = hamming(h[i], h[j])
        print(json.dumps({"n_clusters": int(len(np.unique(labels)))}), file=sys.stderr)
    elif mode == "dask":
        from dask.distributed import Client, LocalCluster

        from curate.dedup.search import radius_pairs_on
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            for _ in range(repeats):
                t0 = time.perf_counter()
                i, j, d = radius_pairs_on(client, h, t)
                times.append(time.perf_counter() - t0)
    else:
        raise SystemExit(f"unknown mode {mode}")
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    np.savez(out, i=i, j=j, d=d)
    print(json.dumps({"times": times, "maxrss": maxrss, "pairs": int(len(i))}), flush=True)


def search_module(path: str | None):  # type: ignore[no-untyped-def]
    """curate.dedup.search, or the search.py at `path` loaded as a module of its own."""
    if path is None:
        import curate.dedup.search as mod
        return mod
    import importlib.util
    spec = importlib.util.spec_from_file_location("search_under_test", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


IMAGEDEDUP_CHILD = r"""
import json, sys, time
from imagededup.methods import PHash
src, t, method, workers, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
with open(src) as f:
    enc = json.load(f)
t0 = time.perf_counter()
dups = PHash(verbose=True).find_duplicates(encoding_map=enc, max_distance_threshold=t, search_method=method,
                                           num_dist_workers=workers)
el = time.perf_counter() - t0
pairs = sorted({(min(int(k), int(v)), max(int(k), int(v))) for k, vs in dups.items() for v in vs})
with open(out, "w") as f:
    json.dump(pairs, f)
print(json.dumps({"elapsed": el, "pairs": len(pairs)}), flush=True)
"""


# ---------------------------------------------------------------- running and watching

def others_busy(own: set[int]) -> list[str]:
    """Other processes using CPU now (for the record), and whether benchmarks/scan.py runs."""
    out = []
    for p in psutil.process_iter(["pid", "cmdline", "cpu_percent"]):
        if p.info["pid"] in own or p.info["pid"] == os.getpid():
            continue
        cmd = " ".join(p.info["cmdline"] or [])
        if "benchmarks/scan.py" in cmd or (p.info["cpu_percent"] or 0) > 20:
            out.append(cmd[:80])
    return out


def scan_running() -> bool:
    for p in psutil.process_iter(["pid", "cmdline"]):
        if p.info["pid"] != os.getpid() and "benchmarks/scan.py" in " ".join(p.info["cmdline"] or []):
            return True
    return False


def wait_for_quiet(max_wait: float) -> float:
    t0 = time.monotonic()
    announced = False
    while scan_running() and time.monotonic() - t0 < max_wait:
        if not announced:
            print("  (waiting: benchmarks/scan.py is running)", flush=True)
            announced = True
        time.sleep(5)
    return time.monotonic() - t0


class Run:
    """A subprocess in its own session, with a wall-clock cap, RSS sampling over its process tree,
    its stderr kept (progress bars parsed), and a record of other busy processes."""

    def __init__(self, cmd: list[str], cap: float | None, env: dict | None = None) -> None:
        for _proc in psutil.process_iter(["cpu_percent"]):  # prime per-process cpu_percent
            pass
        self.start = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True, env=env)
        self.cap = cap
        self.peak = 0
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.busy: set[str] = set()
        self.load: list[float] = []
        self.cpu: dict[int, float] = {}  # pid -> user + system seconds, last seen
        self._done = threading.Event()
        self._readers = [threading.Thread(target=self._read, args=(self.proc.stdout, self.stdout), daemon=True),
                         threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr), daemon=True)]
        for th in self._readers:
            th.start()
        threading.Thread(target=self._sample, daemon=True).start()

    @staticmethod
    def _read(stream, lines: list[str]) -> None:  # type: ignore[no-untyped-def]
        buf = ""
        while True:
            ch = stream.read(256)
            if not ch:
                break
            buf += ch
            *done, buf = re.split(r"[\r\n]", buf)
            lines.extend(x for x in done if x.strip())
            del lines[:-200]
        if buf.strip():
            lines.append(buf)

    def _tree(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def _sample(self) -> None:
        k = 0
        while not self._done.is_set():
            tree = self._tree()
            rss = 0
            for p in tree:
                try:
                    rss += p.memory_info().rss
                    ct = p.cpu_times()
                    self.cpu[p.pid] = ct.user + ct.system
                except psutil.Error:
                    pass
            self.peak = max(self.peak, rss)
            if k % 25 == 0:
                self.load.append(os.getloadavg()[0])
                self.busy.update(others_busy({p.pid for p in tree}))
            k += 1
            self._done.wait(0.2)

    def wait(self) -> tuple[int | None, str, float, bool]:
        try:
            self.proc.wait(timeout=self.cap)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the child's own session: it and its pool workers
            self.proc.wait()
            timed_out = True
        wall = time.perf_counter() - self.start
        self._done.set()
        for th in self._readers:
            th.join(timeout=10)
        return self.proc.returncode, "\n".join(self.stdout), wall, timed_out

    def progress(self) -> tuple[int, int] | None:
        for line in reversed(self.stderr):
            m = re.search(r"\|\s*(\d+)/(\d+)", line)
            if m:
                return int(m.group(1)), int(m.group(2))
        return None


def last_json(out: str) -> dict:
    for line in reversed(out.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"no result line in: {out[-2000:]}")


def run_curate(mode: str, npy: Path, t: int, repeats: int, max_wait: float, search_py: Path | None = None) -> dict:
    out = Path(tempfile.mkstemp(suffix=".npz", dir=npy.parent)[1])
    waited = wait_for_quiet(max_wait)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = Run([str(PROJECT_PY), __file__, CHILD_CURATE, mode, str(npy), str(t), str(repeats), str(out),
             *([str(search_py)] if search_py else [])], None, env)
    rc, stdout, wall, _ = r.wait()
    if rc != 0:
        raise RuntimeError(f"curate {mode} failed (rc {rc}): {' '.join(r.stderr[-20:])}")
    res = last_json(stdout)
    pairs = np.load(out)
    out.unlink()
    res.update(peak_tree=r.peak, cpu=sum(r.cpu.values()), busy=sorted(r.busy), load=max(r.load, default=0.0), waited=waited,
               i=pairs["i"], j=pairs["j"], d=pairs["d"], median=statistics.median(res["times"]))
    return res


def run_imagededup(h: np.ndarray, t: int, method: str, workers: int, cap: float, work: Path,
                   max_wait: float) -> dict:
    src = work / f"enc-{len(h)}-{t}.json"
    if not src.exists():
        src.write_text(json.dumps(dict(zip(map(str, range(len(h))), hexes(h)))))
    out = work / f"imagededup-{len(h)}-{t}-{method}.json"
    waited = wait_for_quiet(max_wait)
    r = Run([str(BENCH_PY), "-c", IMAGEDEDUP_CHILD, str(src), str(t), method, str(workers), str(out)], cap)
    rc, stdout, wall, timed_out = r.wait()
    res = {"method": method, "timed_out": timed_out, "wall": wall, "cap": cap, "peak_tree": r.peak,
           "busy": sorted(r.busy), "load": max(r.load, default=0.0), "waited": waited, "progress": r.progress()}
    if timed_out:
        return res
    if rc != 0:
        raise RuntimeError(f"imagededup {method} failed (rc {rc}): {' '.join(r.stderr[-20:])}")
    res.update(last_json(stdout))
    res["pairs_arr"] = np.array(json.loads(out.read_text()), dtype=np.int64).reshape(-1, 2)
    return res


# ---------------------------------------------------------------- checks

def check_pairs(h: np.ndarray, t: int, i: np.ndarray, j: np.ndarray, d: np.ndarray,
                pa: np.ndarray, pb: np.ndarray, queries: int, seed: int) -> dict:
    """Exactness of a result: reported distances, planted pairs, brute force over a query sample.

    Ground truth uses `hamming` (uint64 popcount), independent of the code under test.
    """
    n = len(h)
    codes = np.minimum(i, j).astype(np.int64) * n + np.maximum(i, j)
    true_d = hamming(h[i], h[j])
    res = {"unordered": int((i >= j).sum()), "repeated": int(len(codes) - len(np.unique(codes))),
           "wrong_d": int((true_d != d).sum()), "over_t": int((true_d > t).sum())}
    codes = np.unique(codes[true_d <= t])  # only true pairs count as found
    planted = pa * n + pb
    res.update(planted=len(planted), planted_found=int(np.isin(planted, codes).sum()))
    rng = np.random.default_rng(seed)
    q = np.unique(np.concatenate([rng.choice(np.concatenate([pa, pb]), queries // 2, replace=False),
                                  rng.choice(n, queries - queries // 2, replace=False)]))
    truth, found = 0, 0
    for x in q.tolist():
        nb = np.flatnonzero(hamming(h, h[x]) <= t)
        nb = nb[nb != x]
        if len(nb) == 0:
            continue
        c = np.minimum(nb, x) * n + np.maximum(nb, x)
        pos = np.searchsorted(codes, c)
        ok = (pos < len(codes)) & (codes[np.minimum(pos, len(codes) - 1)] == c)
        truth += len(c)
        found += int(ok.sum())
    res.update(queries=len(q), sample_truth=truth, sample_found=found)
    res["exact"] = (res["planted_found"] == res["planted"] and found == truth and res["over_t"] == 0
                    and res["wrong_d"] == 0 and res["unordered"] == 0 and res["repeated"] == 0)
    return res


def agree_note(g: dict) -> str:
    if g["ided_only"] == g["curate_only"] == 0:
        return f"same {g['ided']:,} pairs"
    out = []
    if g["ided_only"]:
        out.append(f"{g['ided_only']:,} only in imagededup ({g['ided_only_true']:,} of them truly within t)")
    if g["curate_only"]:
        out.append(f"{g['curate_only']:,} only in curate ({g['curate_only_true']:,} of them truly within t)")
    if g["ided_wrong"]:
        out.append(f"{g['ided_wrong']:,} imagededup pairs over t")
    return ", ".join(out)


def check_note(c: dict) -> str:
    bad = [f"{c[k]:,} {k.replace('_', ' ')}" for k in ("wrong_d", "over_t", "unordered", "repeated") if c[k]]
    return "; ".join(bad)


# ---------------------------------------------------------------- formatting

def fmt_s(x: float) -> str:
    return (f"{x:.2f} s" if x < 10 else f"{x:.0f} s" if x < 1000 else f"{x / 60:.1f} min" if x < 7200
            else f"{x / 3600:.1f} h")


def fmt_mb(b: float) -> str:
    return f"{b / MB:,.0f} MB"


def machine() -> str:
    cpu, mem = cpu_model(), ram_gib()
    import importlib.metadata as md
    return (f"{os.cpu_count()} cores (nproc {len(os.sched_getaffinity(0))}), {cpu}, {mem:.0f} GiB RAM; "
            f"{platform.platform()}; Python {platform.python_version()}, numpy {np.__version__}, "
            f"dask {md.version('dask')}; imagededup 0.3.3.post2 (benchmarks/.venv-imagededup)")


def code_version() -> str:
    """The commit, and a digest of the search/cluster code the children imported (it may be uncommitted)."""
    import hashlib
    rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "curate/dedup"], capture_output=True,
                           text=True).stdout.rstrip()
    digest = hashlib.sha256(b"".join((ROOT / "curate" / "dedup" / f).read_bytes()
                                     for f in ("search.py", "cluster.py"))).hexdigest()[:12]
    return (f"commit {rev.stdout.strip() or '?'}"
            + (f" with uncommitted changes in curate/dedup ({', '.join(ln[3:] for ln in dirty.splitlines())})"
               if dirty else "") + f"; sha256(search.py + cluster.py) {digest}")


def n_label(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k" if n % 1000 == 0 else str(n)


def busy_note(*runs: dict) -> str:
    busy = sorted({b for r in runs for b in r.get("busy", [])})
    load = max((r.get("load", 0.0) for r in runs), default=0.0)
    return f"load≤{load:.1f}" + (f"; also busy: {', '.join(busy)[:160]}" if busy else "")


# ---------------------------------------------------------------- main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--compare-sizes", default="10000,100000")
    ap.add_argument("--compare-thresholds", default="4,10")
    ap.add_argument("--scale", default="1000000:10,10000000:4", help="n:t,... for curate alone ('' to skip)")
    ap.add_argument("--cap", default="10000:120,100000:180",
                    help="imagededup time cap (s) per size, n:seconds,...; sizes not listed use the last")
    ap.add_argument("--methods", default="bktree,brute_force_cython")
    ap.add_argument("--workers", type=int, default=2, help="imagededup num_dist_workers")
    ap.add_argument("--repeats", type=int, default=3, help="curate search repeats at comparison sizes")
    ap.add_argument("--single", action=argparse.BooleanOptionalAction, default=True,
                    help="at scale, also time radius_pairs in one process")
    ap.add_argument("--dask", action=argparse.BooleanOptionalAction, default=True,
                    help="also run radius_pairs_on on a 2-worker LocalCluster at the scale sizes")
    ap.add_argument("--recall-queries", type=int, default=1000)
    ap.add_argument("--max-wait", type=float, default=1800, help="longest wait for benchmarks/scan.py to finish")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", default="/tmp/curate-dedup-bench")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()

    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    sizes = [int(x) for x in a.compare_sizes.split(",") if x]
    thresholds = [int(x) for x in a.compare_thresholds.split(",") if x]
    scale = [tuple(map(int, x.split(":"))) for x in a.scale.split(",") if x]
    caps = [tuple(map(float, x.split(":"))) for x in a.cap.split(",")]
    methods = [m for m in a.methods.split(",") if m]
    if methods and not BENCH_PY.exists():
        raise SystemExit(f"{BENCH_PY} missing: run `bash benchmarks/setup_imagededup.sh` (or --methods '')")
    started = time.time()
    cmd = " ".join(["cd", str(ROOT), "&&", ".venv/bin/python", "benchmarks/dedup.py", *map(shlex.quote, sys.argv[1:])])
    code_at_start = code_version()
    print(f"# {cmd}\n# {machine()}\n# {code_at_start}\n", flush=True)

    cmp_rows = []
    for n in sizes:
        cap = next((c for s, c in caps if n <= s), caps[-1][1])
        for t in thresholds:
            h, pa, pb = make_hashes(n, t, a.seed + n + t)
            npy = work / f"h-{n}-{t}.npy"
            np.save(npy, h)
            print(f"n={n} t={t}", flush=True)
            cur = run_curate("search", npy, t, a.repeats, a.max_wait)
            clu = run_curate("clusters", npy, t, 1, a.max_wait)
            chk = check_pairs(h, t, cur["i"], cur["j"], cur["d"], pa, pb, min(a.recall_queries, n), a.seed)
            print(f"  curate radius_pairs {fmt_s(cur['median'])} ({cur['pairs']} pairs), "
                  f"hashes->clusters {fmt_s(clu['median'])}", flush=True)
            cur_codes = pair_codes(cur["i"], cur["j"], n)
            ided = {}
            for m in methods:
                r = run_imagededup(h, t, m, a.workers, cap, work, a.max_wait)
                ided[m] = r
                if r["timed_out"]:
                    prog = r["progress"]
                    r["note"] = ((f"> {cap:.0f} s (stopped: ≥ {prog[0]:,} of {prog[1]:,} queries done; "
                                  f"≈ {fmt_s(cap * prog[1] / prog[0])} at that rate)" if prog[0] else
                                  f"> {cap:.0f} s (stopped: index built, not one chunk of 100 of the {prog[1]:,} "
                                  "queries done)") if prog
                                 else f"> {cap:.0f} s (stopped while building its index, before any query)")
                    print(f"  imagededup {m}: {r['note']}", flush=True)
                    continue
                got = pair_codes(r["pairs_arr"][:, 0], r["pairs_arr"][:, 1], n)
                only_i, only_c = np.setdiff1d(got, cur_codes), np.setdiff1d(cur_codes, got)
                true_i = int((hamming(h[only_i // n], h[only_i % n]) <= t).sum())
                true_c = int((hamming(h[only_c // n], h[only_c % n]) <= t).sum())
                r["agree"] = {"ided": len(got), "curate": len(cur_codes), "ided_only": len(only_i),
                              "ided_only_true": true_i, "curate_only": len(only_c), "curate_only_true": true_c,
                              "ided_wrong": int((hamming(h[got // n], h[got % n]) > t).sum())}
                print(f"  imagededup {m}: {fmt_s(r['elapsed'])} ({r['pairs']} pairs; {agree_note(r['agree'])})",
                      flush=True)
            cmp_rows.append((n, t, cur, clu, chk, ided))

    scale_rows = []
    for n, t in scale:
        print(f"scale n={n} t={t}: generating", flush=True)
        h, pa, pb = make_hashes(n, t, a.seed + n + t)
        npy = work / f"h-{n}-{t}.npy"
        np.save(npy, h)
        variants = [("radius_pairs (1 process, 1 core)", "search")] if a.single else []
        if a.dask:
            variants.append(("radius_pairs_on (LocalCluster 2 workers x 1 thread)", "dask"))
        for label, mode in variants:
            print(f"  {label} ...", flush=True)
            r = run_curate(mode, npy, t, 1, a.max_wait)
            chk = check_pairs(h, t, r["i"], r["j"], r["d"], pa, pb, a.recall_queries, a.seed)
            del r["i"], r["j"], r["d"]
            peak = r["maxrss"] if mode == "search" else r["peak_tree"]
            print(f"  {label}: {fmt_s(r['median'])} (CPU {fmt_s(r['cpu'])}), peak {fmt_mb(peak)}, {r['pairs']} pairs, planted "
                  f"{chk['planted_found']}/{chk['planted']}, sample {chk['sample_found']}/{chk['sample_truth']} "
                  f"{check_note(chk)}",
                  flush=True)
            scale_rows.append((n, t, label, mode, r, chk, peak))
        npy.unlink()

    total = time.time() - started
    code = code_at_start
    if code_version() != code_at_start:
        code += f". CHANGED DURING THE RUN, at the end: {code_version()}"
    md = render(cmd, code, cmp_rows, scale_rows, caps, a, total)
    print("\n" + md)
    if not a.no_write:
        Path(a.out).write_text(md)
        print(f"written: {a.out}")


def render(cmd: str, code: str, cmp_rows: list, scale_rows: list, caps: list, a: argparse.Namespace, total: float) -> str:
    from curate.dedup.search import choose_bands

    lines = ["## Dedup: near-duplicate search", "",
             f"Run {dt.date.today().isoformat()}, total {fmt_s(total)}, with:", "", "```", cmd, "```", "",
             f"Machine: {machine()}.", "", f"Code at the start of the run: {code}.", "",
             "Hashes: random 64-bit values with planted pairs (one per 20 rows, at every distance 0..t); the same "
             "hashes for every contender. curate = `radius_pairs(hashes, t)` (exact multi-index hashing, in-process, "
             "one core), median of "
             f"{a.repeats}; \"hashes → clusters\" = `near_edges` + `components` (what `curate dedup` does with the "
             "pHash column after reading the manifest). imagededup = `PHash().find_duplicates(encoding_map=..., "
             f"max_distance_threshold=t, search_method=..., num_dist_workers={a.workers})`, the call timed inside its "
             "process, killed at the cap; for a killed run, the queries its progress bar had reached (it advances "
             "in steps of 100, imagededup's Pool chunk size) and a linear extrapolation of the time to all queries "
             "(both searches cost O(n) per query).", ""]
    if cmp_rows:
        lines += ["| hashes | t | bands (m × bits, flips) | curate search | hashes → clusters | imagededup bktree "
                  "| imagededup brute_force_cython | speed-up vs imagededup's fastest | pairs (curate) | "
                  f"imagededup agrees | recall (planted; {a.recall_queries}-query brute force) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for n, t, cur, clu, chk, ided in cmp_rows:
            b = choose_bands(n, t)
            cells, best = [], None
            agree = []
            for m in ("bktree", "brute_force_cython"):
                r = ided.get(m)
                if r is None:
                    cells.append("not run")
                    continue
                if r["timed_out"]:
                    cells.append(r["note"])
                    v = r["cap"]
                    if best is None or v < best[0]:
                        best = (v, True)
                else:
                    cells.append(fmt_s(r["elapsed"]))
                    if best is None or r["elapsed"] < best[0]:
                        best = (r["elapsed"], False)
                    agree.append(f"{m}: {agree_note(r['agree'])}")
            speed = "–" if best is None else (f"> {best[0] / cur['median']:,.0f}×" if best[1]
                                               else f"{best[0] / cur['median']:,.0f}×")
            lines.append(
                f"| {n_label(n)} | {t} | {len(b.widths)} × {'/'.join(map(str, sorted(set(b.widths), reverse=True)))}"
                f", r={b.radius} | {fmt_s(cur['median'])} | {fmt_s(clu['median'])} | {cells[0]} | {cells[1]} | "
                f"{speed} | {cur['pairs']:,} | {'; '.join(agree) or '–'} | "
                f"{chk['planted_found']:,}/{chk['planted']:,}; {chk['sample_found']:,}/{chk['sample_truth']:,}"
                f"{'; ' + check_note(chk) if check_note(chk) else ''} |")
        lines += ["", "Conditions per row (load average seen during the runs, other busy processes): " + "; ".join(
            f"{n_label(n)}/t={t}: {busy_note(cur, clu, *ided.values())}" for n, t, cur, clu, chk, ided in cmp_rows),
            ""]
    if scale_rows:
        lines += ["### curate alone at scale", "",
                  "Peak memory: `radius_pairs` = the child process's ru_maxrss (interpreter, numpy and the loaded hash "
                  "column included); `radius_pairs_on` = the process tree's summed RSS (client, scheduler, 2 "
                  "workers), sampled every 0.2 s. Recall: all planted pairs, and every neighbour within t of "
                  f"{a.recall_queries} query rows (half planted, half uniform) found by numpy brute force over the "
                  "whole array; every reported distance recomputed. CPU time = user + system seconds of the process "
                  "tree, sampled every 0.2 s (interpreter start, loading the hashes and, for Dask, cluster start-up "
                  "included); with other work on the 2 cores, wall time can exceed what the CPU time alone implies.", "",
                  "| hashes | t | bands | variant | time (wall) | CPU time (process tree) | peak memory | pairs | planted found | sample pairs found "
                  "(brute force) | recall | target (< 15 min, < 8 GB, 100 %) | conditions |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for n, t, label, _mode, r, chk, peak in scale_rows:
            b = choose_bands(n, t)
            ok = r["median"] < 900 and peak < 8 * 2**30 and chk["exact"]
            recall = (f"{100 * (chk['planted_found'] + chk['sample_found']) / (chk['planted'] + chk['sample_truth']):.2f} %"
                      + (f"; {check_note(chk)}" if check_note(chk) else ""))
            lines.append(
                f"| {n_label(n)} | {t} | {len(b.widths)} × {'/'.join(map(str, b.widths))}, r={b.radius} | {label} | "
                f"{fmt_s(r['median'])} | {fmt_s(r.get('cpu', float('nan')))} | {fmt_mb(peak)} | {r['pairs']:,} | {chk['planted_found']:,}/{chk['planted']:,}"
                f" | {chk['sample_found']:,}/{chk['sample_truth']:,} ({chk['queries']} queries) | "
                f"{recall} | {'met' if ok else 'MISSED'} | {busy_note(r)} |")
        lines.append("")
    lines += [design_note(), ""]
    return "\n".join(lines)


def model_rows(sizes: list[tuple[int, int]]) -> list[str]:
    """Probes and candidates per hash from choose_bands's own cost model (arithmetic, not measured)."""
    import math

    from curate.dedup.search import choose_bands
    rows = []
    for n, t in sizes:
        b = choose_bands(n, t)
        probes = sum(sum(math.comb(w, k) for k in range(b.radius + 1)) for w in b.widths)
        cands = sum(sum(math.comb(w, k) for k in range(b.radius + 1)) * n / 2 ** w for w in b.widths)
        table = sum(8 * (2 ** w + 1) for w in b.widths) + 8 * n * len(b.widths)
        rows.append(f"| {n_label(n)} | {t} | {len(b.widths)} × {'/'.join(map(str, b.widths))}, r={b.radius} | "
                    f"{probes:,} | {cands:,.0f} | {n * probes:.1e} | {n * cands:.1e} | "
                    f"{fmt_mb(8 * n)} + {fmt_mb(table)} |")
    return rows


def design_note() -> str:
    head = ["### Reaching 100M+ hashes on a Dask cluster (design; nothing in this section was run on a cluster)", "",
            "**What the code does today.** `radius_pairs` splits the 64 bits into m bands (m from a cost model of "
            "probes + candidates) and every hash probes, in every band, each key within r = t // m flips of its own "
            "band value; by pigeonhole a pair within t bits is within r flips in at least one band, so the search is "
            "exact. Each band is a direct-address table: `offsets` (2^w + 1 int64, 32 MiB at w = 22) and `order` "
            "(row ids sorted by band key, 8 bytes per hash). Candidates are verified on the full 64 bits. "
            "`radius_pairs_on` runs the same code as (band, chunk of query rows) tasks: the whole hash column is "
            "scattered to every worker (`broadcast=True`), each worker builds the table of a band the first time it "
            "runs one of that band's tasks (an argsort of n keys, kept in a 4-entry `lru_cache`), and the pairs are "
            "gathered and deduplicated on the client.", "",
            "Work and per-worker memory of that design, from `choose_bands`'s own model (bands are capped at 24 bits "
            "and 3 bands of 22/21/21 bits are chosen for every n ≥ 1M, so random candidates per hash grow linearly "
            "with n and total candidate work as n²):", "",
            "| hashes | t | bands | probes / hash | candidates / hash | probes | candidates | per worker: column + "
            "all band tables |", "|---|---|---|---|---|---|---|---|"]
    body = model_rows([(10**6, 10), (10**7, 4), (10**8, 4), (10**8, 10), (10**9, 4)])
    tail = ["", "**Where broadcasting stops.** (1) Memory: every worker holds the column (8 bytes/hash: 800 MB at "
            "100M, 8 GB at 1B) plus up to three 8-bytes/hash tables, ~3.3 GB at 100M and ~32 GB at 1B per worker, so "
            "it stops at a few hundred million hashes on 16–32 GB workers; the `lru_cache` also keeps the tables and "
            "the column alive on the workers after the call returns. (2) Transfer: the client holds the column and "
            "it is sent to every worker (P × 800 MB at 100M). (3) Parallelism: `chunks_per_band=4` gives m × 4 = 12 "
            "tasks, so at most 12 workers are busy whatever the cluster size, and each band's table is rebuilt by "
            "every worker that runs one of its tasks. (4) Work: with 22-bit bands, 100M hashes at t = 4 verify "
            "~2.6e11 random candidates (100× the 10M run measured above), and t = 10 at 100M is ~5e11 probes plus "
            "~2e13 candidates: CPU-days at the rates measured here, on any layout. t = 10 at that scale needs wider "
            "bands, which only a partitioned layout makes affordable (below).", "",
            "**The plan for a cluster: shuffle band rows by key prefix instead of broadcasting the column.** The same "
            "probe/verify kernel (`probe_band`) runs per partition:",
            "1. Map, per input partition, no communication: for each hash and band b emit a table row (b, key_b, id, "
            "hash), ~20 bytes. Partition key = (b, top p bits of key_b), 2^p partitions per band.",
            "2. Shuffle: each row goes to its own partition as a table row, and as a query row to every partition "
            "whose prefix is within r flips of its own (Σ_{k≤r} C(p, k) − 1 others; 5 at p = 5, r = 1). A query "
            "arriving with prefix distance k probes only the low w − p bits with ≤ r − k flips, so the probes per hash "
            "are still C(w, ≤r) in total (Vandermonde) and nothing else crosses the network: n · m · C(p, ≤r) rows "
            "(100M hashes, 3 bands, p = 5, t = 4: 1.8e9 rows, ~36 GB) instead of P copies of the column.",
            "3. Reduce, per partition: build the local direct-address table over the low w − p bits of the table "
            "rows, probe with the query rows, verify on the full 64 bits (both hashes travel with their rows), keep "
            "(i, j, d) only when query id < table id (each pair once per band) and b is the first band in which the "
            "pair is within its radius (decidable from the two hashes), so no global deduplication pass is needed.",
            "4. Components: the pairs (few next to n on real data) go to union-find on one machine while they fit, "
            "else to label propagation (min-label over a shuffle of edges by node id, a few rounds); the chaining "
            "guard then runs per cluster. Identical hashes are collapsed before step 1, as `near_edges` does, so a "
            "large group of equal hashes cannot make one partition huge.", "",
            "Each worker then holds only its partitions: with 100M hashes, 3 bands and 32 workers, ~9.4M table rows "
            "(~190 MB) and ~56M query rows at t = 4 (streamable in batches), never the whole column. Because the "
            "local table only spans w − p bits, bands can be wider than the 24-bit cap: two 32-bit bands with radii "
            "(2, 1) (exact, since (2+1) + (1+1) > 4; per-band radii with Σ(r_b + 1) > t are a generalisation the "
            "current code does not use) cost 562 probes and ~13 random candidates per hash at 100M instead of 67 "
            "probes and ~2,600 candidates, and p = 10 keeps the local tables at 22 bits, at the price of more query rows "
            "in the shuffle (C(10, ≤2) + C(10, ≤1) = 67 per hash, ~130 GB at 100M): the band width, the radii and p "
            "should come from one cost model that includes the shuffle volume."]
    return "\n".join(head + body + tail)


# ---------------------------------------------------------------- skewed (realistic) hashes

SKEW = "skew"
STAGE_PATH = "after: `near_edges` + `components` (the stage's path)"


def band_note(h: np.ndarray, t: int, search_py: Path | None) -> str:
    """The bands a search.py version uses on h: the old one's `choose_bands`, the new one's `plan_bands`."""
    mod = search_module(str(search_py) if search_py else None)
    if not hasattr(mod, "plan_bands"):
        b = mod.choose_bands(len(h), t)
        return f"{len(b.widths)} × {'/'.join(map(str, b.widths))} neighbouring bits, r={b.radius}"
    b = mod.plan_bands(h, t)
    kind = "neighbouring bits" if b == mod.Bands.contiguous(b.widths, b.radius) else "bits dealt by entropy"
    return f"{len(b.widths)} × {'/'.join(map(str, b.widths))} {kind}, r={b.radius}"


def skew_main(argv: list[str]) -> None:
    """`benchmarks/dedup.py skew`: `radius_pairs` on uniform vs realistic hashes (benchmarks/hashgen.py),
    the current search.py against an earlier revision's, then larger realistic columns with the current
    code alone. Each search runs in a child (wall time of the call; peak RSS = the child's ru_maxrss).
    Prints the RESULTS.md subsection and writes it to WORK/skew.md."""
    import hashgen

    ap = argparse.ArgumentParser(prog="benchmarks/dedup.py skew", description=skew_main.__doc__)
    ap.add_argument("--compare", default="1000000", help="sizes searched with both versions, uniform and realistic")
    ap.add_argument("--large", default="10000000", help="sizes searched with the current version, realistic only")
    ap.add_argument("--kinds", default="uniform,realistic", help="hash kinds at the --compare sizes")
    ap.add_argument("--stage", default="", help="sizes at which the stage's own path (near_edges + components, "
                                               "current version, realistic) is also timed")
    ap.add_argument("--threshold", type=int, default=8)
    ap.add_argument("--flip", type=float, default=hashgen.FLIP, help="per-bit flip probability of a resampled row")
    ap.add_argument("--before", default="70395a8", help="git revision whose curate/dedup/search.py is 'before'")
    ap.add_argument("--recall-queries", type=int, default=200)
    ap.add_argument("--max-wait", type=float, default=600)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", default="/tmp/curate-dedup-bench")
    a = ap.parse_args(argv)
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    t = a.threshold
    before = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", a.before], capture_output=True, text=True,
                            check=True).stdout.strip()
    old_py = work / f"search-{before}.py"
    old_py.write_text(subprocess.run(["git", "-C", str(ROOT), "show", f"{before}:curate/dedup/search.py"],
                                     capture_output=True, text=True, check=True).stdout)
    cmd = " ".join(["cd", str(ROOT), "&&", ".venv/bin/python", "benchmarks/dedup.py", SKEW,
                    *map(shlex.quote, argv)])
    started, code = time.time(), code_version()
    print(f"# {cmd}\n# {machine()}\n# {code}\n", flush=True)
    base = hashgen.base_hashes()
    runs = [(int(n), kind, v) for n in a.compare.split(",") if n for kind in a.kinds.split(",")
            for v in (f"before ({before})", "after")]
    runs += [(int(n), "realistic", "after") for n in a.large.split(",") if n]
    runs += [(int(n), "realistic", STAGE_PATH) for n in a.stage.split(",") if n]
    rows = []
    for n, kind, version in runs:
        h, pa, pb = (make_hashes(n, t, a.seed + n) if kind == "uniform"
                     else realistic_hashes(n, t, a.seed + n, a.flip, base))
        npy = work / f"skew-{n}-{kind}.npy"
        np.save(npy, h)
        search_py = old_py if version.startswith("before") else None
        print(f"n={n} {kind} {version} ...", flush=True)
        r = run_curate("clusters" if version == STAGE_PATH else "search", npy, t, 1, a.max_wait, search_py)
        i, j = np.minimum(r["i"], r["j"]), np.maximum(r["i"], r["j"])  # the stage's edges are unordered
        chk = check_pairs(h, t, i, j, r["d"], pa, pb, a.recall_queries, a.seed)
        del r["i"], r["j"], r["d"]
        bands = band_note(h, t, search_py)
        print(f"  {fmt_s(r['median'])}, CPU {fmt_s(r['cpu'])}, peak {fmt_mb(r['maxrss'])}, {r['pairs']:,} pairs, "
              f"planted {chk['planted_found']}/{chk['planted']}, sample {chk['sample_found']}/{chk['sample_truth']} "
              f"{check_note(chk)}; {bands}", flush=True)
        rows.append((n, kind, version, bands, r, chk))
        npy.unlink()
    md = skew_render(cmd, code, rows, a, len(base), time.time() - started)
    print("\n" + md)
    (work / "skew.md").write_text(md)


def skew_render(cmd: str, code: str, rows: list, a: argparse.Namespace, n_base: int, total: float) -> str:
    lines = ["### Hash search at 10M on realistic hashes (t=8)", "",
             f"Run {dt.date.today().isoformat()}, total {fmt_s(total)}, with:", "", "```", cmd, "```", "",
             f"Machine: {machine()}.", "", f"Code at the start of the run: {code}.", "",
             f"Realistic hashes (`benchmarks/hashgen.py`): each row one of {n_base:,} distinct real pHashes (curate's "
             "own `probe` + `fingerprint` on the 20,000 real-photo crops of benchmarks/data/photos-small-20000), "
             f"every bit flipped independently with probability {a.flip}; planted pairs, one per 20 rows, at exactly "
             f"1..{a.threshold} bits. Uniform: random 64-bit values, planted pairs at 0..{a.threshold} bits "
             "(`make_hashes`). `radius_pairs(hashes, t)` in a child process, one core; time = the call; peak RSS = "
             "the child's ru_maxrss (interpreter and the loaded column included); CPU = user + system of the "
             "child. Recall: every planted pair, and every neighbour within t of "
             f"{a.recall_queries} query rows (half planted, half any) by numpy brute force over the whole column; "
             "every reported distance recomputed.", "",
             "| hashes | kind | search.py | bands | time (wall) | CPU | peak RSS | pairs | planted found | "
             "sample pairs (brute force) | recall | conditions |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for n, kind, version, bands, r, chk in rows:
        recall = (chk["planted_found"] + chk["sample_found"]) / max(chk["planted"] + chk["sample_truth"], 1)
        lines.append(f"| {n_label(n)} | {kind} | {version} | {bands} | {fmt_s(r['median'])} | {fmt_s(r['cpu'])} | "
                     f"{fmt_mb(r['maxrss'])} | {r['pairs']:,} | {chk['planted_found']:,}/{chk['planted']:,} | "
                     f"{chk['sample_found']:,}/{chk['sample_truth']:,} | {recall:.4f}"
                     f"{'; ' + check_note(chk) if check_note(chk) else ''} | {busy_note(r)} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == CHILD_CURATE:
        curate_child(sys.argv[2:])
    elif len(sys.argv) > 1 and sys.argv[1] == SKEW:
        skew_main(sys.argv[2:])
    else:
        main()
