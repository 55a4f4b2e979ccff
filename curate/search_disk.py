"""Every pair of embeddings above a cosine similarity, out of core: for collections whose vectors do
not fit in memory (10M x 1280 float16 is 25.6 GB).

The same search as `curate.search.similar_pairs` above its exact size (a PCA projection, cells from
k-means, each row compared with the rows whose nearest cell is one of its `IVF.nprobe` nearest
cells, candidates above threshold - `IVF.margin` in the projection scored again on the full
vectors), but run as passes over files in a scratch folder:

1. copy: one task a part of OUT/embeddings/, read a record batch at a time, writes its rows with
   an embedding to a file of its own; the files are joined, in part order (read_embeddings' rows,
   in its order), into `vectors.f16`, a row-ordered float16 matrix;
2. pca, cells: `IVF.train_rows` rows sampled from it fit the PCA projection, then the k-means
   cells in its first `OutOfCore.cell_dims` components: `IVF.tables` independent sets of
   them (k-means seeds), a pair being a candidate when it meets in any: a near pair that
   straddles the cells of one set seldom straddles those of the other, and as the cells multiply
   that buys far more recall than more probes in one set (RESULTS.md, "Embeddings: search out of
   core", "Tables of cells"). Up to `OutOfCore.two_level_cells` cells
   (1M rows), one k-means, and a row's nearest cells are found by brute force (a matrix product
   with the centroids: faster here than an HNSW graph, see RESULTS.md "Embeddings: search out of
   core"). Above (10M rows: 19,531 cells, `cell_count`), the k-means would grow with cells x sample, so the
   cells come from two k-means levels (~sqrt(cells) groups, then each group's rows into its share
   of cells); the nearest cells stay brute force (rows x cells) unless `OutOfCore.group_probes`
   is set: then a row's nearest cells are the nearest among the cells listed under its nearest
   groups (`TwoLevel`, ~sqrt(cells) products a row; it loses pairs on the benchmark's data, see
   RESULTS.md);
3. assign: one task a range of `OutOfCore.assign_rows` rows of `vectors.f16` (run as the search's
   below), read a batch at a time: each row's projection goes to its place in `proj.f16`
   (float16, `IVF.dims` each), and one (cell, row) entry per cell of its `nprobe` / tables nearest
   in each table (a table's cells numbered after the previous table's) to the task's
   `entries-<task>.u64`, sorted by bucket (a range of cells): a shuffle to disk, each bucket a
   slice of every task's file;
4. search: one task a bucket (in this process, or on a Dask cluster's workers, which must see
   the scratch folder), each cell's probing rows times the rows it holds (one
   matrix product in the projection), pairs above threshold - margin kept; then re-scored
   exactly on `vectors.f16`, those >= threshold kept.

Memory: one batch (`OutOfCore.batch_rows` rows; but a Parquet row group is decoded whole), an
assign task's entries (8 x nprobe bytes for each of its rows, and their sort), one bucket
(`OutOfCore.bucket_entries` entries: their rows' projections, float16), the index (PCA, each
table's centroids: 40 MB a table at 10M, twice in `TwoLevel`) and the projected training sample
(float32); per row, only the sample ids (`sample_ids`, their bytes + 4) and the pairs found.
Files are read through windows of `WINDOW_BYTES` mapped at a time, so the page cache of the
scratch files never counts as this process's memory. Scratch: 2 x dim + 2 x dims + 8 x nprobe
bytes per row (10M x 1280, dims 256, nprobe 48: 34 GB), deleted when the search ends.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate.search import IVF
from curate.tasks import RowRange, Runner, in_process, row_ranges
from curate.workspace import Workspace

WINDOW_BYTES = 2**28  # of a scratch file mapped at a time
PCA_ROWS = 16_384  # training rows summed into the covariance at a time
RESCORE_PAIRS = 16_384  # candidate pairs scored on the full vectors at a time
COPY_BYTES = 2**24  # of a part's file appended to the matrix at a time
PRIMARY = np.uint64(1 << 31)  # an entry's bit: the row's nearest cell (the rows a cell holds)
DEFAULT_IVF = IVF()
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutOfCore:
    """How the out-of-core search reads, shuffles and searches (the index itself: `IVF`)."""

    batch_rows: int = 32_768  # rows read, projected and assigned at a time
    assign_rows: int = 131_072  # rows an assign task projects and assigns (its entries: 8 x nprobe bytes a row)
    bucket_entries: int = 1_000_000  # (cell, row) entries searched at a time: sets the number of buckets
    cell_dims: int = 256  # cells: k-means over the projection's leading components (cost in proportion; see RESULTS)
    cells: int = 0  # the number of cells in a table; 0: `cell_count(rows)`
    larger_cells_above: int = 2_500_000  # rows: above, cells of sqrt(rows / this) x 1 / IVF.cells_per_row rows
    two_level_cells: int = 4_096  # above this many cells: two-level k-means (cost ~sqrt(cells), not cells)
    group_probes: int = 0  # above two_level_cells: groups probed by `TwoLevel`; 0: brute force (see RESULTS)


@dataclass
class DiskPairs:
    """(i, j, similarity) for every pair i < j found, i and j numbering the rows with an embedding
    in the order of OUT/embeddings/'s parts (`sample_ids[i]` is row i's sample)."""

    i: np.ndarray
    j: np.ndarray
    similarity: np.ndarray
    sample_ids: pa.Array


@dataclass(frozen=True)
class Bucket:
    """A search task: the (cell, row) entries of one range of cells, a slice (file, first entry,
    end) of each assign task's file that holds some."""

    index: int
    slices: tuple[tuple[Path, int, int], ...]

    @property
    def rel(self) -> str:  # its name in `run_tasks` messages
        return f"bucket {self.index}"


