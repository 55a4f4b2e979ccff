"""Multi-index hashing: exact recall against brute force; embeddings' nearest neighbours above the
exact search's size."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from curate.dedup.search import choose_bands, query_pairs, radius_pairs
from curate.imaging.hashes import hamming
from curate.search import IVF, neighbours


def planted(n: int, t: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h = rng.integers(-(2**63), 2**63 - 1, n, dtype=np.int64).view(np.uint64)
    for a in range(0, n - 1, 3):  # plant neighbours at every distance 0..t+1
        flips = rng.choice(64, size=a % (t + 2), replace=False)
        h[a + 1] = h[a] ^ np.uint64(sum(1 << int(b) for b in flips))
    return h.view(np.int64)


def brute(h: np.ndarray, t: int) -> set[tuple[int, int]]:
    d = hamming(h[:, None], h[None, :])
    i, j = np.nonzero(np.triu(d <= t, k=1))
    return set(zip(i.tolist(), j.tolist()))


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 300), t=st.integers(0, 16), seed=st.integers(0, 10_000))
def test_radius_pairs_equals_brute_force(n, t, seed):
    h = planted(n, t, seed)
    i, j, d = radius_pairs(h, t)
    assert set(zip(i.tolist(), j.tolist())) == brute(h, t)
    assert (d == hamming(h[i], h[j])).all()


def test_query_pairs_equals_brute_force():
    index, queries = planted(500, 6, 1), planted(200, 6, 2)
    queries[:50] = index[:50] ^ 0b1011  # 3 bits away
    i, j, _ = query_pairs(index, queries, 6)
    d = hamming(queries[:, None], index[None, :])
    assert set(zip(i.tolist(), j.tolist())) == set(zip(*(x.tolist() for x in np.nonzero(d <= 6))))


def test_hamming_counts_the_sign_bit():
    assert hamming(-1, 0) == 64 and hamming(np.int64(-(2**63)), 0) == 1 and hamming(5, 6) == 2


def test_band_choice_keeps_the_pigeonhole_guarantee():
    for n in (10, 10_000, 10_000_000):
        for t in range(0, 21):
            bands = choose_bands(n, t)
            assert len(bands.widths) * (bands.radius + 1) > t and sum(bands.widths) == 64


def test_neighbours_above_exact_max_find_the_planted_nearest_with_exact_similarities():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 48)).astype(np.float32)
    x[1::2] = x[::2] + 0.2 * rng.normal(size=(1500, 48))  # each even row's planted nearest: the next row
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids, sims = neighbours(x.astype(np.float16), 5, IVF(dims=16, nprobe=8), exact_max=1000)
    planted = np.arange(3000) ^ 1
    assert (ids[:, 0] == planted).mean() >= 0.99
    xf = x.astype(np.float16).astype(np.float32)
    assert np.allclose(sims, np.einsum("id,ikd->ik", xf, xf[ids]), atol=1e-6)  # re-scored on the full vectors
    assert (np.diff(sims, axis=1) <= 0).all() and (ids != np.arange(3000)[:, None]).all()
    exact_ids, exact_sims = neighbours(xf, 5)  # the exact search: the i-th found is never better than the i-th
    assert (exact_ids[:, 0] == planted).all() and (sims <= exact_sims + 1e-6).all()


def test_a_second_table_of_cells_finds_nearer_neighbours_than_the_first_alone():
    """One probe a table: the second table (another k-means seed) adds candidates to the first's
    (its cells are the same), so no row's i-th neighbour gets worse and some rows' get better."""
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(150, 48))
    x = (centres[rng.integers(0, 150, 3000)] + 0.8 * rng.normal(size=(3000, 48))).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    found = [neighbours(x, 5, IVF(dims=16, cells_per_row=1 / 50, nprobe=tables, tables=tables, rescore=2),
                        exact_max=1000) for tables in (1, 2)]
    (one_ids, one), (two_ids, two) = found
    exact_ids, _exact = neighbours(x, 5)
    assert (two >= one - 1e-6).all() and (two > one + 1e-6).any()

    def recall(ids: np.ndarray) -> float:
        return float(np.mean([len(set(a) & set(b)) / 5 for a, b in zip(ids.tolist(), exact_ids.tolist())]))

    assert recall(one_ids) < recall(two_ids)
