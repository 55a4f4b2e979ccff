"""The out-of-core semantic search against the exact in-memory one, on real embedding Parquet parts."""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from curate.engine import run_tasks
from curate.schema import embeddings_schema
from curate.search import IVF, similar_pairs
from curate.search_disk import OutOfCore, TwoLevel, _two_level_kmeans, cell_count, similar_pairs_on_disk
from curate.tables import read_embeddings
from curate.workspace import Workspace

DIM = 64
THRESHOLD = 0.78
# 3,000 rows: two tables of 30 cells (k-means over 24 of the 32 projected dimensions), each row
# probing its 5 nearest in each; 3 copy tasks (the parts), 3 assign tasks of up to 1,200 rows,
# each in batches of 500; 10 buckets, each a slice of every assign task's entries
SMALL = IVF(dims=32, cells_per_row=1 / 100, nprobe=10, margin=0.1, train_rows=2000)
TINY = OutOfCore(batch_rows=500, bucket_entries=3000, cell_dims=24, assign_rows=1200)


def clustered(n: int, seed: int) -> np.ndarray:
    """(n, DIM) float16 unit rows around n/30 centres, each row 3k + 1 a near copy of row 3k
    (cosine ~0.75-0.97: most above THRESHOLD, some below)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n // 30, DIM))
    x = centres[rng.integers(0, len(centres), n)] + 1.5 * rng.normal(size=(n, DIM))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    noise = rng.normal(size=(n // 3, DIM))
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    mix = rng.uniform(0.2, 0.5, (n // 3, 1))
    x[1::3][:n // 3] = x[0::3][:n // 3] * (1 - mix) + noise * mix
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16)


@pytest.fixture
def out(tmp_path: Path) -> Workspace:
    """OUT with embeddings/ as three parts of 1,000 rows; part 1 has 10 rows without an embedding."""
    ws = Workspace(str(tmp_path / "out"))
    ws.claim()
    schema = embeddings_schema(DIM, "test-model")
    x = clustered(3000, seed=0)
    for part in range(3):
        rows = x[part * 1000:(part + 1) * 1000]
        valid = np.ones(len(rows), bool)
        if part == 1:
            valid[::100] = False
        vectors = pa.FixedSizeListArray.from_arrays(pa.array(rows.reshape(-1), pa.float16()), DIM)
        table = pa.table({"sample_id": [f"s{part}-{k}" for k in range(len(rows))],
                          "embedding": pc.if_else(pa.array(valid), vectors, pa.nulls(len(rows), vectors.type)),
                          "error": [None if v else "undecodable" for v in valid]}, schema=schema)
        ws.write_table(f"embeddings/part-{part:05d}.parquet", table, schema)
    return ws


def exact(ws: Workspace) -> tuple[list[str], set[tuple[int, int]], dict[tuple[int, int], float]]:
    found = read_embeddings(ws)
    i, j, s = similar_pairs(found.vectors, THRESHOLD, exact_max=10**9)
    pairs = list(zip(i.tolist(), j.tolist()))
    return found.sample_ids, set(pairs), dict(zip(pairs, s.tolist()))


def test_finds_exactly_the_exact_pairs(out, tmp_path):
    ids, truth, sims = exact(out)
    assert len(truth) > 300  # planted pairs above the threshold, and a few below
    got = similar_pairs_on_disk(out, THRESHOLD, scratch=str(tmp_path), ivf=SMALL, disk=TINY)
    assert got.sample_ids.to_pylist() == ids  # row numbers: read_embeddings' rows, nulls left out
    pairs = list(zip(got.i.tolist(), got.j.tolist()))
    assert len(pairs) == len(set(pairs)) and all(a < b for a, b in pairs)
    assert set(pairs) == truth
    assert np.allclose(got.similarity, [sims[p] for p in pairs], atol=1e-5)  # exact, not the projection's
    assert list(tmp_path.iterdir()) == [tmp_path / "out"]  # the scratch folder is gone


@pytest.mark.slow
def test_the_buckets_searched_on_a_local_cluster_give_the_same_pairs(out, tmp_path):
    """The partitioned form: each part's copy, each assign task and each bucket a task on a Dask
    worker process, in the driver's scratch folder."""
    from distributed import Client, LocalCluster

    _ids, truth, sims = exact(out)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        got = similar_pairs_on_disk(out, THRESHOLD, scratch=str(tmp_path), ivf=SMALL, disk=TINY,
                                    run=functools.partial(run_tasks, client))
        searched = sum(client.run(lambda dask_worker: dask_worker.state.executed_count).values())
    pairs = list(zip(got.i.tolist(), got.j.tolist()))
    assert set(pairs) == truth and len(pairs) == len(truth)
    assert np.allclose(got.similarity, [sims[p] for p in pairs], atol=1e-5)
    assert searched == 3 + 3 + 10  # each of the 3 copy tasks, 3 assign tasks and 10 buckets ran on a worker, once


