"""Semantic-duplicate search out of core: `curate.search_disk.similar_pairs_on_disk` over embedding
Parquet parts, its time and peak memory, and its recall.

    .venv/bin/python benchmarks/embed_search_disk.py --rows 1000000 [--part-rows 100000] [--similarity 0.78]
        [--sample 500] [--work /tmp/embed_search_disk] [--cell-dims 256] [--cells N] [--two-level-cells N]
        [--group-probes N] [--nprobe 48] [--tables 2] [--train-rows 200000] [--keep]
        [--quantizer [--quantizer-rows 100000] [--cell-sample 2000] [--curve 24,32,48]]
        [--cluster-workers 4 [--memory-limit 1.5GiB]]

Data: benchmarks/embed_search.py's `clustered` rows (1280 dimensions, float16, unit; N/20 cluster
centres; N/100 planted pairs at cosine 0.85-0.97), generated one part of `--part-rows` at a time
(seed 1000 + the part's number, so its centres and planted pairs are the part's own) and written as
WORK/out/embeddings/part-*.parquet with `curate.schema.embeddings_schema`: never all N rows in
memory. The search then runs in a child process (`--search`), so its peak RSS is the search's
alone; scratch files go to WORK, and its log to WORK/search.log as it runs. Recall: the share of
(a) the planted pairs above the similarity and (b) the pairs of `--sample` random query rows found
by a brute-force pass over the parts, that the search returns. Prints the figures, the per-phase
times (a Markdown row for the "Embeddings: search out of core" section of RESULTS.md) and the part
of the 10M projection that grows with N: the PCA (a fixed sample) stays; copy, assign without the
nearest-cells search, and search (cells of a fixed size) x 10M / N.

`--quantizer`: only the k-means cells and the nearest cells of the first `--quantizer-rows` rows
(`--cells`: 10M's count, 39,062, on 1M rows) - the k-means time (a fixed sample: the same at 10M
for the same cells), the nearest-cells time per row (x 10M: the rest of the projection) and the
share of each of `--cell-sample` random rows' true `nprobe` nearest cells (brute force over the
centroids) the search finds (in the first table), and the share of the planted pairs among those
rows that are candidates (one row's nearest cell among the other's probed, in some table), at the
default and at each number of probes a table in `--curve`: how recall follows the probes and the
tables, without the search.
`--cluster-workers N`: the copy, assign and search tasks run on a Dask LocalCluster of N worker
processes (one thread and `--memory-limit` each; the partitioned form of the search), and the
peak RSS of each worker is sampled (`hash_cluster.Sampler`); CPU is then the driver's and the
workers'.
`--keep` keeps WORK's generated data and reuses it when WORK holds the same --rows, --part-rows,
--similarity and --sample.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from embed_search import DIM, clustered  # noqa: E402
from hash_cluster import Sampler  # noqa: E402

from curate.engine import run_tasks  # noqa: E402
from curate.schema import embeddings_schema  # noqa: E402
from curate.search import IVF  # noqa: E402
from curate.search_disk import (  # noqa: E402
    OutOfCore,
    TwoLevel,
    _batches,
    _copy,
    _fit_cells,
    _fit_pca,
    _leading,
    _projected,
    similar_pairs_on_disk,
)
from curate.tasks import in_process  # noqa: E402
from curate.workspace import Workspace  # noqa: E402


def generate(out: Path, rows: int, part_rows: int, similarity: float, queries: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """Write the parts; return the planted pairs above `similarity` (global row numbers, (k, 2))
    and the vectors of the rows numbered in `queries` (sorted), float32."""
    ws = Workspace(str(out))
    ws.claim()
    schema = embeddings_schema(DIM, "synthetic")
    planted, found = [], []
    for k, lo in enumerate(range(0, rows, part_rows)):
        x, pairs = clustered(min(part_rows, rows - lo), seed=1000 + k)
        sims = np.einsum("ij,ij->i", x[pairs[:, 0]].astype(np.float32), x[pairs[:, 1]].astype(np.float32))
        planted.append(lo + pairs[sims >= similarity])
        mine = queries[(queries >= lo) & (queries < lo + len(x))]
        found.append(x[mine - lo].astype(np.float32))
        table = pa.table({"sample_id": pa.array([f"r{lo + r}" for r in range(len(x))]),
                          "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1), pa.float16()), DIM),
                          "error": pa.nulls(len(x), pa.string())}, schema=schema)
        ws.write_table(f"embeddings/part-{k:05d}.parquet", table, schema)
    return np.concatenate(planted), np.concatenate(found)


def brute_force(out: Path, queries: np.ndarray, vectors: np.ndarray, similarity: float) -> set[tuple[int, int]]:
    """Every pair (query, any row) above `similarity`, by a pass over the parts."""
    found: set[tuple[int, int]] = set()
    lo = 0
    for part in Workspace(str(out)).parts("embeddings"):
        column = pq.read_table(part, columns=["embedding"]).column("embedding").combine_chunks()
        x = column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), DIM).astype(np.float32)
        r, q = np.nonzero(x @ vectors.T >= similarity)
        for a, b in zip((lo + r).tolist(), queries[q].tolist()):
            if a != b:
                found.add((min(a, b), max(a, b)))
        lo += len(x)
    return found


def peak_rss() -> float:
    """This process's peak RSS in GiB: VmHWM, which (unlike ru_maxrss) a child does not inherit
    from its parent's peak across fork and exec."""
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status)[1]) / 2**20  # type: ignore[index]


