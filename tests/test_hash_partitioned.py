"""The partitioned (shuffle) hash search: exactly the brute-force pairs, in-process and on a real
Dask cluster, with no task holding the whole column."""
from __future__ import annotations

import numpy as np
import pytest
from test_dedup import skewed_hashes
from test_search import brute

from curate.dedup.partitioned import partitioned_pairs, sends
from curate.dedup.search import radius_pairs
from curate.imaging.hashes import hamming


def check_exact(h: np.ndarray, t: int, found: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    i, j, d = found
    assert list(zip(i.tolist(), j.tolist())) == sorted(brute(h, t))  # each pair once, i < j, sorted
    assert (d == hamming(h[i], h[j])).all()


@pytest.mark.parametrize("t", [0, 3, 8, 12])
def test_partitioned_pairs_are_the_brute_force_pairs_on_skewed_hashes(tmp_path, t):
    h = skewed_hashes(3000, t, 3)
    found, costs = partitioned_pairs(h, t, tmp_path, rows_per_task=800, chunk_rows=700)
    check_exact(h, t, found)
    assert len(costs.parts) > 2 * len(costs.layout.bands.bits)  # several partitions per band ...
    assert max(c["rows_held"] for c in costs.parts) < len(h) // 2  # ... each task holding slices of the column


def test_tiny_columns_have_no_pairs(tmp_path):
    for h in (np.zeros(0, dtype=np.int64), np.array([7], dtype=np.int64)):
        (i, j, d), costs = partitioned_pairs(h, 8, tmp_path)
        assert len(i) == len(j) == len(d) == 0 and costs.parts == []


def test_every_two_partitions_are_joined_from_exactly_one_side():
    a, b = np.meshgrid(np.arange(64), np.arange(64))
    off = a != b
    assert (sends(a, b)[off] ^ sends(b, a)[off]).all()
    assert (sends(a, b)[off].reshape(64, 63).sum(axis=1) <= 33).all()  # no partition sends to all


@pytest.mark.slow
def test_partitioned_pairs_on_a_local_cluster_match_the_in_process_search(tmp_path):
    from distributed import Client, LocalCluster

    t = 8
    h = skewed_hashes(4000, t, 5)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        found, costs = partitioned_pairs(h, t, tmp_path, client, rows_per_task=1000, chunk_rows=1500)
    check_exact(h, t, found)
    i, j, d = radius_pairs(h, t)
    order = np.lexsort((j, i))
    assert all(np.array_equal(x, y[order]) for x, y in zip(found, (i, j, d)))
    assert len(costs.parts) > 3
