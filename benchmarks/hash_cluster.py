"""The partitioned hash search (`curate.dedup.partitioned`) on a Dask LocalCluster with a memory
limit per worker: wall, CPU, peak RSS per worker, recall, per-partition costs, 100M projection.

    .venv/bin/python benchmarks/hash_cluster.py --sizes 1000000,10000000 --compare 1000000

Hashes: `hashgen.realistic_hashes(n, t, seed)` (real pHashes resampled with bit flips, one planted
pair per 20 rows at 1..t bits). Per size: a fresh LocalCluster (`--workers` processes x 1 thread,
`--memory-limit` each), `partitioned_pairs` with the work folder on local disk. Every process's RSS
and CPU (the driver, nannies and workers) are sampled every 0.25 s with psutil. Recall: every
planted pair; every neighbour within t of `--sample` rows (half planted) found by numpy brute force
over the whole column; every reported distance recomputed. At the `--compare` sizes the in-process
`search.radius_pairs` also runs (in the driver, after the cluster is closed) and its pairs must be
the same arrays. Prints one JSON line per size (and writes them to `--out`).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from hashgen import realistic_hashes  # noqa: E402

from curate.dedup.partitioned import partitioned_pairs  # noqa: E402
from curate.dedup.search import radius_pairs  # noqa: E402
from curate.imaging.hashes import hamming  # noqa: E402


class Sampler(threading.Thread):
    """Peak RSS per process and the last CPU time of every process in this process's tree."""

    def __init__(self, every: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.every, self.stop = every, threading.Event()
        self.peak: dict[int, int] = {}
        self.cpu: dict[int, float] = {}
        self.peak_total = 0

    def run(self) -> None:
        me = psutil.Process()
        while not self.stop.is_set():
            total = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    rss, t = p.memory_info().rss, p.cpu_times()
                except psutil.Error:
                    continue
                self.peak[p.pid] = max(self.peak.get(p.pid, 0), rss)
                self.cpu[p.pid] = t.user + t.system + t.children_user + t.children_system
                total += rss
            self.peak_total = max(self.peak_total, total)
            self.stop.wait(self.every)


def brute_sample(h: np.ndarray, pa: np.ndarray, k: int, t: int, seed: int) -> set[tuple[int, int]]:
    """Every pair (i < j) within t of k query rows (half of them planted rows), by brute force."""
    rng = np.random.default_rng(seed)
    rows = np.unique(np.concatenate([rng.choice(pa, k // 2, replace=False), rng.choice(len(h), k - k // 2)]))
    out: set[tuple[int, int]] = set()
    for lo in range(0, len(h), 2_000_000):
        d = hamming(h[rows][:, None], h[None, lo:lo + 2_000_000])
        qi, cj = np.nonzero(d <= t)
        for a, b in zip(rows[qi].tolist(), (cj + lo).tolist()):
            if a != b:
                out.add((min(a, b), max(a, b)))
    return out


def recall(h: np.ndarray, pairs: tuple[np.ndarray, np.ndarray, np.ndarray], pa: np.ndarray, pb: np.ndarray,
           truth: set[tuple[int, int]], t: int) -> dict[str, object]:
    i, j, d = pairs
    n = len(h)
    code = i * n + j  # sorted: pairs come sorted by (i, j)
    assert (np.diff(code) > 0).all(), "pairs repeated or unsorted"
    assert (d == hamming(h[i], h[j])).all() and (d <= t).all(), "a reported distance is wrong"
    planted = int(np.isin(pa * n + pb, code).sum())
    got = sum(int(np.isin(a * n + b, code)) for a, b in truth)
    return {"pairs": len(i), "planted_found": planted, "planted": len(pa), "sample_found": got,
            "sample_pairs": len(truth), "recall": min(planted / len(pa), got / max(len(truth), 1))}


def part_costs(parts: list[dict[str, float]]) -> dict[str, object]:
    """Max and sum of each reduce task cost, and a least-squares fit of the task's CPU seconds =
    a * rows read + b * candidates (rows read: own partition + neighbours)."""
    keys = ("seconds", "cpu_seconds", "own_rows", "rows_read", "rows_held", "candidates")
    arr = {k: np.array([p[k] for p in parts], dtype=np.float64) for k in keys}
    x = np.stack([arr["own_rows"] + arr["rows_read"], arr["candidates"]], axis=1)
    (a, b), *_ = np.linalg.lstsq(x, arr["cpu_seconds"], rcond=None)
    return {"tasks": len(parts), **{f"{k}_max": float(v.max()) for k, v in arr.items()},
            **{f"{k}_sum": float(v.sum()) for k, v in arr.items()}, "s_per_row": float(a), "s_per_candidate": float(b)}


def run_size(n: int, t: int, args: argparse.Namespace) -> dict[str, object]:
    from distributed import Client, LocalCluster

    h, pa, pb = realistic_hashes(n, t, args.seed)
    truth = brute_sample(h, pa, args.sample, t, args.seed)
    work = Path(args.work) / f"n{n}"
    shutil.rmtree(work, ignore_errors=True)
    load = []
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, memory_limit=args.memory_limit,
                      processes=True, host="127.0.0.1", dashboard_address=":0") as cluster, Client(cluster) as client:
        workers = set(client.run(os.getpid).values())
        sampler = Sampler()
        cpu0 = {p.pid: sum(p.cpu_times()[:4]) for p in [psutil.Process(), *psutil.Process().children(recursive=True)]}
        sampler.start()
        t0 = time.perf_counter()
        pairs, costs = partitioned_pairs(h, t, work, client, rows_per_task=args.rows_per_task)
        wall = time.perf_counter() - t0
        load.append(os.getloadavg()[0])
        sampler.stop.set()
        sampler.join()
        restarted = workers - set(client.run(os.getpid).values())
    cpu = sum(c - cpu0.get(pid, 0.0) for pid, c in sampler.cpu.items())
    shuffle_bytes = sum(f.stat().st_size for f in work.iterdir())
    shutil.rmtree(work, ignore_errors=True)
    layout = costs.layout
    assert layout is not None
    row: dict[str, object] = {
        "n": n, "t": t, "workers": args.workers, "memory_limit": args.memory_limit, "wall_s": round(wall, 1),
        "route_s": round(costs.route_seconds, 1), "search_s": round(costs.search_seconds, 1), "cpu_s": round(cpu, 1),
        "worker_peak_rss_mb": sorted(round(sampler.peak.get(w, 0) / 2**20) for w in workers),
        "driver_peak_rss_mb": round(sampler.peak[os.getpid()] / 2**20), "tree_peak_rss_mb": round(sampler.peak_total / 2**20),
        "workers_restarted": len(restarted), "bands": [len(b) for b in layout.bands.bits], "radius": layout.bands.radius,
        "part_bits": list(layout.part_bits),
        "shuffle_mb": round(shuffle_bytes / 2**20), "load_avg_end": load[0],
        **recall(h, pairs, pa, pb, truth, t), **part_costs(costs.parts)}
    if n in args.compare:
        t1 = time.perf_counter()
        i, j, d = radius_pairs(h, t)
        order = np.lexsort((j, i))
        row["in_process_s"] = round(time.perf_counter() - t1, 1)
        row["same_as_in_process"] = all(np.array_equal(x, y[order]) for x, y in zip(pairs, (i, j, d)))
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000000,10000000")
    ap.add_argument("--t", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--memory-limit", default="1.5GiB")
    ap.add_argument("--rows-per-task", type=int, default=4_000_000)
    ap.add_argument("--compare", default="1000000", help="sizes at which the in-process search also runs")
    ap.add_argument("--sample", type=int, default=100, help="rows whose neighbours are brute-forced")
    ap.add_argument("--work", default="/tmp/hash-cluster")
    ap.add_argument("--out", default="/tmp/hash-cluster.jsonl")
    args = ap.parse_args()
    args.compare = {int(x) for x in args.compare.split(",") if x}
    for n in (int(x) for x in args.sizes.split(",") if x):
        row = run_size(n, args.t, args)
        print(json.dumps(row), flush=True)
        with open(args.out, "a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
