"""Exact Hamming-radius search over 64-bit hashes by multi-index hashing (pigeonhole bands).

Split the 64 bits into `m` bands. If two hashes differ in at most `t` bits, at least one band
differs in at most `r = t // m` bits (else the total would be at least m * (r + 1) > t). So
probing, for every hash and band, every key within `r` bit flips of its band value finds every
pair within `t`: recall is exact, not approximate. Each band is a direct-address table (CSR:
offsets by key, ids sorted by key) for bands of up to 24 bits. `m` is chosen by a cost model of
probes plus candidates. Candidates are verified on the full 64 bits.

Work splits into (band, chunk of queries) tasks; a task holds the hash array and one band's
table, so memory is bounded by the collection's hash column (8 bytes per image), not by pairs.
"""
from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np

from curate.imaging.hashes import hamming

MAX_BAND_BITS = 24
CANDIDATES_PER_CHUNK = 8_000_000


@dataclass(frozen=True)
class Bands:
    widths: tuple[int, ...]
    radius: int  # bit flips probed per band

    @property
    def shifts(self) -> tuple[int, ...]:
        out, pos = [], 64
        for w in self.widths:
            pos -= w
            out.append(pos)
        return tuple(out)


def choose_bands(n: int, threshold: int) -> Bands:
    """The band split with the lowest estimated cost (probes + candidates) for n hashes."""
    best: tuple[float, Bands] | None = None
    for m in range(1, 17):
        base, extra = divmod(64, m)
        widths = tuple(base + (1 if i < extra else 0) for i in range(m))
        if max(widths) > MAX_BAND_BITS:
            continue
        r = threshold // m
        probes = sum(sum(math.comb(w, k) for k in range(r + 1)) for w in widths)
        candidates = sum(sum(math.comb(w, k) for k in range(r + 1)) * n / 2 ** w for w in widths)
        cost = n * (probes + 4 * candidates)
        if best is None or cost < best[0]:
            best = (cost, Bands(widths, r))
    assert best is not None
    return best[1]


def flip_masks(width: int, radius: int) -> np.ndarray:
    """Every value with at most `radius` of the low `width` bits set."""
    masks = [0]
    for k in range(1, radius + 1):
        masks.extend(sum(1 << b for b in bits) for bits in itertools.combinations(range(width), k))
    return np.array(masks, dtype=np.uint64)


def band_keys(hashes: np.ndarray, shift: int, width: int) -> np.ndarray:
    return ((hashes.view(np.uint64) >> np.uint64(shift)) & np.uint64((1 << width) - 1)).astype(np.int64)


@functools.lru_cache(maxsize=4)
def _table(hashes_key: int, shift: int, width: int, hashes_ref: "HashesRef") -> tuple[np.ndarray, np.ndarray]:
    keys = band_keys(hashes_ref.array, shift, width)
    order = np.argsort(keys, kind="stable").astype(np.int64)
    offsets = np.zeros((1 << width) + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys, minlength=1 << width), out=offsets[1:])
    return order, offsets


