"""Exact Hamming-radius self-join of 64-bit hashes as a shuffle: memory per task bounded by n / P.

`search.radius_pairs_on` gives every worker the whole hash column and a whole band table (8 bytes
x (2n + 2^w) each). Here no task holds more than two partitions of one band:

* Layout. `search.plan_bands` splits the 64 bits into m bands probed at radius r = t // m. Within
  each band, p of its bits (chosen on a sample so the partitions come out even) are moved to the
  top of the band key; a row's partition is those p top key bits, P = 2^p partitions per band.
* Map (`route_chunk`, one task per chunk of rows). For each band, every row is written once, to
  its partition: per-(chunk, band) .npy files in `work`, sorted by partition, with offsets (a disk
  shuffle: the work folder must be shared by the workers, as OUT is).
* Reduce (`search_partition`, one task per (band, partition a)). Reads partition a's slice of
  every chunk's files (its queries) and builds a direct-address table over it on the low w - p key
  bits (2^(w-p) offsets); then, one at a time, the partitions b that a probe of a's rows can reach
  and that a is the side to search (`neighbours`). A probe is key XOR a flip mask of <= r bits, so
  it lands in partition a XOR (the mask's top p bits): one of R = sum_{k<=r} C(p, k) partitions
  (flips of the low w - p bits stay in a). Each b is read, tabled, probed with exactly the masks
  whose top bits are a XOR b, and dropped. Candidates are verified on all 64 bits.

A self-join looks at each unordered pair from one side only: within a partition from the lower key
(or, for equal keys, the lower id), as `search` does; between partitions a != b from the side
`sends` picks (exactly one of sends(a, b), sends(b, a) holds, and a partition searches about half
of its R - 1 neighbours, so the load stays even). So each row is written m times and read about
m (1 + (R - 1) / 2) times; a task holds its own partition, one neighbour and the candidate chunk.

Exact recall: a pair within t bits is within r bits on some band (pigeonhole, see `search`); in
the lowest such band, key(c) = key(q) XOR mask with popcount(mask) <= r for the two rows q, c, so
mask is one of q's probes and one of c's. If both rows are in one partition, let q be the row with
the lower key (or, for equal keys, the lower id): the task of that partition probes q with mask
(the probe is >= key(q)) and finds c in its own table. If they are in partitions a = part(q) != b
= part(c), let q be the row on the side that `sends` (a to b): the mask's top bits are a XOR b,
one of the R patterns, so a's task reads b and probes q with every mask whose top bits are a XOR
b, mask among them, and finds c. Each pair is emitted once in all: within a band from one side
only (as above), and a band drops a pair that an earlier band finds (its distance on that band's
bits is <= r), so the tasks' outputs are disjoint and need no merge.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from curate.dedup.search import (
    CANDIDATES_PER_CHUNK,
    PROBES_PER_CHUNK,
    SAMPLE_ROWS,
    Bands,
    band_keys,
    candidates_within,
    flip_masks,
    plan_bands,
    probed,
)
from curate.engine import run_tasks
from curate.imaging.hashes import hamming
from curate.tasks import RowRange, row_ranges

ROWS_PER_TASK = 2_000_000  # rows a reduce task holds at once: its own partition + one neighbour's
CHUNK_ROWS = 500_000  # rows of the column one map task routes
MIN_LOCAL_BITS = 8  # key bits left below the partition bits


@dataclass(frozen=True)
class Layout:
    """Bands whose keys carry the partition in their top `part_bits` bits."""

    bands: Bands  # per band, its bits (not ascending): the partition bits last, as key bits w-p .. w-1
    part_bits: tuple[int, ...]  # p per band

    def low_bits(self, band: int) -> int:
        return len(self.bands.bits[band]) - self.part_bits[band]


@dataclass(frozen=True)
class Part:
    """A reduce task: partition `part` of band `band`, over `chunks` map outputs."""

    band: int
    part: int
    chunks: int

    @property
    def rel(self) -> str:  # its name in `run_tasks` messages
        return f"band {self.band} partition {self.part}"


def _collision(keys: np.ndarray) -> float:
    counts = np.bincount(keys).astype(np.float64)
    return float((counts ** 2).sum() / len(keys) ** 2)


def partition_bits(sample: np.ndarray, bits: tuple[int, ...], p: int) -> tuple[int, ...]:
    """`bits` reordered so that the p bits whose joint values spread the sample most evenly (lowest
    collision probability, picked greedily) come last, i.e. form the top of the key."""
    chosen: list[int] = []
    for _ in range(p):
        rest = [b for b in bits if b not in chosen]
        chosen.append(min(rest, key=lambda b: _collision(band_keys(sample, tuple(chosen + [b])))))
    return tuple(b for b in bits if b not in chosen) + tuple(chosen)


def choose_part_bits(n: int, width: int, rows_per_task: int) -> int:
    """The fewest partition bits whose tasks (own partition + one neighbour) hold `rows_per_task`
    rows or fewer, if the band's keys leave room."""
    p = 0
    while p < width - MIN_LOCAL_BITS and 2 * n / 2 ** p > rows_per_task:
        p += 1
    return p


