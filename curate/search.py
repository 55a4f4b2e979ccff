"""Search over L2-normalised embeddings: every pair above a cosine similarity, and each row's
nearest neighbours. Pure functions over arrays (no I/O).

Up to EXACT_MAX rows both searches are exact: blocked matrix products, every pair and every
nearest neighbour found. Above it, inverted-file indexes (faiss IVF) over a PCA projection find
candidates in the cells nearest each query, and every candidate is then scored again on the full
embeddings, so the reported similarities are exact and only recall is approximate. There are
`IVF.tables` indexes, each with its own k-means cells (another seed), and a query probes
`nprobe` / tables cells in each: a near row that sits across a cell border in one table seldom
does in the other, which finds more of them than as many probes in one table (RESULTS.md,
"Embedding checks at scale" and "Embeddings: search out of core"):
- similar_pairs: the candidates are the rows above a slightly lower similarity in the projection;
  a pair is a candidate when either member's probes reach the other in any table (recall
  measured by `benchmarks/embed_search.py` against the exact search);
- neighbours: the candidates are each row's `rescore` x (k + 1) nearest in the projection in each
  table; the k best of them on the full embeddings are kept (recall@k measured by
  `benchmarks/embed_checks_scale.py`). A row whose probes reach fewer than k other rows is
  searched exactly.
The indexes hold every row's projection in 8-bit codes (faiss's scalar quantizer: `IVF.dims`
bytes a row a table, against 4 x dims in float32), which rank the candidates as well as float32
did at 1M rows (RESULTS.md, "Embedding checks at scale"); the similarities reported are re-scored
on the full embeddings either way. Queries go a block at a time, projected on the fly, so memory
beyond the inputs and outputs is the indexes (~(dims + 8) x tables bytes a row) and one block's
candidates.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

EXACT_MAX = 60_000  # rows: above this, the IVF index
BLOCK = 2048  # query rows per matrix product (memory: BLOCK x n floats)
PROJECT_BLOCK = 65_536  # rows projected at a time
CANDIDATE_FLOATS = 2**25  # neighbours above exact_max: candidates' full embeddings re-scored at a time


@dataclass(frozen=True)
class IVF:
    """How the index is built and probed at scale."""

    dims: int = 256  # PCA projection
    cells_per_row: float = 1 / 256  # nlist = rows * this (at least 64)
    nprobe: int = 48
    margin: float = 0.1  # candidates down to threshold - margin in the projection
    train_rows: int = 200_000
    rescore: int = 8  # neighbours: candidates re-scored exactly per neighbour wanted (x (k + 1))
    tables: int = 2  # independent sets of cells (k-means seeds); a query probes `probes_a_table` in each

    def probes_a_table(self, nlist: int) -> int:
        """The cells a query probes in each of the `tables` tables of `nlist` cells: `nprobe` split
        over the tables (at least one, at most every cell)."""
        return max(1, min(self.nprobe // max(1, self.tables), nlist))


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


def _index(x: np.ndarray, ivf: IVF) -> tuple[list[Any], Any]:
    """`ivf.tables` trained IVF indexes (k-means seeds 1, 2, ...; 8-bit codes), each filled with the
    PCA projection of every row of x, and the projection (`_project` applies it; x may be float16: it
    is projected a block at a time, never copied whole as float32)."""
    import faiss

    rng = np.random.default_rng(0)
    sample = _unit(x[np.sort(rng.choice(len(x), min(len(x), ivf.train_rows), replace=False))])
    dims = min(ivf.dims, x.shape[1])
    pca = faiss.PCAMatrix(x.shape[1], dims)
    pca.train(sample)
    projected = _project(pca, sample)
    del sample
    nlist = max(64, int(len(x) * ivf.cells_per_row))
    tables = []
    for seed in range(1, max(1, ivf.tables) + 1):
        index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(dims), dims, nlist, faiss.ScalarQuantizer.QT_8bit,
                                              faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.train(projected)
        index.nprobe = ivf.probes_a_table(nlist)
        tables.append(index)
    del projected
    for lo in range(0, len(x), PROJECT_BLOCK):
        block = _project(pca, x[lo:lo + PROJECT_BLOCK])
        for index in tables:
            index.add(block)
    return tables, pca


def _project(pca: Any, rows: np.ndarray) -> np.ndarray:
    """rows (any float dtype) in the PCA projection, L2-normalised, float32."""
    import faiss

    projected: np.ndarray = pca.apply(_unit(rows))
    faiss.normalize_L2(projected)
    return projected


def _pairs_ivf(x: np.ndarray, threshold: float, ivf: IVF) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tables, pca = _index(x, ivf)
    found_i, found_j, found_s = [], [], []
    for lo in range(0, len(x), BLOCK * 8):
        projected = _project(pca, x[lo:lo + BLOCK * 8])
        for index in tables:
            lims, _d, ids = index.range_search(projected, threshold - ivf.margin)
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
    _, first = np.unique(i * len(x) + j, return_index=True)  # found from both ends, or in both tables: once
    return i[first], j[first], s[first]


def similar_pairs(vectors: np.ndarray, threshold: float, ivf: IVF = IVF(), exact_max: int = EXACT_MAX
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, similarity) for every pair i < j of rows with cosine similarity >= threshold
    (exact up to `exact_max` rows, else the IVF index: see module doc)."""
    if len(vectors) <= exact_max:
        return _pairs_exact(_unit(vectors), threshold)
    return _pairs_ivf(vectors, threshold, ivf)