class HashesRef:
    """Wraps an array so that band tables can be cached per (array, band)."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def __hash__(self) -> int:
        return id(self.array)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HashesRef) and other.array is self.array


def probe_band(index: np.ndarray, queries: np.ndarray, query_ids: np.ndarray, threshold: int, bands: Bands,
               band: int, self_join: bool, ref: HashesRef | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (query id, index position, distance <= threshold) found through one band.

    With `self_join`, queries are positions in `index` and only pairs with query id < index
    position are returned (each unordered pair once per band that finds it).
    """
    shift, width = bands.shifts[band], bands.widths[band]
    ref = ref or HashesRef(index)
    order, offsets = _table(id(index), shift, width, ref)
    qkeys = band_keys(queries, shift, width)
    masks = flip_masks(width, bands.radius).astype(np.int64)
    out_q, out_j, out_d = [], [], []
    est = max(1, int(len(masks) * max(len(index), 1) / 2 ** width))
    step = max(1, CANDIDATES_PER_CHUNK // est)
    for lo in range(0, len(queries), step):
        qk = qkeys[lo:lo + step]
        qh = queries[lo:lo + step]
        qid = query_ids[lo:lo + step]
        probe = (qk[:, None] ^ masks[None, :]).ravel()
        start, end = offsets[probe], offsets[probe + 1]
        lens = end - start
        total = int(lens.sum())
        if total == 0:
            continue
        src = np.repeat(np.arange(len(probe)) // len(masks), lens)
        first = np.cumsum(lens) - lens
        cand = order[np.arange(total) - np.repeat(first, lens) + np.repeat(start, lens)]
        qsel = qid[src]
        keep = (qsel < cand) if self_join else np.ones(total, dtype=bool)
        src, cand, qsel = src[keep], cand[keep], qsel[keep]
        dist = hamming(qh[src], index[cand])
        ok = dist <= threshold
        out_q.append(qsel[ok])
        out_j.append(cand[ok])
        out_d.append(dist[ok].astype(np.int16))
    if not out_q:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.int16)
    return np.concatenate(out_q), np.concatenate(out_j), np.concatenate(out_d)


def merged_pairs(found: list[tuple[np.ndarray, np.ndarray, np.ndarray]], n: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (q, j, d) arrays of every probe joined, each pair once (see `unique_pairs`)."""
    q, j, d = (np.concatenate(x) for x in zip(*found))
    return unique_pairs(q, j, d, n)


def unique_pairs(q: np.ndarray, j: np.ndarray, d: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drop repeats of the same (q, j) pair (found through several bands), keeping the least d."""
    if len(q) == 0:
        return q, j, d
    code = q.astype(np.int64) * n + j
    order = np.lexsort((d, code))
    code, d = code[order], d[order]
    first = np.ones(len(code), dtype=bool)
    first[1:] = code[1:] != code[:-1]
    return code[first] // n, code[first] % n, d[first]


def _search(index: np.ndarray, queries: np.ndarray, threshold: int, self_join: bool
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    index = np.ascontiguousarray(index, dtype=np.int64)
    queries = index if self_join else np.ascontiguousarray(queries, dtype=np.int64)
    bands = choose_bands(len(index), threshold)
    ref = HashesRef(index)
    ids = np.arange(len(queries), dtype=np.int64)
    found = [probe_band(index, queries, ids, threshold, bands, b, self_join, ref) for b in range(len(bands.widths))]
    _table.cache_clear()
    return merged_pairs(found, max(len(index), 1))


def radius_pairs(hashes: np.ndarray, threshold: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs i < j with Hamming(hashes[i], hashes[j]) <= threshold, exactly (in-process)."""
    return _search(hashes, hashes, threshold, self_join=True)


def query_pairs(index: np.ndarray, queries: np.ndarray, threshold: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (query i, index j) with Hamming(queries[i], index[j]) <= threshold, exactly."""
    return _search(index, queries, threshold, self_join=False)


def _probe_chunk(hashes: np.ndarray, threshold: int, bands: Bands, band: int, lo: int, hi: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ids = np.arange(lo, hi, dtype=np.int64)
    return probe_band(hashes, hashes[lo:hi], ids, threshold, bands, band, True, HashesRef(hashes))


def radius_pairs_on(client: object, hashes: np.ndarray, threshold: int, chunks_per_band: int = 4
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`radius_pairs` as (band, chunk of queries) tasks on a Dask cluster.

    The hash column is broadcast once; each worker builds a band's table once and reuses it
    for every chunk of that band it runs.
    """
    hashes = np.ascontiguousarray(hashes, dtype=np.int64)
    n = len(hashes)
    bands = choose_bands(n, threshold)
    [shared] = client.scatter([hashes], broadcast=True)  # type: ignore[attr-defined]
    step = max(1, -(-n // chunks_per_band))
    futures = [client.submit(_probe_chunk, shared, threshold, bands, b, lo, min(n, lo + step), pure=False)  # type: ignore[attr-defined]
               for b in range(len(bands.widths)) for lo in range(0, n, step)]
    found = client.gather(futures)  # type: ignore[attr-defined]
    if not found:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.int16)
    return merged_pairs(found, n)