def plan_layout(hashes: np.ndarray, threshold: int, rows_per_task: int = ROWS_PER_TASK, seed: int = 0) -> Layout:
    """`plan_bands` on the column, then the partition bits of each band (on a sample of it)."""
    bands = plan_bands(hashes, threshold, seed)
    rng = np.random.default_rng(seed)
    n = len(hashes)
    sample = hashes if n <= SAMPLE_ROWS else hashes[np.sort(rng.choice(n, SAMPLE_ROWS, replace=False))]
    sample = np.asarray(sample, dtype=np.int64)
    ps = tuple(choose_part_bits(n, len(b), rows_per_task) for b in bands.bits)
    bits = tuple(partition_bits(sample, b, p) for b, p in zip(bands.bits, ps))
    return Layout(Bands(bits, bands.radius), ps)


# ---------------------------------------------------------------- map: route rows to partitions

def _files(work: Path, chunk: int, band: int) -> tuple[Path, Path, Path]:
    stem = f"rows-{chunk:05d}-{band:02d}"
    return work / f"{stem}.ids.npy", work / f"{stem}.hashes.npy", work / f"{stem}.offsets.npy"


def route_chunk(chunk: RowRange, layout: Layout, work: Path) -> int:
    """Map task: read rows chunk.lo:chunk.hi of work/hashes.npy; per band, write them sorted by
    partition, with offsets (partition k is rows offsets[k]:offsets[k + 1]). Returns the rows."""
    hashes = np.array(np.load(work / "hashes.npy", mmap_mode="r")[chunk.lo:chunk.hi])
    ids = np.arange(chunk.lo, chunk.hi, dtype=np.int64)
    for b, bits in enumerate(layout.bands.bits):
        n_parts = 1 << layout.part_bits[b]
        parts = band_keys(hashes, bits) >> layout.low_bits(b)
        order = np.argsort(parts, kind="stable")
        offsets = np.zeros(n_parts + 1, dtype=np.int64)
        np.cumsum(np.bincount(parts, minlength=n_parts), out=offsets[1:])
        f_ids, f_hashes, f_offsets = _files(work, chunk.index, b)
        np.save(f_ids, ids[order])
        np.save(f_hashes, hashes[order])
        np.save(f_offsets, offsets)
    return chunk.hi - chunk.lo


