"""From hash columns to duplicate clusters: edges, connected components, a chaining guard.

Edges come from identical bytes, identical pixels, identical pHash and pHash pairs within the
threshold (all 8 flips/rotations with `dihedral`). Components are found with a sparse graph.
The guard: a member farther than the threshold from its cluster's representative (reached only
through a chain of near pairs) is split off and clustered again on its own edges.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from curate.dedup.search import query_pairs, radius_pairs
from curate.imaging.hashes import hamming


@dataclass
class Edges:
    a: np.ndarray
    b: np.ndarray

    @staticmethod
    def empty() -> "Edges":
        return Edges(np.zeros(0, np.int64), np.zeros(0, np.int64))

    def __add__(self, other: "Edges") -> "Edges":
        return Edges(np.concatenate([self.a, other.a]), np.concatenate([self.b, other.b]))


def equal_value_edges(values: pd.Series) -> Edges:
    """Edges joining each row to the first row with the same (non-null) value, found by one stable
    sort (a hash table of 10M mostly distinct values held ~1 GB)."""
    if pd.api.types.is_integer_dtype(values.dtype):
        codes = values.to_numpy()
        valid = np.arange(len(codes))
    else:
        codes, _uniques = pd.factorize(values, use_na_sentinel=True)
        valid = np.flatnonzero(codes >= 0)
        codes = codes[valid]
    return first_of_equal(codes, valid)


def first_of_equal(codes: np.ndarray, rows: np.ndarray) -> Edges:
    """Edges joining each of `rows` (ascending) to the first of them with the same code, in row order."""
    order = np.argsort(codes, kind="stable")
    ordered = codes[order]
    starts = np.ones(len(order), dtype=bool)
    starts[1:] = ordered[1:] != ordered[:-1]
    del ordered
    first = order[np.flatnonzero(starts)[np.cumsum(starts) - 1]]
    later = ~starts
    a, b = rows[order[later]], rows[first[later]]
    by_row = np.argsort(a, kind="stable")
    return Edges(a[by_row], b[by_row])


def _hash_pairs(index_keys: np.ndarray, query_keys: np.ndarray, threshold: int) -> tuple[np.ndarray, np.ndarray]:
    """(query row, index row) where any hash of the query row is within threshold of the index
    row's identity hash (column 0). Keys are (n, 1) plain pHash or (n, 8) with flips/rotations."""
    k = query_keys.shape[1]
    qi, j, _d = query_pairs(index_keys[:, 0], query_keys.reshape(-1), threshold)
    return qi // k, j


def key_pairs(keys: np.ndarray, threshold: int, previous: "KeyPairs | None" = None) -> np.ndarray:
    """Pairs (a, b) of rows of the unique hash keys `keys` that are near duplicates.

    With `previous` (the keys and pairs of an earlier run with the same settings), pairs among
    keys seen before are reused and only pairs that involve a new key are searched: the new
    keys against all, and (for flips/rotations) all against the new keys. The result equals a
    full search.
    """
    if previous is None and keys.shape[1] == 1:  # a self-join: each pair once, no row meets itself
        a, b, _d = radius_pairs(keys[:, 0], threshold)
    elif previous is None:
        a, b = _hash_pairs(keys, keys, threshold)
    else:
        old = previous.lookup(keys)  # row in previous.keys, or -1
        new_rows = np.flatnonzero(old < 0)
        was = np.full(len(previous.keys), -1, dtype=np.int64)
        was[old[old >= 0]] = np.flatnonzero(old >= 0)
        kept = previous.pairs[(was[previous.pairs[:, 0]] >= 0) & (was[previous.pairs[:, 1]] >= 0)]
        qa, qb = _hash_pairs(keys, keys[new_rows], threshold)
        ra, rb = _hash_pairs(keys[new_rows], keys, threshold)
        a = np.concatenate([was[kept[:, 0]], new_rows[qa], ra])
        b = np.concatenate([was[kept[:, 1]], qb, new_rows[rb]])
    keep = a != b
    lo, hi = np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep])
    return np.unique(np.stack([lo, hi], axis=1), axis=0) if len(lo) else np.zeros((0, 2), dtype=np.int64)


@dataclass
class KeyPairs:
    """The unique hash keys of a dedup run and their near pairs (rows into `keys`)."""

    keys: np.ndarray  # (n, 1) or (n, 8) int64
    pairs: np.ndarray  # (m, 2) int64

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Row of each of `keys` in self.keys, or -1."""
        if len(self.keys) == 0 or self.keys.shape[1] != keys.shape[1]:
            return np.full(len(keys), -1, dtype=np.int64)
        cols = [f"k{i}" for i in range(keys.shape[1])]
        known = pd.DataFrame(self.keys, columns=cols).assign(_row=np.arange(len(self.keys)))
        found = pd.DataFrame(keys, columns=cols).merge(known, on=cols, how="left")["_row"]
        return found.fillna(-1).to_numpy(dtype=np.int64)


def near_edges(keys: np.ndarray, threshold: int, previous: KeyPairs | None = None
               ) -> tuple[Edges, Edges, KeyPairs]:
    """Rows whose hash keys (row = plain pHash, or its 8 flips/rotations) are equal, rows whose
    keys are within threshold, and the unique keys with their pairs (for the next incremental
    run).

    Identical keys are collapsed first: the equal-key edges join each row to the first row with
    its key, and the near edges join the first rows of near keys, so a large group of equal
    hashes costs one search entry and no quadratic number of pairs.
    """
    uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    pairs = key_pairs(uniq, threshold, previous)
    first_row = np.zeros(len(uniq), dtype=np.int64)
    first_row[inverse[::-1]] = np.arange(len(keys))[::-1]  # first row holding each unique key
    first = first_row[inverse]
    later = np.flatnonzero(first != np.arange(len(keys)))
    same = Edges(later, first[later])
    return same, Edges(first_row[pairs[:, 0]], first_row[pairs[:, 1]]), KeyPairs(uniq, pairs)


def components(n: int, edges: Edges) -> np.ndarray:
    """Component label of each of n rows."""
    graph = coo_matrix((np.ones(len(edges.a), dtype=np.int8), (edges.a, edges.b)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def distance_to(rep: int, members: np.ndarray, phash: np.ndarray, d8: np.ndarray | None) -> np.ndarray:
    """pHash bits from each member to the representative (least over flips/rotations with d8)."""
    if d8 is None:
        return hamming(phash[members], phash[rep]).astype(np.int16)
    return hamming(d8[members], phash[rep]).min(axis=1).astype(np.int16)