class PeakSoFar(logging.Filter):
    """Adds the peak RSS so far to each log record (`peak`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.peak = peak_rss()
        return True


def logged() -> None:
    """The child's log: INFO to stderr, each line with the peak RSS so far."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(PeakSoFar())
    handler.setFormatter(logging.Formatter("%(message)s (peak RSS so far %(peak).2f GiB)"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])


def search(work: Path, similarity: float, ivf: IVF, disk: OutOfCore, workers: int, memory_limit: str) -> None:
    """The child: the search over WORK/out (its copy, assign and search tasks on a LocalCluster of
    `workers` processes when > 0), pairs to WORK/pairs.npy, figures as JSON on stdout."""
    logged()
    with contextlib.ExitStack() as stack:
        client, pids = None, []
        if workers:
            from distributed import Client, LocalCluster

            cluster = stack.enter_context(LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                       memory_limit=memory_limit, host="127.0.0.1",
                                                       dashboard_address=":0"))
            client = stack.enter_context(Client(cluster))
            pids = list(client.run(os.getpid).values())
        sampler = Sampler()
        sampler.start()
        worker_cpu0 = {pid: sum(psutil.Process(pid).cpu_times()[:2]) for pid in pids}
        started, cpu = time.perf_counter(), time.process_time()
        got = similar_pairs_on_disk(Workspace(str(work / "out")), similarity, scratch=str(work), ivf=ivf, disk=disk,
                                    run=functools.partial(run_tasks, client))
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        cpu += sum(sum(psutil.Process(pid).cpu_times()[:2]) - c for pid, c in worker_cpu0.items())
        sampler.stop.set()
        sampler.join()
    np.save(work / "pairs.npy", np.stack([got.i, got.j], axis=1))
    print(json.dumps({"wall": wall, "cpu": cpu, "peak_gib": peak_rss(), "rows": len(got.sample_ids),
                      "workers": workers, "memory_limit": memory_limit,
                      "worker_peak_gib": [sampler.peak.get(pid, 0) / 2**30 for pid in pids]}))


def quantizer(work: Path, ivf: IVF, disk: OutOfCore, sample: int, limit: int, curve: list[int]) -> None:
    """The child, `--quantizer`: the search's copy, PCA and cells, then the nearest cells of the
    first `limit` rows; the k-means and nearest-cells times, the share of their true nearest cells
    `sample` random rows find, and the share of the planted pairs among those rows (WORK/planted.npy)
    that are candidates (one's nearest cell among the other's cells found: what the search compares)
    with these cells and with the true ones (the first table), and that share with the first 1, 2,
    ... tables at each number of probes a table in `curve` (how recall would follow the tables and
    the probes), as JSON on stdout."""
    logged()
    planted = np.load(work / "planted.npy")
    with tempfile.TemporaryDirectory(prefix="quantizer-", dir=work) as tmp:
        vectors = Path(tmp) / "vectors.f16"
        ids, dim = _copy(Workspace(str(work / "out")), Path(tmp), disk, in_process)
        n = len(ids)
        pca, train = _fit_pca(vectors, n, dim, ivf)
        started = time.perf_counter()
        tables, nlist = _fit_cells(train, n, ivf, disk)
        per_table = ivf.probes_a_table(nlist)  # what the search probes in each table
        probes = max([per_table, *curve])
        indexes = [cells.index() for cells in tables]
        index = indexes[0]
        kmeans = time.perf_counter() - started
        del train
        searched = min(n, limit)
        pairs = planted[planted.max(axis=1) < searched]
        random = np.random.default_rng(2).choice(searched, min(searched, sample), replace=False)
        picked = np.unique(np.concatenate([random, pairs.ravel()]))
        nearest, rows, found_cells = 0.0, [], []
        for lo, batch in _batches(vectors, dim, 0, searched, disk.batch_rows):
            leading = _leading(_projected(pca, batch), disk)
            started = time.perf_counter()
            found = [each.search(leading, probes)[1] for each in indexes]
            nearest += time.perf_counter() - started
            mine = picked[(picked >= lo) & (picked < lo + len(batch))] - lo
            rows.append(leading[mine])
            found_cells.append(np.stack([cells[mine] for cells in found]))
    every = np.concatenate(found_cells, axis=1)  # (tables, rows, probes)
    got = every[0]
    truth = (index.flat if isinstance(index, TwoLevel) else index).search(np.concatenate(rows), probes)[1]
    at, pair_rows = np.searchsorted(picked, random), np.searchsorted(picked, pairs)
    by_probes = {f"{t} x {p}": candidates(pair_rows, every[:t, :, :p]) for t in range(1, len(tables) + 1) for p in curve}
    got, truth = got[:, :per_table], truth[:, :per_table]
    kept = [len(set(a) & set(b)) / len(a) for a, b in zip(got[at].tolist(), truth[at].tolist())]
    print(json.dumps({"rows": n, "searched": searched, "cells": nlist, "tables": len(tables), "nprobe": per_table,
                      "two_level": isinstance(index, TwoLevel),
                      "kmeans": kmeans, "nearest": nearest, "true_cells_kept": float(np.mean(kept)),
                      "nearest_kept": float(np.mean(got[at, 0] == truth[at, 0])), "pairs": len(pairs),
                      "pairs_candidates": candidates(pair_rows, every[:, :, :per_table]),
                      "pairs_candidates_true_cells": candidates(pair_rows, truth), "by_probes": by_probes,
                      "peak_gib": peak_rss()}))