def sends(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether partition a's rows probe partition b's (a != b): for every pair exactly one of
    sends(a, b) and sends(b, a) holds (a < b, flipped when a + b is odd), and a partition sends to
    about half of any set of others, so no partition searches all of its neighbours."""
    return (a < b) ^ ((a + b) % 2 == 1)


def neighbours(part: int, width: int, radius: int, low: int) -> list[int]:
    """The partitions (own first) that partition `part`'s probes reach and that it is the side to search."""
    patterns = np.unique(flip_masks(width, radius).astype(np.int64) >> low)
    others = part ^ patterns[patterns != 0]
    return [part] + others[sends(np.full(len(others), part), others)].tolist()


# ---------------------------------------------------------------- reduce: one partition of one band

def _read_part(work: Path, part: Part, which: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, hashes) of partition `which` of part.band, from every chunk's files (slices only)."""
    ids, hashes = [], []
    for c in range(part.chunks):
        f_ids, f_hashes, f_offsets = _files(work, c, part.band)
        off = np.load(f_offsets)
        lo, hi = int(off[which]), int(off[which + 1])
        ids.append(np.array(np.load(f_ids, mmap_mode="r")[lo:hi]))
        hashes.append(np.array(np.load(f_hashes, mmap_mode="r")[lo:hi]))
    return np.concatenate(ids), np.concatenate(hashes)


@dataclass(frozen=True)
class LocalTable:
    """The partition's index rows sorted by the low key bits, with direct-address offsets."""

    ids: np.ndarray
    hashes: np.ndarray
    keys: np.ndarray  # full band keys, in the same order
    offsets: np.ndarray  # offsets[k]:offsets[k + 1] = rows whose low key bits are k


def local_table(ids: np.ndarray, hashes: np.ndarray, bits: tuple[int, ...], low: int) -> LocalTable:
    keys = band_keys(hashes, bits)
    local = keys & ((1 << low) - 1)
    order = np.argsort(local, kind="stable")
    offsets = np.zeros((1 << low) + 1, dtype=np.int64)
    np.cumsum(np.bincount(local, minlength=1 << low), out=offsets[1:])
    return LocalTable(ids[order], hashes[order], keys[order], offsets)


def _earlier_band_finds(x: np.ndarray, y: np.ndarray, bands: Bands, band: int) -> np.ndarray:
    """Pairs (x, y) whose distance on some band before `band` is <= radius (that band emits them)."""
    found = np.zeros(len(x), dtype=bool)
    for bits in bands.bits[:band]:
        mask = np.int64(np.uint64(sum(1 << b for b in bits)).view(np.int64))
        found |= hamming(x & mask, y & mask) <= bands.radius
    return found


def probe_local(qk: np.ndarray, qh: np.ndarray, qid: np.ndarray, masks: np.ndarray, table: LocalTable,
                low: int, threshold: int, layout: Layout, band: int, own_part: bool
                ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], int]:
    """Pairs (lower id, higher id, distance) of queries probed with `masks` (all of which lead into
    this partition; `own_part`: the queries' own), each pair once over all bands; and the
    candidates looked at."""
    # in its own partition, from the lower key only; across partitions `sends` already chose the side
    probe, owner = probed(qk, masks, own_part)
    src, pos, d, total = candidates_within(table.offsets, table.hashes, probe & ((1 << low) - 1), owner, qh,
                                           threshold)
    q, c = qid[src], table.ids[pos]
    keep = ((table.keys[pos] != qk[src]) | (q < c)) & ~_earlier_band_finds(qh[src], table.hashes[pos],
                                                                          layout.bands, band)
    q, c, d = q[keep], c[keep], d[keep]
    return (np.minimum(q, c), np.maximum(q, c), d), total


