"""Exact Hamming-radius search over 64-bit hashes by multi-index hashing (pigeonhole bands).

Split the 64 bits into `m` bands: any partition of the bits into m sets, not only runs of
neighbouring bits. If two hashes differ in at most `t` bits, at least one band differs in at most
`r = t // m` bits (else the total would be at least m * (r + 1) > t). So probing, for every hash
and band, every key within `r` bit flips of its band value finds every pair within `t`: recall is
exact, not approximate, whatever bits each band holds. Each band is a direct-address table (CSR:
offsets by key; row ids and hashes sorted by key) for bands of up to 24 bits. Candidates are
verified on the full 64 bits.

Real pHashes are skewed (a nearly constant DC bit, correlated neighbouring coefficients, photos
of one scene sharing most bits), so bands of neighbouring bits can have few, crowded keys.
`plan_bands` therefore measures a sample of the hashes: it deals the bits to the bands so that
their collision entropies (from the sample's key counts) are balanced, estimates each layout's
candidates by probing the sample itself, and keeps the cheapest of these and the plain layout.

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
PROBES_PER_CHUNK = 2_000_000
SAMPLE_ROWS = 50_000  # rows of the hash column `plan_bands` measures
SAMPLE_QUERIES = 2_000  # of them, rows whose candidates it counts
CANDIDATE_COST = 4  # cost of verifying a candidate, in probes


@dataclass(frozen=True)
class Bands:
    bits: tuple[tuple[int, ...], ...]  # bit positions (0 = least significant) of each band, ascending
    radius: int  # bit flips probed per band

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(len(b) for b in self.bits)

    @staticmethod
    def contiguous(widths: tuple[int, ...], radius: int) -> "Bands":
        """Bands of neighbouring bits, the first band holding the most significant ones."""
        out, pos = [], 64
        for w in widths:
            pos -= w
            out.append(tuple(range(pos, pos + w)))
        return Bands(tuple(out), radius)


def _even_widths(m: int) -> tuple[int, ...]:
    base, extra = divmod(64, m)
    return tuple(base + (1 if i < extra else 0) for i in range(m))


def _uniform_options(n: int, threshold: int) -> list[tuple[float, tuple[int, ...], int]]:
    """(estimated cost for n uniform hashes, widths, radius) of every band count with bands <= 24 bits."""
    out = []
    for m in range(1, 17):
        widths = _even_widths(m)
        if max(widths) > MAX_BAND_BITS:
            continue
        r = threshold // m
        probes = sum(sum(math.comb(w, k) for k in range(r + 1)) for w in widths)
        candidates = sum(sum(math.comb(w, k) for k in range(r + 1)) * n / 2 ** w for w in widths)
        out.append((n * (probes + CANDIDATE_COST * candidates), widths, r))
    return out


def choose_bands(n: int, threshold: int) -> Bands:
    """The band split of neighbouring bits with the lowest estimated cost (probes + candidates) for
    n uniformly random hashes."""
    _cost, widths, r = min(_uniform_options(n, threshold))
    return Bands.contiguous(widths, r)


def flip_masks(width: int, radius: int) -> np.ndarray:
    """Every value with at most `radius` of the low `width` bits set."""
    masks = [0]
    for k in range(1, radius + 1):
        masks.extend(sum(1 << b for b in bits) for bits in itertools.combinations(range(width), k))
    return np.array(masks, dtype=np.uint64)


def _runs(bits: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """(bit position, length, offset in the key) of each run of consecutive positions in `bits`."""
    out: list[tuple[int, int, int]] = []
    for k, b in enumerate(bits):
        if out and out[-1][0] + out[-1][1] == b:
            out[-1] = (out[-1][0], out[-1][1] + 1, out[-1][2])
        else:
            out.append((b, 1, k))
    return out


def band_keys(hashes: np.ndarray, bits: tuple[int, ...]) -> np.ndarray:
    """Each hash's band key: bit k of the key is bit bits[k] of the hash (int64)."""
    h = np.asarray(hashes).view(np.uint64)
    key = np.zeros(h.shape, dtype=np.uint64)
    for pos, length, offset in _runs(bits):
        key |= ((h >> np.uint64(pos)) & np.uint64((1 << length) - 1)) << np.uint64(offset)
    return key.view(np.int64)


@dataclass(frozen=True)
class Table:
    """One band's direct-address table over an index of hashes."""

    order: np.ndarray  # index positions sorted by band key
    offsets: np.ndarray  # offsets[k]:offsets[k + 1] = the rows of `order` with key k
    hashes: np.ndarray  # index hashes in `order`'s order (verification reads them sequentially)


def band_table(hashes: np.ndarray, bits: tuple[int, ...]) -> Table:
    """The table of `hashes` (int64) for the band made of `bits`."""
    keys = band_keys(hashes, bits)
    order = np.argsort(keys, kind="stable").astype(np.int64)
    offsets = np.zeros((1 << len(bits)) + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys, minlength=1 << len(bits)), out=offsets[1:])
    return Table(order, offsets, hashes[order])


