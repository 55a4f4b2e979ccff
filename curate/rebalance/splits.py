"""Train/val/test assignment: keep the splits the data came with, or re-split.

A re-split is stratified by class and group-aware: every member of a duplicate cluster goes
to the same split. With `keep_test`, groups that have a test member stay in test.
"""
from __future__ import annotations

import pandas as pd
import xxhash

from curate.errors import ConfigError
from curate.rebalance.strategies import _largest_remainder
from curate.schema import SPLITS


def parse_ratios(spec: str) -> dict[str, float]:
    """'0.8,0.1,0.1' -> {'train': 0.8, 'val': 0.1, 'test': 0.1}."""
    try:
        values = [float(x) for x in spec.split(",")]
    except ValueError as exc:
        raise ConfigError(f"rebalance.split {spec!r}: expected three numbers like 0.8,0.1,0.1") from exc
    if len(values) != 3 or any(v < 0 for v in values) or abs(sum(values) - 1) > 1e-6:
        raise ConfigError(f"rebalance.split {spec!r}: three non-negative fractions that sum to 1, e.g. 0.8,0.1,0.1")
    return dict(zip(SPLITS, values))


def seeded_key(seed: int, key: str) -> int:
    """A deterministic pseudo-random number per (seed, key), independent of row order."""
    return xxhash.xxh3_64_intdigest(f"{seed}\0{key}".encode())


def resplit(groups: pd.DataFrame, ratios: dict[str, float], seed: int, keep_test: bool) -> dict[str, str]:
    """group -> split for a frame with columns group, label, size, test (has a test member).

    Per class, the split targets are the ratios of the class's images; groups are placed
    largest first (then in seeded order) into the split furthest below its target.
    """
    out: dict[str, str] = {}
    for label, g in groups.groupby("label", sort=True, dropna=False):
        g = g.assign(_r=[seeded_key(seed, x) for x in g["group"]]).sort_values(["size", "_r"], ascending=[False, True])
        targets = _largest_remainder(ratios, int(g["size"].sum())) if g["size"].sum() else dict.fromkeys(SPLITS, 0)
        have = dict.fromkeys(SPLITS, 0)
        for grp, size, in_test in zip(g["group"], g["size"], g["test"]):
            if keep_test and in_test:
                split = "test"
            else:
                candidates = [s for s in SPLITS if not (keep_test and s == "test")]
                split = max(candidates, key=lambda s: (targets[s] - have[s], -SPLITS.index(s)))
            out[grp] = split
            have[split] += int(size)
    return out
