"""`rebalance --prefer diverse`: an order within each class that keeps diverse images first and
leaves the most redundant for last, so a cap drops them first.

Reads the labelled images' embeddings, a class at a time (`curate.labelled`: out of core); returns
one key per image (small = kept first). Within a class, images are removed greedily: each time the
one most similar to an image still kept (its nearest remaining neighbour among its K nearest),
until one is left; the order of removal, reversed, is the key. Two near-identical images: the first
removed is one of them, after which the other is no longer redundant. Ties go to the seeded order.
Images without an embedding get no key here: the mark pass gives them 0, first (nothing says they
are redundant). The K nearest are `curate.search.neighbours`': exact up to its EXACT_MAX images in
a class; above it from the IVF indexes (exact similarities, a neighbour now and then missed:
benchmarks/RESULTS.md, "Embedding checks at scale"), so a class of millions costs the index's time,
not a quadratic one.
"""
from __future__ import annotations

import heapq

import numpy as np
import pyarrow as pa

from curate.labelled import Labelled
from curate.search import neighbours
from curate.seeds import seeded_keys

K = 10


def removal_order(vectors: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
    """The positions of `vectors`' rows in the order a greedy removal of the most redundant takes them."""
    n = len(vectors)
    if n < 2:
        return np.arange(n)
    ids, sims = neighbours(vectors, min(K, n - 1))
    alive = np.ones(n, dtype=bool)

    def redundancy(i: int) -> float:
        live = alive[ids[i]]
        return float(sims[i][live].max()) if live.any() else -np.inf

    heap = [(-redundancy(i), int(tiebreak[i]), i) for i in range(n)]
    heapq.heapify(heap)
    order = []
    while heap:
        neg, tie, i = heapq.heappop(heap)
        if not alive[i]:
            continue
        now = redundancy(i)
        if now < -neg:  # a neighbour went since this entry was pushed
            heapq.heappush(heap, (-now, tie, i))
            continue
        alive[i] = False
        order.append(i)
    return np.asarray(order, dtype=np.int64)


def diverse_keys(images: Labelled, sample_ids: pa.Array, seed: int) -> np.ndarray:
    """Each image's key (uint64, small = kept first), a class at a time (see module doc);
    `sample_ids` are the images' ids, in their order (ties go to their seeded keys)."""
    keys = np.zeros(len(images.labels), dtype=np.uint64)
    for at in images.by_class():
        tiebreak = seeded_keys(seed, sample_ids.take(pa.array(at)).to_pylist()).astype(np.int64) >> 1
        order = removal_order(images.vectors_of(at), tiebreak)
        images.release()
        keep_rank = np.arange(len(order), 0, -1)  # the first removed is kept last
        keys[at[order]] = spread(keep_rank, len(order) + 1)
    return keys


def spread(rank: np.ndarray, n: int) -> np.ndarray:
    """Ranks 1..n-1 spread over the uint64 range as the seeded keys are, so the rank histograms
    (`curate.rebalance.ranks`) cut a class as finely as with seeded keys."""
    return (rank.astype(np.float64) / n * 2.0**63).astype(np.uint64) << np.uint64(1)