class HashesRef:
    """Wraps an array so that band tables can be cached per (array, band)."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def __hash__(self) -> int:
        return id(self.array)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HashesRef) and other.array is self.array


@functools.lru_cache(maxsize=4)
def _cached_table(ref: HashesRef, bits: tuple[int, ...]) -> Table:
    return band_table(ref.array, bits)


# ---------------------------------------------------------------- planning bands on a sample

def _collision(keys: np.ndarray) -> float:
    """Probability that two rows drawn (with replacement) have the same key."""
    counts = np.unique(keys, return_counts=True)[1].astype(np.float64)
    return float((counts ** 2).sum() / len(keys) ** 2)


def _bit_entropy(sample: np.ndarray) -> np.ndarray:
    """Shannon entropy of each bit position 0..63 over the sample."""
    p = np.array([((sample.view(np.uint64) >> np.uint64(b)) & np.uint64(1)).mean() for b in range(64)])
    with np.errstate(divide="ignore", invalid="ignore"):
        e = -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
    return np.nan_to_num(e)


def balanced_bands(sample: np.ndarray, widths: tuple[int, ...], radius: int) -> Bands:
    """Deal the 64 bits to bands of `widths` so that the bands' keys are about equally spread on
    the sample: bits by entropy, most informative first, each to the unfilled band whose keys
    collide most often so far (collisions measured jointly, so correlated bits count once)."""
    bits: list[list[int]] = [[] for _ in widths]
    collide = [1.0] * len(widths)
    for b in np.argsort(-_bit_entropy(sample), kind="stable").tolist():
        open_ = [i for i, w in enumerate(widths) if len(bits[i]) < w]
        i = max(open_, key=lambda k: collide[k])
        bits[i].append(b)
        bits[i].sort()
        collide[i] = _collision(band_keys(sample, tuple(bits[i])))
    return Bands(tuple(tuple(x) for x in bits), radius)


def sampled_candidates(sample: np.ndarray, queries: np.ndarray, bands: Bands, n: int) -> float:
    """Candidates per hash that `bands` would make an n-row column look at, measured by probing the
    sample (its query rows are rows of the sample: each one's own hit is not counted)."""
    total = 0.0
    for bits in bands.bits:
        keys = np.sort(band_keys(sample, bits))
        masks = flip_masks(len(bits), bands.radius).astype(np.int64)
        probe = (band_keys(queries, bits)[:, None] ^ masks[None, :]).ravel()
        hits = np.searchsorted(keys, probe, side="right") - np.searchsorted(keys, probe, side="left")
        total += (hits.sum() - len(queries)) / len(queries)
    return total * (n - 1) / max(len(sample) - 1, 1)


def plan_bands(hashes: np.ndarray, threshold: int, seed: int = 0) -> Bands:
    """The cheapest band layout for this hash column, by its measured key distribution.

    For each band count whose uniform-model cost is within 8x of the best, two layouts (neighbouring
    bits; bits dealt by `balanced_bands`) are costed as probes + 4 x candidates, candidates measured
    on up to SAMPLE_ROWS rows (`sampled_candidates`). Any layout keeps the search exact.
    """
    n = len(hashes)
    options = _uniform_options(n, threshold)
    best_uniform = min(options)[0]
    rng = np.random.default_rng(seed)
    sample = hashes if n <= SAMPLE_ROWS else hashes[np.sort(rng.choice(n, SAMPLE_ROWS, replace=False))]
    queries = sample[rng.choice(len(sample), min(len(sample), SAMPLE_QUERIES), replace=False)]
    best: tuple[float, Bands] | None = None
    for cost, widths, r in options:
        if cost > 8 * best_uniform or n < 2:
            continue
        probes = sum(len(flip_masks(w, r)) for w in widths)
        for bands in (Bands.contiguous(widths, r), balanced_bands(sample, widths, r)):
            est = probes + CANDIDATE_COST * sampled_candidates(sample, queries, bands, n)
            if best is None or est < best[0]:
                best = (est, bands)
    return best[1] if best is not None else choose_bands(n, threshold)


# ---------------------------------------------------------------- probing

def probed(qk: np.ndarray, masks: np.ndarray, one_side: bool) -> tuple[np.ndarray, np.ndarray]:
    """Every probe of the query keys `qk` (each key XOR each of `masks`) and the query it is for;
    with `one_side`, only probes at or above the query's own key (a self-join then meets each pair
    of keys from one side)."""
    probe = qk[:, None] ^ masks[None, :]
    owner = np.broadcast_to(np.arange(len(qk))[:, None], probe.shape)
    if one_side:
        up = probe >= qk[:, None]
        return probe[up], owner[up]
    return probe.ravel(), owner.ravel()


def candidates_within(offsets: np.ndarray, hashes: np.ndarray, slots: np.ndarray, owner: np.ndarray,
                      qh: np.ndarray, threshold: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The rows filed under each probe's slot (CSR `offsets` over `hashes`) within `threshold` bits of
    the probe's query hash (`qh[owner]`): (query, row position, distance), and how many candidates
    were looked at."""
    start = offsets[slots]
    lens = offsets[slots + 1] - start
    total = int(lens.sum())
    src = np.repeat(owner, lens)
    pos = np.arange(total, dtype=np.int64) + np.repeat(start - (np.cumsum(lens) - lens), lens)
    dist = hamming(qh[src], hashes[pos])
    ok = np.flatnonzero(dist <= threshold)
    return src[ok], pos[ok], dist[ok].astype(np.int16), total


def _probe_chunk_of(qk: np.ndarray, qh: np.ndarray, qid: np.ndarray, masks: np.ndarray, table: Table,
                    threshold: int, self_join: bool, bits: tuple[int, ...]
                    ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], int]:
    """Pairs within threshold of one chunk of queries through one band, and the candidates looked at.

    With `self_join`, an unordered pair is taken from one side only: between different keys from
    the lower key, within one key from the lower row id; pairs come out as (lower, higher) id.
    """
    probe, owner = probed(qk, masks, self_join)
    src, pos, d, total = candidates_within(table.offsets, table.hashes, probe, owner, qh, threshold)
    cand, q = table.order[pos], qid[src]
    if self_join:
        same_key = band_keys(table.hashes[pos], bits) == qk[src]
        keep = ~same_key | (q < cand)
        q, cand, d = q[keep], cand[keep], d[keep]
        q, cand = np.minimum(q, cand), np.maximum(q, cand)
    return (q, cand, d), total


def probe_band(index: np.ndarray, queries: np.ndarray, query_ids: np.ndarray, threshold: int, bands: Bands,
               band: int, self_join: bool, table: Table | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (query id, index position, distance <= threshold) found through one band.

    With `self_join`, queries are positions in `index` and each unordered pair within the band's
    radius comes out once per band that finds it, as (lower, higher) position. Queries go in chunks
    sized from the candidates the previous chunk looked at, so a crowded band cannot blow memory.
    """
    bits = bands.bits[band]
    table = table if table is not None else band_table(index, bits)
    qkeys = band_keys(queries, bits)
    masks = flip_masks(len(bits), bands.radius).astype(np.int64)
    rate = max(1.0, len(masks) * len(index) / 2 ** len(bits))  # candidates per query, until measured
    out: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    lo = 0
    while lo < len(queries):
        step = max(1, min(int(CANDIDATES_PER_CHUNK / rate), PROBES_PER_CHUNK // len(masks)))
        hi = min(len(queries), lo + step)
        found, looked = _probe_chunk_of(qkeys[lo:hi], queries[lo:hi], query_ids[lo:hi], masks, table, threshold,
                                        self_join, bits)
        out.append(found)
        rate = max(1.0, looked / (hi - lo))
        lo = hi
    if not out:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.int16)
    return tuple(np.concatenate(x) for x in zip(*out))  # type: ignore[return-value]


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
    """Every band in turn, its table built, probed and dropped: one table in memory at a time."""
    index = np.ascontiguousarray(index, dtype=np.int64)
    queries = index if self_join else np.ascontiguousarray(queries, dtype=np.int64)
    bands = plan_bands(index, threshold)
    ids = np.arange(len(queries), dtype=np.int64)
    found = [probe_band(index, queries, ids, threshold, bands, b, self_join) for b in range(len(bands.bits))]
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
    table = _cached_table(HashesRef(hashes), bands.bits[band])
    return probe_band(hashes, hashes[lo:hi], ids, threshold, bands, band, True, table)


def radius_pairs_on(client: object, hashes: np.ndarray, threshold: int, chunks_per_band: int = 4
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`radius_pairs` as (band, chunk of queries) tasks on a Dask cluster.

    The bands are planned on the client; the hash column is broadcast once; each worker builds a
    band's table once and reuses it for every chunk of that band it runs.
    """
    hashes = np.ascontiguousarray(hashes, dtype=np.int64)
    n = len(hashes)
    bands = plan_bands(hashes, threshold)
    [shared] = client.scatter([hashes], broadcast=True)  # type: ignore[attr-defined]
    step = max(1, -(-n // chunks_per_band))
    futures = [client.submit(_probe_chunk, shared, threshold, bands, b, lo, min(n, lo + step), pure=False)  # type: ignore[attr-defined]
               for b in range(len(bands.bits)) for lo in range(0, n, step)]
    found = client.gather(futures)  # type: ignore[attr-defined]
    if not found:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.int16)
    return merged_pairs(found, n)