def candidates(pairs: np.ndarray, cells: np.ndarray) -> float:
    """The share of `pairs` (rows of `cells`: (rows, probes), or (tables, rows, probes)) where in
    some table one row's first cell is among the other's."""
    met = np.zeros(len(pairs), bool)
    for table in cells.reshape(-1, *cells.shape[-2:]):
        a, b = table[pairs[:, 0]], table[pairs[:, 1]]
        met |= (a == b[:, :1]).any(axis=1) | (b == a[:, :1]).any(axis=1)
    return float(met.mean())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--part-rows", type=int, default=100_000)
    parser.add_argument("--similarity", type=float, default=0.78)  # dedup.similarity's default
    parser.add_argument("--sample", type=int, default=500)
    parser.add_argument("--work", type=Path, default=Path("/tmp/embed_search_disk"))
    default = OutOfCore()
    parser.add_argument("--cell-dims", type=int, default=default.cell_dims)
    parser.add_argument("--cells", type=int, default=default.cells)
    parser.add_argument("--two-level-cells", type=int, default=default.two_level_cells)
    parser.add_argument("--group-probes", type=int, default=default.group_probes)
    parser.add_argument("--nprobe", type=int, default=IVF().nprobe, help="cells each row probes (IVF.nprobe), "
                                                                         "split over the tables")
    parser.add_argument("--tables", type=int, default=IVF().tables, help="independent sets of cells (IVF.tables)")
    parser.add_argument("--train-rows", type=int, default=IVF().train_rows,
                        help="rows the PCA and the k-means cells are fitted on (IVF.train_rows)")
    parser.add_argument("--cluster-workers", type=int, default=0, help="run the search's tasks on a LocalCluster of this many workers")
    parser.add_argument("--memory-limit", default="1.5GiB", help="--cluster-workers: each worker's memory limit")
    parser.add_argument("--keep", action="store_true", help="keep WORK's data; reuse it if it matches")
    parser.add_argument("--quantizer", action="store_true", help="only the cells and nearest cells")
    parser.add_argument("--quantizer-rows", type=int, default=100_000, help="--quantizer: rows searched")
    parser.add_argument("--cell-sample", type=int, default=2_000, help="--quantizer: rows whose true cells are checked")
    parser.add_argument("--curve", default="", help="--quantizer: numbers of probes in each table (24,48,...) at "
                                                    "which to count the planted pairs that are candidates")
    parser.add_argument("--search", action="store_true", help="(the child) search WORK/out")
    args = parser.parse_args()
    disk = OutOfCore(cell_dims=args.cell_dims, cells=args.cells, two_level_cells=args.two_level_cells,
                     group_probes=args.group_probes)
    if args.search:
        ivf = IVF(nprobe=args.nprobe, train_rows=args.train_rows, tables=args.tables)
        (quantizer(args.work, ivf, disk, args.cell_sample, args.quantizer_rows,
                   [int(p) for p in args.curve.split(",") if p]) if args.quantizer
         else search(args.work, args.similarity, ivf, disk, args.cluster_workers, args.memory_limit))
        return
    planted, query_vectors, queries, generated = prepared(args)
    with open(args.work / "search.log", "w+") as log:  # the child's log, to follow a long run as it goes
        child = subprocess.run([sys.executable, __file__, "--search", "--work", str(args.work)]
                               + sys.argv[1:], stdout=subprocess.PIPE, stderr=log, text=True, check=True)
        log.seek(0)
        said = log.read()
    print(said.strip())
    figures = json.loads(child.stdout.strip().splitlines()[-1])
    if args.quantizer:
        report_quantizer(figures)
    else:
        report(args, said, figures, planted, queries, query_vectors, generated)
    if not args.keep:
        shutil.rmtree(args.work)