def similar_pairs_on_disk(ws: Workspace, threshold: float, scratch: str | None = None, ivf: IVF = DEFAULT_IVF,
                          disk: OutOfCore = OutOfCore(), run: Runner = in_process) -> DiskPairs:
    """Every pair of OUT/embeddings/ rows with cosine similarity >= threshold, found out of core (see
    module doc); similarities are exact, recall approximate (the same probing rule as `similar_pairs`
    above its exact size, measured by `benchmarks/embed_search_disk.py`).
    Reads OUT/embeddings/; writes only a temporary folder in `scratch` (a local folder; the system's
    temporary folder when None), removed at the end. The copy, assign and search tasks go to `run`
    (`curate.tasks`): `functools.partial(curate.engine.run_tasks, client)` runs them on a Dask
    cluster, whose workers must see `scratch` (a LocalCluster's do; on several machines, a shared
    folder)."""
    with tempfile.TemporaryDirectory(prefix="curate-search-", dir=scratch) as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        sample_ids, dim = _copy(ws, folder, disk, run)
        n = len(sample_ids)
        started = _logged("copy", f"{n:,} rows", started)
        if n < 2:
            return DiskPairs(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32), sample_ids)
        pca, sample = _fit_pca(folder / "vectors.f16", n, dim, ivf)
        started = _logged("pca", f"{len(sample):,} rows", started)
        tables, nlist = _fit_cells(sample, n, ivf, disk)
        del sample
        started = _logged("cells", f"{len(tables)} x {nlist:,} cells", started)
        buckets = _assign(folder, n, dim, pca, tables, nlist, ivf, disk, run)
        started = _logged("assign", f"{len(buckets):,} buckets", started)
        found = run(_bucket_pairs, buckets, label="semantic search: buckets", folder=folder, n=n, dim=dim,
                    threshold=threshold, ivf=ivf)
        _logged("search", f"{sum(len(f[0]) for f in found):,} pairs", started)
    i, j, s = (_stacked([f[k] for f in found], t) for k, t in enumerate((np.int64, np.int64, np.float32)))
    _, first = np.unique(i * max(n, 1) + j, return_index=True)  # found in several buckets: once, in (i, j) order
    return DiskPairs(i[first], j[first], s[first], sample_ids)


def _logged(phase: str, what: str, started: float) -> float:
    """Log a phase's time (INFO: `benchmarks/embed_search_disk.py` reads it); return the time now."""
    now = time.perf_counter()
    log.info("search_disk %s: %s, %.1f s", phase, what, now - started)
    return now


@dataclass(frozen=True)
class EmbeddingPart:
    """A copy task: the `index`-th Parquet part of OUT/embeddings/, at `path` in OUT's filesystem."""

    index: int
    path: str

    @property
    def rel(self) -> str:  # its name in `run_tasks` messages
        return self.path.rpartition("/")[2]


