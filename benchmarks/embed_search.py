"""Semantic-duplicate search at scale: every pair above a cosine similarity among N embeddings,
with `curate.search.similar_pairs`, against the exact search on a sample of queries.

    .venv/bin/python benchmarks/embed_search.py [--rows 1000000] [--similarity 0.78] [--sample 2000]

Data: clustered synthetic embeddings of EfficientNet-Lite0's size (1280 dimensions, L2-normalised,
float16 as curate stores them): N/20 cluster centres, each image its centre plus noise, so
neighbours are crowded as in a real collection; plus N/100 planted near-duplicate pairs (cosine
0.85-0.97). Recall = the share of the pairs above the similarity that the search returns, over
(a) every planted pair and (b) every pair of `--sample` random query rows found by a brute-force
pass over all N rows. Time and peak memory (RSS of this process, which holds the data too) are
measured around the search. Writes the "Embeddings: search at scale" section of RESULTS.md.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from hostinfo import cpu_model, ram_gib  # noqa: E402
from results import write_section  # noqa: E402

from curate.search import IVF, similar_pairs  # noqa: E402

SECTION = "## Embeddings: search at scale"
DIM = 1280


def clustered(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, DIM) float16 unit rows, and the planted pairs (k, 2)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(1, n // 20), DIM)).astype(np.float32)
    out = np.empty((n, DIM), np.float16)
    for lo in range(0, n, 100_000):
        hi = min(n, lo + 100_000)
        x = centres[rng.integers(0, len(centres), hi - lo)] + 1.3 * rng.normal(size=(hi - lo, DIM)).astype(np.float32)
        out[lo:hi] = x / np.linalg.norm(x, axis=1, keepdims=True)
    pairs = rng.choice(n, size=(n // 100, 2), replace=False)
    for a, b in pairs:  # b becomes a near copy of a
        noise = rng.normal(size=DIM).astype(np.float32)
        noise /= np.linalg.norm(noise)
        mix = rng.uniform(0.25, 0.5)
        x = out[a].astype(np.float32) * (1 - mix) + noise * mix
        out[b] = x / np.linalg.norm(x)
    return out, np.sort(pairs, axis=1)


def brute_force(x: np.ndarray, queries: np.ndarray, threshold: float) -> set[tuple[int, int]]:
    found = set()
    for q in queries:
        sims = x @ x[q].astype(np.float32)
        for j in np.flatnonzero(sims >= threshold):
            if j != q:
                found.add((min(q, int(j)), max(q, int(j))))
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--similarity", type=float, default=0.78)  # dedup.similarity's default
    parser.add_argument("--sample", type=int, default=2000)
    args = parser.parse_args()
    x, planted = clustered(args.rows)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    started = time.perf_counter()
    i, j, _s = similar_pairs(x, args.similarity)
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    found = set(zip(i.tolist(), j.tolist()))
    xs = x.astype(np.float32)
    planted_above = [(int(a), int(b)) for a, b in planted if float(xs[a] @ xs[b]) >= args.similarity]
    queries = np.random.default_rng(1).choice(args.rows, args.sample, replace=False)
    truth = brute_force(xs, queries, args.similarity)
    recall_planted = sum(p in found for p in planted_above) / max(1, len(planted_above))
    recall_sample = sum(p in found for p in truth) / max(1, len(truth))
    method = "exact (blocked matrix products)" if args.rows <= 60_000 else (
        f"IVF over a {IVF().dims}-dimension PCA, nprobe {IVF().nprobe} over {IVF().tables} tables of cells (8-bit "
        "codes), candidates re-scored exactly")
    lines = [SECTION, "",
             f"Command: `.venv/bin/python benchmarks/embed_search.py --rows {args.rows} --similarity {args.similarity} "
             f"--sample {args.sample}`  ",
             f"Machine: {cpu_model()}, {os.cpu_count()} cores, {ram_gib():.0f} GiB. Clustered synthetic embeddings "
             f"({DIM} dimensions, float16), {args.rows:,} rows; search: {method}.", "",
             "| rows | pairs found | time | peak memory (process) | recall, planted pairs | recall, pairs of "
             "sampled queries (brute force) |", "|---:|---:|---:|---:|---:|---:|",
             f"| {args.rows:,} | {len(found):,} | {elapsed:.0f} s | {peak:.2f} GiB (data alone {before:.2f}) | "
             f"{recall_planted:.4f} ({len(planted_above):,}) | {recall_sample:.4f} ({len(truth):,}) |", ""]
    body = "\n".join(lines) + "\n"
    write_section(SECTION, body, keep_notes=True)  # keeps the hand-written "### Notes" (100M on paper)
    print(body)


if __name__ == "__main__":
    main()