def test_one_probe_loses_pairs(out, tmp_path):
    """Each row compared only within its nearest cell misses near pairs split across cells: the
    multi-assignment above is what finds them."""
    _ids, truth, _sims = exact(out)
    one = IVF(dims=SMALL.dims, cells_per_row=SMALL.cells_per_row, nprobe=1, margin=SMALL.margin,
              train_rows=SMALL.train_rows)
    got = similar_pairs_on_disk(out, THRESHOLD, scratch=str(tmp_path), ivf=one, disk=TINY)
    assert set(zip(got.i.tolist(), got.j.tolist())) < truth


def test_a_second_table_of_cells_finds_pairs_the_first_misses(out, tmp_path):
    """One probe a table: the second table (another k-means seed) finds near pairs that straddle
    the first table's cells, and loses none the first finds (its cells are the same)."""
    _ids, truth, _sims = exact(out)
    found = []
    for tables in (1, 2):
        ivf = IVF(dims=SMALL.dims, cells_per_row=SMALL.cells_per_row, nprobe=tables, margin=SMALL.margin,
                  train_rows=SMALL.train_rows, tables=tables)
        disk = OutOfCore(batch_rows=500, bucket_entries=3000, cell_dims=24, assign_rows=1200)
        got = similar_pairs_on_disk(out, THRESHOLD, scratch=str(tmp_path), ivf=ivf, disk=disk)
        found.append(set(zip(got.i.tolist(), got.j.tolist())))
    assert found[0] < found[1] <= truth


def test_cells_grow_above_a_size_so_the_nearest_cells_search_grows_slower():
    ivf, disk = IVF(), OutOfCore()
    assert cell_count(1_000_000, ivf, disk) == 3_906  # cells of 256 rows
    assert cell_count(disk.larger_cells_above, ivf, disk) == int(disk.larger_cells_above / 256)
    assert cell_count(10_000_000, ivf, disk) == 19_531  # of 512 rows: sqrt(10M / 2.5M) = 2 times larger


def test_many_buckets_one_cell_each(out, tmp_path):
    _ids, truth, _sims = exact(out)
    got = similar_pairs_on_disk(out, THRESHOLD, scratch=str(tmp_path), ivf=SMALL,
                                disk=OutOfCore(batch_rows=700, bucket_entries=500, cell_dims=24))
    assert set(zip(got.i.tolist(), got.j.tolist())) == truth


def test_no_pairs_without_two_embeddings(tmp_path):
    ws = Workspace(str(tmp_path / "out"))
    ws.claim()
    schema = embeddings_schema(DIM, "test-model")
    table = pa.table({"sample_id": ["a", "b"], "embedding": pa.nulls(2, schema.field("embedding").type),
                      "error": ["undecodable"] * 2}, schema=schema)
    ws.write_table("embeddings/part-00000.parquet", table, schema)
    got = similar_pairs_on_disk(ws, THRESHOLD, scratch=str(tmp_path))
    assert len(got.i) == len(got.j) == len(got.similarity) == len(got.sample_ids) == 0


@pytest.mark.parametrize("group_probes", [0, 5])
def test_two_level_cells_find_the_exact_pairs(out, tmp_path, group_probes):
    """Above `two_level_cells`, the cells come from two k-means levels (30 cells in 5 groups) and
    each row's nearest cells by brute force or (`group_probes`) from the cells listed under its
    nearest groups: all 5 probed, so the second level alone picks each row's 10 cells. Exactly the
    exact pairs."""
    _ids, truth, _sims = exact(out)
    disk = OutOfCore(batch_rows=500, bucket_entries=3000, cell_dims=24, two_level_cells=8, group_probes=group_probes)
    got = similar_pairs_on_disk(out, THRESHOLD, scratch=str(tmp_path), ivf=SMALL, disk=disk)
    assert set(zip(got.i.tolist(), got.j.tolist())) == truth


def test_two_level_search_is_the_nearest_cells_of_the_groups_probed():
    """Probing every group, the two-level search is the brute-force one; probing one, each row's
    cells are the nearest of those listed under its nearest group."""
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(400, 16)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    index = TwoLevel(*_two_level_kmeans(rows, 36), group_probes=6)
    assert index.flat.ntotal == 36 and index.coarse.ntotal == 6
    centroids = index.flat.reconstruct_n(0, 36)
    exact_cells = np.argsort(-(rows @ centroids.T), axis=1)[:, :5]
    assert (index.search(rows, 5)[1] == exact_cells).mean() > 0.99  # ties in float32 aside
    index.index.nprobe = 1
    group = np.argmax(centroids @ index.coarse.reconstruct_n(0, 6).T, axis=1)  # each cell's list
    nearest_group = np.argmax(rows @ index.coarse.reconstruct_n(0, 6).T, axis=1)
    sims, cells = index.search(rows, 1)
    expected = [np.flatnonzero(group == g)[np.argmax(centroids[group == g] @ r)] for r, g in zip(rows, nearest_group)]
    assert (cells[:, 0] == expected).mean() > 0.99
