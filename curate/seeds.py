"""Seeded pseudo-random numbers per key: every random choice curate makes (splits, which copies a
class keeps, shard assignment, augmentation seeds) is a seeded hash of a sample's id, so it is the
same whatever the row order, the partitioning or the machine. Imports nothing heavy but numpy."""
from __future__ import annotations

from typing import Iterable

import numpy as np
import xxhash


def seeded_key(seed: int, key: str) -> int:
    """A deterministic pseudo-random number per (seed, key), independent of row order."""
    return xxhash.xxh3_64_intdigest(f"{seed}\0{key}".encode())


def seeded_keys(seed: int, keys: Iterable[str]) -> np.ndarray:
    """`seeded_key` of every key, as uint64."""
    keys = list(keys)
    return np.fromiter((seeded_key(seed, k) for k in keys), dtype=np.uint64, count=len(keys))
