"""Semantic-duplicate search out of core: `curate.search_disk.similar_pairs_on_disk` over embedding
Parquet parts, its time and peak memory, and its recall.

    .venv/bin/python benchmarks/embed_search_disk.py --rows 1000000 [--part-rows 100000] [--similarity 0.78]
        [--sample 500] [--work /tmp/embed_search_disk] [--cell-dims 256]

Data: benchmarks/embed_search.py's `clustered` rows (1280 dimensions, float16, unit; N/20 cluster
centres; N/100 planted pairs at cosine 0.85-0.97), generated one part of `--part-rows` at a time
(seed 1000 + the part's number, so its centres and planted pairs are the part's own) and written as
WORK/out/embeddings/part-*.parquet with `curate.schema.embeddings_schema`: never all N rows in memory.
The search then runs in a child process (`--search`), so its peak RSS is the search's alone;
scratch files go to WORK. Recall: the share of (a) the planted pairs above the similarity and (b)
the pairs of `--sample` random query rows found by a brute-force pass over the parts, that the
search returns. Prints the figures, the per-phase times and the 10M projection (a Markdown row for
the "Embeddings: search out of core" section of RESULTS.md). The projection scales each phase by
its cost: the PCA (a fixed sample) stays; copy, assign, search (cells of a fixed size) and the
k-means (a fixed sample, cells in proportion to N) grow with N; the nearest-cells search (every row
against every centroid) with N squared.
"""
from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from embed_search import DIM, clustered  # noqa: E402

from curate.schema import embeddings_schema  # noqa: E402
from curate.search_disk import OutOfCore, similar_pairs_on_disk  # noqa: E402
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


def search(work: Path, similarity: float, cell_dims: int) -> None:
    """The child: the search over WORK/out, pairs to WORK/pairs.npy, figures as JSON on stdout."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(PeakSoFar())
    handler.setFormatter(logging.Formatter("%(message)s (peak RSS so far %(peak).2f GiB)"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    started, cpu = time.perf_counter(), time.process_time()
    got = similar_pairs_on_disk(Workspace(str(work / "out")), similarity, scratch=str(work),
                                disk=OutOfCore(cell_dims=cell_dims))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    np.save(work / "pairs.npy", np.stack([got.i, got.j], axis=1))
    print(json.dumps({"wall": wall, "cpu": cpu, "peak_gib": peak_rss(), "rows": len(got.sample_ids)}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--part-rows", type=int, default=100_000)
    parser.add_argument("--similarity", type=float, default=0.78)  # dedup.similarity's default
    parser.add_argument("--sample", type=int, default=500)
    parser.add_argument("--work", type=Path, default=Path("/tmp/embed_search_disk"))
    parser.add_argument("--cell-dims", type=int, default=OutOfCore().cell_dims)
    parser.add_argument("--search", action="store_true", help="(the child) search WORK/out")
    args = parser.parse_args()
    if args.search:
        search(args.work, args.similarity, args.cell_dims)
        return
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    queries = np.sort(np.random.default_rng(1).choice(args.rows, args.sample, replace=False))
    started = time.perf_counter()
    planted, query_vectors = generate(args.work / "out", args.rows, args.part_rows, args.similarity, queries)
    generated = time.perf_counter() - started
    child = subprocess.run([sys.executable, __file__, "--search", "--work", str(args.work),
                            "--similarity", str(args.similarity), "--cell-dims", str(args.cell_dims)],
                           capture_output=True, text=True, check=True)
    figures = json.loads(child.stdout.strip().splitlines()[-1])
    logged = re.findall(r"search_disk (\w+): .*?, ([\d.]+) s \(peak RSS so far ([\d.]+) GiB\)", child.stderr)
    phases = {name: float(seconds) for name, seconds, _peak in logged}
    found = set(map(tuple, np.load(args.work / "pairs.npy").tolist()))
    truth = brute_force(args.work / "out", queries, query_vectors, args.similarity)
    recall_planted = sum((int(a), int(b)) in found for a, b in planted) / max(1, len(planted))
    recall_sample = sum(p in found for p in truth) / max(1, len(truth))
    scale = 10_000_000 / args.rows
    linear = phases["copy"] + phases["assign"] - phases["nearest"] + phases["search"]  # per row, cells of a fixed size
    projected = phases["pca"] + (linear + phases["cells"]) * scale + phases["nearest"] * scale**2
    print(child.stderr.strip())
    print(f"generated {args.rows:,} rows in {generated:.0f} s; phases (s): {phases}")
    print(f"10M projection: pca (a fixed sample) + (copy + assign - nearest + search + cells) x {scale:g} "
          f"+ nearest x {scale**2:g} (rows x cells) = {projected:.0f} s")
    print(f"| {args.rows:,} | {len(found):,} | {figures['wall']:.0f} s | {figures['cpu']:.0f} s | "
          f"{figures['peak_gib']:.2f} GiB | {recall_planted:.4f} ({len(planted):,}) | "
          f"{recall_sample:.4f} ({len(truth):,}) | "
          + ", ".join(f"{name} {float(t):.0f} s / {float(peak):.2f}" for name, t, peak in logged) + " |")
    shutil.rmtree(args.work)


if __name__ == "__main__":
    main()