def prepared(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """WORK's data (generated, or reused with --keep when WORK/data.json matches): the planted
    pairs, the query rows' vectors, the query rows and the generation time."""
    key = {k: getattr(args, k) for k in ("rows", "part_rows", "similarity", "sample")}
    saved = args.work / "data.json"
    if args.keep and saved.exists() and json.loads(saved.read_text()) == key:
        return (np.load(args.work / "planted.npy"), np.load(args.work / "query_vectors.npy"),
                np.load(args.work / "queries.npy"), 0.0)
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    queries = np.sort(np.random.default_rng(1).choice(args.rows, args.sample, replace=False))
    started = time.perf_counter()
    planted, query_vectors = generate(args.work / "out", args.rows, args.part_rows, args.similarity, queries)
    for name, array in (("planted", planted), ("query_vectors", query_vectors), ("queries", queries)):
        np.save(args.work / f"{name}.npy", array)
    saved.write_text(json.dumps(key))
    return planted, query_vectors, queries, time.perf_counter() - started


def report_quantizer(figures: dict) -> None:
    """Print `--quantizer`'s figures, per row, and their share of a 10M run at this cell count."""
    per_row = figures["nearest"] / figures["searched"]
    print(f"{figures['rows']:,} rows, {figures['tables']} x {figures['cells']:,} cells, two-level {figures['two_level']}: "
          f"k-means {figures['kmeans']:.1f} s, nearest cells of {figures['searched']:,} rows {figures['nearest']:.1f} s "
          f"({per_row * 1e6:.1f} us a row), true {figures['nprobe']} nearest cells found {figures['true_cells_kept']:.3f} "
          f"(the nearest {figures['nearest_kept']:.3f}; first table), planted pairs that are candidates "
          f"{figures['pairs_candidates']:.4f} ({figures['pairs']:,}; the first table's true cells alone "
          f"{figures['pairs_candidates_true_cells']:.4f}), "
          + "".join(f"{key} probes {share:.4f}, " for key, share in figures["by_probes"].items())
          + f"peak RSS {figures['peak_gib']:.2f} GiB; at 10M rows: k-means (the same fixed sample) + "
          f"nearest x 10M = {figures['kmeans'] + per_row * 1e7:.0f} s")


def report(args: argparse.Namespace, stderr: str, figures: dict, planted: np.ndarray, queries: np.ndarray,
           query_vectors: np.ndarray, generated: float) -> None:
    """Print the search's recall, phases and the linear part of the 10M projection."""
    logged = re.findall(r"search_disk (\w+): .*?, ([\d.]+) s \(peak RSS so far ([\d.]+) GiB\)", stderr)
    phases = {name: float(seconds) for name, seconds, _peak in logged}
    found = set(map(tuple, np.load(args.work / "pairs.npy").tolist()))
    truth = brute_force(args.work / "out", queries, query_vectors, args.similarity)
    recall_planted = sum((int(a), int(b)) in found for a, b in planted) / max(1, len(planted))
    recall_sample = sum(p in found for p in truth) / max(1, len(truth))
    scale = 10_000_000 / args.rows
    linear = phases["copy"] + phases["assign"] - phases["nearest"] + phases["search"]  # per row, cells of a fixed size
    print(f"generated {args.rows:,} rows in {generated:.0f} s (0: reused); phases (s): {phases}")
    print(f"10M projection, without the k-means and the nearest-cells search: pca (a fixed sample) + "
          f"(copy + assign - nearest + search) x {scale:g} = {phases['pca'] + linear * scale:.0f} s "
          f"(cells of the same size: add the nearest-cells search, rows x cells, and the search's growth "
          f"with the rows a cell above OutOfCore.larger_cells_above)")
    print(f"| {args.rows:,} | {len(found):,} | {figures['wall']:.0f} s | {figures['cpu']:.0f} s | "
          f"{figures['peak_gib']:.2f} GiB | {recall_planted:.4f} ({len(planted):,}) | "
          f"{recall_sample:.4f} ({len(truth):,}) | "
          + ", ".join(f"{name} {float(t):.0f} s / {float(peak):.2f}" for name, t, peak in logged) + " |")
    if figures["workers"]:
        print(f"copy, assign and search tasks on {figures['workers']} workers ({figures['memory_limit']} each): "
              f"peak RSS a worker {', '.join(f'{g:.2f}' for g in sorted(figures['worker_peak_gib']))} GiB; "
              f"driver {figures['peak_gib']:.2f} GiB; CPU of the driver and the workers {figures['cpu']:.0f} s")


if __name__ == "__main__":
    main()
