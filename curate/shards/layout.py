"""Which sample goes into which shard, and in what order (pure planning, no I/O).

A sample's shard is a seeded hash of (sample_id, copy) modulo the shard count, so adding or
removing a few images changes only the shards they fall into (an incremental refresh rewrites
just those) and every shard's class histogram is a random draw from the split's. Within a
shard, samples are interleaved across classes: each sample's position is its seeded rank within
its class divided by the class size (plus seeded jitter), so any run of rows read in order is
mixed too. The shard count covers the target size and is a multiple of `min_shards`.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from curate.seeds import seeded_key


def interleave(samples: pd.DataFrame, seed: int) -> pd.DataFrame:
    """`samples` (columns sample_id, copy_index, label, ...) in class-interleaved order."""
    return samples.iloc[interleave_order(samples, seed)]


def interleave_order(samples: pd.DataFrame, seed: int) -> np.ndarray:
    """The positions of `samples` (columns sample_id, copy_index, label) in class-interleaved
    order: by (rank within the class in seeded order + jitter) / class size, then seeded key."""
    key = _keys(samples, seed)
    jitter = (key >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    labels = pd.factorize(samples["label"], sort=True)[0]
    by_class = np.lexsort((key, labels))
    ordered = labels[by_class]
    new_class = np.r_[True, ordered[1:] != ordered[:-1]]
    starts = np.flatnonzero(new_class)
    group = np.cumsum(new_class) - 1
    rank = np.arange(len(by_class)) - starts[group]
    size = np.diff(np.r_[starts, len(by_class)])[group]
    position = np.empty(len(by_class), dtype=np.float64)
    position[by_class] = (rank + jitter[by_class]) / size
    return np.lexsort((key, position))


def assign(samples: pd.DataFrame, n_shards: int, seed: int) -> np.ndarray:
    """The shard number of every sample (columns sample_id, copy_index)."""
    return _keys(samples, seed + 1) % np.uint64(max(n_shards, 1))


def _keys(samples: pd.DataFrame, seed: int) -> np.ndarray:
    """The seeded key of every (sample_id, copy_index), as uint64 (no list of Python ints)."""
    pairs = zip(samples["sample_id"], samples["copy_index"])
    return np.fromiter((seeded_key(seed, f"{s}/{c}") for s, c in pairs), dtype=np.uint64, count=len(samples))


def shard_count(total_bytes: int, n_samples: int, shard_bytes: int, min_shards: int) -> int:
    """Shards needed for `total_bytes` at `shard_bytes` each, rounded up to a multiple of min_shards,
    never more than there are samples (unless min_shards asks for more)."""
    if n_samples == 0:
        return 0
    n = max(1, math.ceil(total_bytes / shard_bytes))
    n = min(n, n_samples)
    return max(min_shards, math.ceil(n / min_shards) * min_shards)


def row_group_size(avg_bytes: float, target_bytes: int = 32 * 2**20) -> int:
    """Rows per row group so that a row group is about `target_bytes` (at least 16 rows)."""
    return max(16, int(target_bytes / max(avg_bytes, 1.0)))