def _copy(ws: Workspace, folder: Path, disk: OutOfCore, run: Runner) -> tuple[pa.Array, int]:
    """Every embedding of OUT/embeddings/ (parts in order, null rows left out) as float16 rows in
    `vectors.f16`: one task a part writes its rows to a file of its own, and the files are joined in
    part order, each deleted once appended (scratch: the matrix and one part more). Returns the
    rows' sample ids and the dimension."""
    parts = [EmbeddingPart(k, path) for k, path in enumerate(ws.parts("embeddings"))]
    done = run(_copy_part, parts, label="semantic search: copy", out=ws.url, folder=folder,
               batch_rows=disk.batch_rows)
    with open(folder / "vectors.f16", "wb") as joined:
        for part in parts:
            with open(_part_file(folder, part), "rb") as piece:
                shutil.copyfileobj(piece, joined, COPY_BYTES)
            _part_file(folder, part).unlink()
    return _joined_ids([part_ids for part_ids, _dim in done]), (done[-1][1] if done else 0)


def _copy_part(part: EmbeddingPart, out: str, folder: Path, batch_rows: int) -> tuple[pa.Array, int]:
    """Write the part's embeddings (null rows left out) to its file as float16 rows, a record batch
    at a time; return their sample ids and the dimension."""
    ws = Workspace(out)
    ids: list[pa.Array] = []
    with ws.fs.open(part.path, "rb") as f, open(_part_file(folder, part), "wb") as written:
        parquet = pq.ParquetFile(f)
        dim = parquet.schema_arrow.field("embedding").type.list_size
        for batch in parquet.iter_batches(batch_size=batch_rows, columns=["sample_id", "embedding"]):
            batch = batch.filter(pc.is_valid(batch.column("embedding")))
            flat = batch.column("embedding").flatten().to_numpy(zero_copy_only=False)
            written.write(np.ascontiguousarray(flat, dtype=np.float16).tobytes())
            ids.append(batch.column("sample_id"))
    return _joined_ids(ids), dim


def _joined_ids(ids: list[pa.Array]) -> pa.Array:
    """Sample id arrays end to end (an empty string array for none)."""
    return pa.concat_arrays(ids) if ids else pa.array([], pa.string())


def _part_file(folder: Path, part: EmbeddingPart) -> Path:
    return folder / f"vectors-{part.index:05d}.f16"


@dataclass(frozen=True)
class Projection:
    """A PCA projection: rows minus `mean`, times `components` (dim x dims, float32)."""

    mean: np.ndarray
    components: np.ndarray


def _fit_pca(vectors: Path, n: int, dim: int, ivf: IVF) -> tuple[Projection, np.ndarray]:
    """The PCA projection onto the top `ivf.dims` components of `ivf.train_rows` rows of `vectors`
    drawn at random (seeded), and those rows projected (the cells' training sample). The covariance
    is summed PCA_ROWS rows at a time: memory is the projected sample, not the sample."""
    rows = np.sort(np.random.default_rng(0).choice(n, min(n, ivf.train_rows), replace=False))
    total, outer = np.zeros(dim), np.zeros((dim, dim))
    for lo in range(0, len(rows), PCA_ROWS):
        chunk = _gather(vectors, rows[lo:lo + PCA_ROWS], dim, np.float16).astype(np.float32)
        total += chunk.sum(axis=0)
        outer += chunk.T @ chunk
    mean = total / max(1, len(rows))
    _values, eigenvectors = np.linalg.eigh(outer / max(1, len(rows)) - np.outer(mean, mean))  # ascending
    top = eigenvectors[:, ::-1][:, :min(ivf.dims, dim)]
    pca = Projection(mean.astype(np.float32), np.ascontiguousarray(top, dtype=np.float32))
    projected = np.concatenate([_projected(pca, _gather(vectors, rows[lo:lo + PCA_ROWS], dim, np.float16))
                                for lo in range(0, len(rows), PCA_ROWS)])
    return pca, projected


@dataclass(frozen=True)
class Cells:
    """The k-means cells as the assign tasks receive them: the centroids, and the first level's
    groups where the nearest cells are searched through them (`TwoLevel`)."""

    centroids: np.ndarray
    groups: np.ndarray | None = None
    group_probes: int = 0

    def index(self) -> Any:
        """The search for a row's nearest cells: `TwoLevel`, or a brute-force inner-product index."""
        if self.groups is not None and self.group_probes:
            return TwoLevel(self.groups, self.centroids, self.group_probes)
        return _flat(self.centroids)