def _probe_all(qk: np.ndarray, qh: np.ndarray, qid: np.ndarray, masks: np.ndarray, table: LocalTable,
               threshold: int, layout: Layout, band: int, own_part: bool
               ) -> tuple[list[tuple[np.ndarray, np.ndarray, np.ndarray]], int]:
    """`probe_local` over the queries in chunks sized from the candidates met so far, as in
    `search.probe_band`, so a crowded key cannot blow memory."""
    low = layout.low_bits(band)
    rate = max(1.0, len(masks) * len(table.ids) / 2 ** low)
    out, candidates, lo = [], 0, 0
    while lo < len(qk):
        step = max(1, min(int(CANDIDATES_PER_CHUNK / rate), PROBES_PER_CHUNK // len(masks)))
        s = slice(lo, lo + step)
        found, looked = probe_local(qk[s], qh[s], qid[s], masks, table, low, threshold, layout, band, own_part)
        out.append(found)
        candidates += looked
        rate = max(1.0, looked / len(qk[s]))
        lo += step
    return out, candidates


def search_partition(part: Part, layout: Layout, threshold: int, work: Path
                     ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], dict[str, float]]:
    """Reduce task: the pairs this (band, partition) owns, and its costs (own rows, neighbour rows
    read, most rows held at once, candidates, wall seconds, this thread's CPU seconds)."""
    t0, c0 = time.perf_counter(), time.thread_time()
    bits, low = layout.bands.bits[part.band], layout.low_bits(part.band)
    qid, qh = _read_part(work, part, part.part)
    qk = band_keys(qh, bits)
    masks = flip_masks(len(bits), layout.bands.radius).astype(np.int64)
    out: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    candidates = read = held = 0
    for b in neighbours(part.part, len(bits), layout.bands.radius, low):
        table = local_table(*_read_part(work, part, b), bits, low)
        found, looked = _probe_all(qk, qh, qid, masks[(masks >> low) == (part.part ^ b)], table, threshold,
                                   layout, part.band, own_part=b == part.part)
        out.extend(found)
        candidates += looked
        read += len(table.ids)
        held = max(held, len(table.ids))
    stats = {"band": part.band, "part": part.part, "own_rows": len(qid), "rows_read": read,
             "rows_held": len(qid) + held, "candidates": candidates, "seconds": time.perf_counter() - t0,
             "cpu_seconds": time.thread_time() - c0}
    if not out:
        empty = np.zeros(0, dtype=np.int64)
        return (empty, empty, np.zeros(0, dtype=np.int16)), stats
    return tuple(np.concatenate(x) for x in zip(*out)), stats  # type: ignore[return-value]


# ---------------------------------------------------------------- orchestration

@dataclass
class Costs:
    """What a partitioned search did: its layout, the two phases' wall seconds and each reduce
    task's costs (`search_partition`)."""

    layout: Layout | None = None
    route_seconds: float = 0.0
    search_seconds: float = 0.0
    parts: list[dict[str, float]] = field(default_factory=list)


def partitioned_pairs(hashes: np.ndarray, threshold: int, work: Path, client: Any = None,
                      rows_per_task: int = ROWS_PER_TASK, chunk_rows: int = CHUNK_ROWS
                      ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], Costs]:
    """All pairs i < j with Hamming(hashes[i], hashes[j]) <= threshold, exactly, as map and reduce
    tasks through `run_tasks` (on `client`, or in-process when it is None).

    Writes work/hashes.npy and the shuffle files under `work` (a folder every worker can read).
    Returns (i, j, d) sorted by (i, j), and the costs.
    """
    hashes = np.ascontiguousarray(hashes, dtype=np.int64)
    costs = Costs()
    if len(hashes) < 2:
        empty = np.zeros(0, dtype=np.int64)
        return (empty, empty, np.zeros(0, dtype=np.int16)), costs
    work.mkdir(parents=True, exist_ok=True)
    np.save(work / "hashes.npy", hashes)
    costs.layout = layout = plan_layout(hashes, threshold, rows_per_task)
    n = len(hashes)
    t0 = time.perf_counter()
    chunks = row_ranges(n, chunk_rows)
    run_tasks(client, route_chunk, chunks, label="hash search: route", layout=layout, work=work)
    t1 = time.perf_counter()
    parts = [Part(b, k, len(chunks)) for b in range(len(layout.bands.bits)) for k in range(1 << layout.part_bits[b])]
    results = run_tasks(client, search_partition, parts, label="hash search: partitions", layout=layout,
                        threshold=threshold, work=work)
    costs.route_seconds, costs.search_seconds = t1 - t0, time.perf_counter() - t1
    costs.parts = [r[1] for r in results]
    i, j, d = (np.concatenate(x) for x in zip(*(r[0] for r in results)))
    order = np.lexsort((j, i))
    return (i[order], j[order], d[order]), costs
