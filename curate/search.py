"""Search over L2-normalised embeddings: every pair above a cosine similarity, and each row's
nearest neighbours. Pure functions over arrays (no I/O).

Up to EXACT_MAX rows the search is exact: blocked matrix products, every pair found. Above it,
an inverted-file index (faiss IVF) over a PCA projection finds candidates, at a slightly lower
similarity, in the `nprobe` cells nearest each query; a pair is a candidate when either member's
probes reach the other; every candidate is then scored again on the full embeddings, so the
reported similarities are exact and recall is what the probes reach
(measured by `benchmarks/embed_search.py` against the exact search).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

EXACT_MAX = 60_000  # rows: above this, the IVF index
BLOCK = 2048  # query rows per matrix product (memory: BLOCK x n floats)


@dataclass(frozen=True)
class IVF:
    """How the index is built and probed at scale."""

    dims: int = 256  # PCA projection
    cells_per_row: float = 1 / 256  # nlist = rows * this (at least 64)
    nprobe: int = 48
    margin: float = 0.1  # candidates down to threshold - margin in the projection
    train_rows: int = 200_000


def _unit(vectors: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(vectors, dtype=np.float32)


def _pairs_exact(x: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    found_i, found_j, found_s = [], [], []
    for lo in range(0, len(x), BLOCK):
        sims = x[lo:lo + BLOCK] @ x[lo:].T  # only j >= lo: each pair once
        i, j = np.nonzero(sims >= threshold)
        keep = lo + i < lo + j
        found_i.append(lo + i[keep])
        found_j.append(lo + j[keep])
        found_s.append(sims[i[keep], j[keep]])
    return _joined(found_i, found_j, found_s)


def _joined(i: list[np.ndarray], j: list[np.ndarray], s: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray,
                                                                                   np.ndarray]:
    if not i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    return (np.concatenate(i).astype(np.int64), np.concatenate(j).astype(np.int64),
            np.concatenate(s).astype(np.float32))


def _index(x: np.ndarray, ivf: IVF) -> tuple[Any, np.ndarray]:
    """A trained, filled IVF index over the PCA projection of x, and the projected rows (x may
    be float16: it is projected a block at a time, never copied whole as float32)."""
    import faiss

    rng = np.random.default_rng(0)
    sample = _unit(x[np.sort(rng.choice(len(x), min(len(x), ivf.train_rows), replace=False))])
    dims = min(ivf.dims, x.shape[1])
    pca = faiss.PCAMatrix(x.shape[1], dims)
    pca.train(sample)
    projected = np.empty((len(x), dims), np.float32)
    for lo in range(0, len(x), 65536):
        projected[lo:lo + 65536] = pca.apply(_unit(x[lo:lo + 65536]))
    faiss.normalize_L2(projected)
    nlist = max(64, int(len(x) * ivf.cells_per_row))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dims), dims, nlist, faiss.METRIC_INNER_PRODUCT)
    train = pca.apply(sample)
    faiss.normalize_L2(train)
    index.train(train)
    index.add(projected)
    index.nprobe = ivf.nprobe
    return index, projected


def _pairs_ivf(x: np.ndarray, threshold: float, ivf: IVF) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    index, projected = _index(x, ivf)
    found_i, found_j, found_s = [], [], []
    for lo in range(0, len(x), BLOCK * 8):
        lims, _d, ids = index.range_search(projected[lo:lo + BLOCK * 8], threshold - ivf.margin)
        q = lo + np.repeat(np.arange(len(lims) - 1), np.diff(lims).astype(np.int64))
        keep = q != ids  # a pair counts when either member's probes reach the other's cell
        q, j = q[keep], ids[keep].astype(np.int64)
        q, j = np.minimum(q, j), np.maximum(q, j)
        sims = np.einsum("ij,ij->i", _unit(x[q]), _unit(x[j]))  # exact, on the full embeddings
        hit = sims >= threshold
        found_i.append(q[hit])
        found_j.append(j[hit])
        found_s.append(sims[hit])
    i, j, s = _joined(found_i, found_j, found_s)
    _, first = np.unique(i * len(x) + j, return_index=True)  # found from both ends: once, in (i, j) order
    return i[first], j[first], s[first]


def similar_pairs(vectors: np.ndarray, threshold: float, ivf: IVF = IVF(), exact_max: int = EXACT_MAX
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, similarity) for every pair i < j of rows with cosine similarity >= threshold
    (exact up to `exact_max` rows, else the IVF index: see module doc)."""
    if len(vectors) <= exact_max:
        return _pairs_exact(_unit(vectors), threshold)
    return _pairs_ivf(vectors, threshold, ivf)


def neighbours(vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, similarities), each (n, k): every row's k most similar other rows, best first
    (exact: blocked matrix products)."""
    x = _unit(vectors)
    k = min(k, max(len(x) - 1, 0))
    ids = np.zeros((len(x), k), np.int64)
    sims = np.zeros((len(x), k), np.float32)
    for lo in range(0, len(x), BLOCK):
        block = x[lo:lo + BLOCK] @ x.T
        block[np.arange(len(block)), lo + np.arange(len(block))] = -np.inf  # not itself
        top = np.argpartition(-block, k - 1, axis=1)[:, :k] if k else np.zeros((len(block), 0), np.int64)
        top_sims = np.take_along_axis(block, top, axis=1)
        order = np.argsort(-top_sims, axis=1, kind="stable")
        ids[lo:lo + len(block)] = np.take_along_axis(top, order, axis=1)
        sims[lo:lo + len(block)] = np.take_along_axis(top_sims, order, axis=1)
    return ids, sims