def _fit_cells(projected: np.ndarray, n: int, ivf: IVF, disk: OutOfCore) -> tuple[list[Cells], int]:
    """`ivf.tables` sets of k-means cells of `projected`'s leading components (k-means seeds 1, 2,
    ...; `disk.cells`, or `cell_count(n)` of them in each) and that number: up to
    `disk.two_level_cells` cells, one k-means; above, two k-means levels (`_two_level_kmeans`),
    searched by `TwoLevel` when `disk.group_probes` is set."""
    leading = _leading(projected, disk)
    nlist = max(1, min(len(projected), disk.cells or cell_count(n, ivf, disk)))
    seeds = range(1, max(1, ivf.tables) + 1)
    if nlist <= disk.two_level_cells:
        return [Cells(_kmeans(leading, nlist, seed)) for seed in seeds], nlist
    return [Cells(centroids, groups, disk.group_probes)
            for groups, centroids in (_two_level_kmeans(leading, nlist, seed) for seed in seeds)], nlist


def cell_count(n: int, ivf: IVF, disk: OutOfCore) -> int:
    """The cells of a table for n rows: n x `ivf.cells_per_row` (cells of 256 rows) up to
    `disk.larger_cells_above` rows; above, cells of sqrt(n / larger_cells_above) times as many rows
    (512 at 10M). The nearest-cells search costs rows x cells, and the search rows x rows a cell, so
    larger cells hold the first to rows^1.5 at the cost of the second; with two tables, recall on
    the benchmark's planted pairs stays above 0.99 at 10M (RESULTS.md, "Tables of cells")."""
    return max(1, int(n * ivf.cells_per_row / max(1.0, (n / disk.larger_cells_above) ** 0.5)))


def _flat(centroids: np.ndarray) -> Any:
    """A brute-force inner-product faiss index over `centroids`."""
    import faiss

    index = faiss.IndexFlatIP(centroids.shape[1])
    index.add(centroids)
    return index


def _kmeans(rows: np.ndarray, k: int, seed: int = 1) -> np.ndarray:
    """k spherical k-means centroids of unit `rows` (float32, seeded; any number of rows per centroid)."""
    import faiss

    kmeans = faiss.Kmeans(rows.shape[1], k, niter=10, spherical=True, seed=seed, verbose=False,
                          min_points_per_centroid=1)
    kmeans.train(rows)
    return np.asarray(kmeans.centroids, np.float32)


class TwoLevel:
    """A two-level coarse quantizer: ~sqrt(nlist) groups of cells (the first k-means level), each
    row's `disk.group_probes` nearest groups found first, then its exact nearest cells among the
    cells listed under them (a faiss IndexIVFFlat whose database is the centroids): a row costs
    ~(1 + group_probes) x sqrt(nlist) products instead of nlist. A row whose probed groups hold
    fewer cells than asked gets the brute-force search."""

    def __init__(self, groups: np.ndarray, centroids: np.ndarray, group_probes: int) -> None:
        import faiss

        self.flat = _flat(centroids)
        self.coarse = _flat(groups)
        self.index = faiss.IndexIVFFlat(self.coarse, groups.shape[1], len(groups), faiss.METRIC_INNER_PRODUCT)
        self.index.is_trained = True  # its lists: the groups; each cell listed under its nearest group
        self.index.add(centroids)
        self.index.nprobe = min(group_probes, len(groups))

    def search(self, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(similarities, cells) of each row's k nearest cells found, nearest first (faiss's search)."""
        sims, cells = self.index.search(rows, k)
        short = np.flatnonzero(cells[:, -1] < 0)  # fewer than k cells in the groups probed
        if len(short):
            sims[short], cells[short] = self.flat.search(rows[short], k)
        return sims, cells


def _two_level_kmeans(leading: np.ndarray, nlist: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(groups, cells): nlist cells in two k-means levels, so the cost grows as sqrt(nlist), not
    nlist: the rows into ~sqrt(nlist) groups, then each group's rows into its share of the cells (in
    proportion to its rows). The groups can serve as the first level of the nearest-cells search."""
    groups = _kmeans(leading, max(1, round(nlist ** 0.5)), seed)
    nearest = _flat(groups).search(leading, 1)[1][:, 0]
    shares = _shares(np.bincount(nearest, minlength=len(groups)), nlist)
    centroids = [_kmeans(leading[nearest == g], int(k), seed) for g, k in enumerate(shares) if k]
    return groups, np.concatenate(centroids)