def neighbours(vectors: np.ndarray, k: int, ivf: IVF = IVF(), exact_max: int = EXACT_MAX
               ) -> tuple[np.ndarray, np.ndarray]:
    """(indices, similarities), each (n, k): every row's k most similar other rows, best first
    (exact up to `exact_max` rows, else the IVF index with exact similarities: see module doc)."""
    k = min(k, max(len(vectors) - 1, 0))
    if len(vectors) <= exact_max:
        return nearest(_unit(vectors), np.arange(len(vectors)), k)
    return _neighbours_ivf(vectors, k, ivf)


def nearest(x: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The exact k nearest other rows of x for each row numbered in `queries`, best first: blocked
    matrix products against EXACT_MAX rows of x at a time (x may be float16: converted a block at
    a time), the best k of each kept."""
    ids = np.zeros((len(queries), k), np.int64)
    sims = np.zeros((len(queries), k), np.float32)
    for lo in range(0, len(queries) if k else 0, BLOCK):
        rows = queries[lo:lo + BLOCK]
        q = _unit(x[rows])
        best: tuple[np.ndarray, np.ndarray] | None = None
        for start in range(0, len(x), EXACT_MAX):
            block = q @ _unit(x[start:start + EXACT_MAX]).T
            mine = np.flatnonzero((rows >= start) & (rows < start + block.shape[1]))
            block[mine, rows[mine] - start] = -np.inf  # not itself
            top = np.argpartition(-block, min(k, block.shape[1]) - 1, axis=1)[:, :k]
            found = (start + top, np.take_along_axis(block, top, axis=1))
            best = found if best is None else _merged(best, found, k)
        assert best is not None
        ids[lo:lo + len(rows)], sims[lo:lo + len(rows)] = _best_first(*best)
    return ids, sims


def _merged(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], k: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """The k best per row of two (ids, similarities) candidate sets."""
    ids, sims = np.hstack([a[0], b[0]]), np.hstack([a[1], b[1]])
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    return np.take_along_axis(ids, top, axis=1), np.take_along_axis(sims, top, axis=1)


def _best_first(ids: np.ndarray, sims: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-sims, axis=1, kind="stable")
    return np.take_along_axis(ids, order, axis=1), np.take_along_axis(sims, order, axis=1)


def _neighbours_ivf(x: np.ndarray, k: int, ivf: IVF) -> tuple[np.ndarray, np.ndarray]:
    """neighbours() above exact_max: the index over every row, then every row searched."""
    tables, pca = _index(x, ivf)
    return searched(x, tables, pca, np.arange(len(x)), k, ivf)


def searched(x: np.ndarray, tables: list[Any], pca: Any, queries: np.ndarray, k: int, ivf: IVF
             ) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest other rows of x for each row numbered in `queries`, from `_index`'s indexes
    and projection: the row's `ivf.rescore` x (k + 1) nearest in the projection in each table (a
    row found in several, once), scored again on x, the k best kept; a row with fewer than k
    candidates is searched exactly. Queries go CANDIDATE_FLOATS / (candidates x dims) at a time
    (the block's candidates, in float32)."""
    want = min(len(x), ivf.rescore * (k + 1))
    step = max(64, CANDIDATE_FLOATS // (want * len(tables) * x.shape[1]))
    ids = np.zeros((len(queries), k), np.int64)
    sims = np.zeros((len(queries), k), np.float32)
    for lo in range(0, len(queries), step):
        rows = queries[lo:lo + step]
        projected = _project(pca, x[rows])
        found = np.sort(np.hstack([index.search(projected, want)[1] for index in tables]).astype(np.int64), axis=1)
        found[:, 1:][found[:, 1:] == found[:, :-1]] = -1  # found in several tables: once
        exact = np.matmul(_unit(x[np.maximum(found, 0)]), _unit(x[rows])[:, :, None])[:, :, 0]  # full embeddings
        exact[(found < 0) | (found == rows[:, None])] = -np.inf  # no candidate; itself
        top = np.argsort(-exact, axis=1, kind="stable")[:, :k]
        ids[lo:lo + step], sims[lo:lo + step] = _best_first(np.take_along_axis(found, top, axis=1),
                                                            np.take_along_axis(exact, top, axis=1))
    short = np.flatnonzero(np.isneginf(sims).any(axis=1))
    if len(short):
        ids[short], sims[short] = nearest(x, queries[short], k)
    return ids, sims
