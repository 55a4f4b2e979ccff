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
    """Edges joining each row to the first row with the same (non-null) value."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    rows = np.arange(len(codes))
    valid = codes >= 0
    first = pd.Series(rows[valid]).groupby(codes[valid]).transform("min").to_numpy()
    a, b = rows[valid], first
    keep = a != b
    return Edges(a[keep], b[keep])


def near_edges(phash: np.ndarray, d8: np.ndarray | None, threshold: int) -> Edges:
    """Edges between rows whose pHash (or, with d8, any flip/rotation of it) is within threshold.

    Identical hashes are collapsed first, so a large group of equal hashes costs one search
    entry, not a quadratic number of pairs.
    """
    uniq, inverse = np.unique(phash, return_inverse=True)
    edges = equal_value_edges(pd.Series(phash))
    i, j, _d = radius_pairs(uniq, threshold)
    if d8 is not None:
        variants = d8[:, 1:].reshape(-1)
        qi, qj, _ = query_pairs(uniq, variants, threshold)
        qi = qi // 7  # row of the query variant
        i, j = np.concatenate([i, inverse[qi]]), np.concatenate([j, qj])
    rep_of_unique = np.zeros(len(uniq), dtype=np.int64)
    rep_of_unique[inverse[::-1]] = np.arange(len(phash))[::-1]  # first row holding each unique hash
    pairs = Edges(rep_of_unique[i], rep_of_unique[j])
    keep = pairs.a != pairs.b
    return edges + Edges(pairs.a[keep], pairs.b[keep])


def components(n: int, edges: Edges) -> np.ndarray:
    """Component label of each of n rows."""
    graph = coo_matrix((np.ones(len(edges.a), dtype=np.int8), (edges.a, edges.b)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def distance_to(rep: int, members: np.ndarray, phash: np.ndarray, d8: np.ndarray | None) -> np.ndarray:
    """pHash bits from each member to the representative (least over flips/rotations with d8)."""
    if d8 is None:
        return np.bitwise_count(np.bitwise_xor(phash[members], phash[rep])).astype(np.int16)
    return np.bitwise_count(np.bitwise_xor(d8[members], phash[rep])).min(axis=1).astype(np.int16)