def _shares(rows: np.ndarray, total: int) -> np.ndarray:
    """`total` split in proportion to `rows` (largest remainders; sum(rows) >= total, so no share
    exceeds its rows)."""
    exact = rows * total / rows.sum()
    shares: np.ndarray = np.floor(exact).astype(np.int64)
    shares[np.argsort(shares - exact)[:total - shares.sum()]] += 1
    return shares


def _assign(folder: Path, n: int, dim: int, pca: Projection, tables: list[Cells], nlist: int, ivf: IVF,
            disk: OutOfCore, run: Runner) -> list[Bucket]:
    """Run the assign tasks (`_assign_rows`) over every row; return the search tasks: the buckets
    (ranges of cells, the tables' numbered one after another) that hold entries, in cell order."""
    probes = ivf.probes_a_table(nlist)
    count = max(1, min(nlist * len(tables), -(-n * probes * len(tables) // disk.bucket_entries)))
    with open(folder / "proj.f16", "wb") as proj:
        proj.truncate(n * pca.components.shape[1] * np.dtype(np.float16).itemsize)
    tasks = row_ranges(n, disk.assign_rows)
    done = run(_assign_rows, tasks, label="semantic search: assign", folder=folder, dim=dim, pca=pca,
               tables=tables, probes=probes, buckets=count, nlist=nlist, disk=disk)
    log.info("search_disk nearest: the nearest %d cells of %s rows among %s x %s, %.1f s", probes, f"{n:,}",
             len(tables), f"{nlist:,}", sum(seconds for _bounds, seconds in done))
    buckets = [Bucket(k, tuple((_entries_file(folder, task), int(bounds[k]), int(bounds[k + 1]))
                               for task, (bounds, _seconds) in zip(tasks, done) if bounds[k + 1] > bounds[k]))
               for k in range(count)]
    return [b for b in buckets if b.slices]


def _assign_rows(task: RowRange, folder: Path, dim: int, pca: Projection, tables: list[Cells], probes: int,
                 buckets: int, nlist: int, disk: OutOfCore) -> tuple[np.ndarray, float]:
    """Write the projections of rows task.lo:task.hi to their place in `proj.f16` and one entry per
    (row, cell) of each row's `probes` nearest cells in each table (nearest first; table t's cells
    numbered from t x nlist) to the task's entries file, sorted by bucket: cell << 32 | PRIMARY for
    a table's nearest | row. Returns the first entry of each of the `buckets` (and the end), and
    the seconds spent finding the nearest cells."""
    indexes = [cells.index() for cells in tables]
    row_bytes = pca.components.shape[1] * np.dtype(np.float16).itemsize
    entries, nearest = [], 0.0
    with open(folder / "proj.f16", "r+b") as proj:
        proj.seek(task.lo * row_bytes)
        for lo, rows in _batches(folder / "vectors.f16", dim, task.lo, task.hi, disk.batch_rows):
            projected = _projected(pca, rows)
            proj.write(projected.astype(np.float16).tobytes())
            leading = _leading(projected, disk)
            row = np.arange(lo, lo + len(rows), dtype=np.uint64)[:, None].repeat(probes, axis=1)
            row[:, 0] |= PRIMARY
            for t, index in enumerate(indexes):
                started = time.perf_counter()
                _d, found = index.search(leading, probes)
                nearest += time.perf_counter() - started
                entries.append(((found + t * nlist).astype(np.uint64) << np.uint64(32)) | row)
    flat = np.concatenate(entries).ravel() if entries else np.zeros(0, np.uint64)
    bucket = ((flat >> np.uint64(32)) * np.uint64(buckets) // np.uint64(nlist * len(tables))).astype(np.int64)
    order = np.argsort(bucket, kind="stable")
    flat[order].tofile(_entries_file(folder, task))
    return np.searchsorted(bucket[order], np.arange(buckets + 1)), nearest


def _entries_file(folder: Path, task: RowRange) -> Path:
    return folder / f"entries-{task.index:05d}.u64"


def _leading(projected: np.ndarray, disk: OutOfCore) -> np.ndarray:
    """The first `disk.cell_dims` components of projected rows, L2-normalised: where cells are."""
    leading = np.ascontiguousarray(projected[:, :disk.cell_dims])
    leading /= np.maximum(np.linalg.norm(leading, axis=1, keepdims=True), 1e-12)
    return leading


def _projected(pca: Projection, rows: np.ndarray) -> np.ndarray:
    """rows (any float dtype) in the PCA projection, L2-normalised, float32."""
    projected: np.ndarray = (rows.astype(np.float32) - pca.mean) @ pca.components
    projected /= np.maximum(np.linalg.norm(projected, axis=1, keepdims=True), 1e-12)
    return projected


def _bucket_pairs(bucket: Bucket, folder: Path, n: int, dim: int, threshold: float, ivf: IVF
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairs >= threshold among one bucket's cells: candidates from each cell's matrix product
    in the projection (read from `proj.f16`), re-scored on `vectors.f16`."""
    item = np.dtype(np.uint64).itemsize
    entries = np.unique(np.concatenate([np.fromfile(path, dtype=np.uint64, count=end - first, offset=first * item)
                                        for path, first, end in bucket.slices]))  # by cell, then primary, then row
    cells = (entries >> np.uint64(32)).astype(np.int64)
    rows = (entries & np.uint64(PRIMARY - np.uint64(1))).astype(np.int64)
    primary = (entries & PRIMARY) != 0
    del entries
    unique, at = np.unique(rows, return_inverse=True)
    projected = _gather(folder / "proj.f16", unique, min(ivf.dims, dim), np.float16)
    starts = np.flatnonzero(np.r_[True, cells[1:] != cells[:-1], True])
    found_i, found_j = [], []
    for lo, hi in zip(starts[:-1], starts[1:]):
        probing, held = at[lo:hi], at[lo:hi][primary[lo:hi]]
        if not len(held):
            continue
        sims = projected[probing].astype(np.float32) @ projected[held].astype(np.float32).T
        q, h = np.nonzero(sims >= threshold - ivf.margin)
        a, b = unique[probing[q]], unique[held[h]]
        keep = a != b
        found_i.append(np.minimum(a, b)[keep])
        found_j.append(np.maximum(a, b)[keep])
    pairs = np.unique(_stacked(found_i, np.int64) * n + _stacked(found_j, np.int64))
    return _rescored(folder / "vectors.f16", pairs // n, pairs % n, dim, threshold)


def _rescored(vectors: Path, i: np.ndarray, j: np.ndarray, dim: int, threshold: float
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairs (i, j) whose similarity on the full vectors is >= threshold, with it (float32),
    RESCORE_PAIRS at a time."""
    keep_i, keep_j, keep_s = [], [], []
    for lo in range(0, len(i), RESCORE_PAIRS):
        a, b = i[lo:lo + RESCORE_PAIRS], j[lo:lo + RESCORE_PAIRS]
        unique, at = np.unique(np.concatenate([a, b]), return_inverse=True)
        full = _gather(vectors, unique, dim, np.float16).astype(np.float32)
        sims = np.einsum("ij,ij->i", full[at[:len(a)]], full[at[len(a):]])
        hit = sims >= threshold
        keep_i.append(a[hit])
        keep_j.append(b[hit])
        keep_s.append(sims[hit])
    return _stacked(keep_i, np.int64), _stacked(keep_j, np.int64), _stacked(keep_s, np.float32)


def _stacked(arrays: list[np.ndarray], dtype: type) -> np.ndarray:
    """The arrays end to end, as `dtype` (an empty one for none)."""
    return np.concatenate(arrays).astype(dtype) if arrays else np.zeros(0, dtype)


def _gather(path: Path, rows: np.ndarray, width: int, dtype: type) -> np.ndarray:
    """Rows `rows` (sorted) of the row-ordered matrix in `path` (`width` values of `dtype` each),
    mapping at most WINDOW_BYTES of the file at a time."""
    row_bytes = width * np.dtype(dtype).itemsize
    total = os.path.getsize(path) // row_bytes
    per_window = max(1, WINDOW_BYTES // row_bytes)
    out: np.ndarray = np.empty((len(rows), width), dtype)
    for start in range(0, total, per_window):
        lo, hi = np.searchsorted(rows, [start, start + per_window])
        if hi > lo:
            stop = min(total, start + per_window)
            window = np.memmap(path, dtype=dtype, mode="r", offset=start * row_bytes, shape=(stop - start, width))
            out[lo:hi] = window[rows[lo:hi] - start]
            del window
    return out


def _batches(path: Path, dim: int, lo: int, hi: int, size: int) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, rows) of rows lo:hi of the float16 matrix in `path`, `size` rows at a time (plain reads)."""
    with open(path, "rb") as f:
        f.seek(lo * dim * np.dtype(np.float16).itemsize)
        for start in range(lo, hi, size):
            count = min(size, hi - start)
            yield start, np.fromfile(f, dtype=np.float16, count=count * dim).reshape(count, dim)
