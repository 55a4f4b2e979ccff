"""Rank cut-offs over partitioned rows without a global sort.

Rebalancing keeps "the first `want` rows of a class" in a seeded order, and re-splitting sends
"the first `need` rows" of a class to train. Over many partitions that is a cut-off problem:
find, per group, the sort key of the row at rank `c`; every partition then decides its own rows
by comparing against it. Rows are ordered by a 64-bit `order` key (its top bits may carry a
tier) and then by `path`, so the order is total and the same whatever the partitioning.

Two passes over the partitions, each returning small tables:
  1. a histogram per group of the order key's top `BUCKET_BITS` bits (`histogram`); `locate`
     finds the bucket holding each requested rank;
  2. the rows of those boundary buckets only (`boundary_rows`, about rows / 2**BUCKET_BITS of
     them); `resolve` sorts them and returns the exact cut `(order, path)`.
A row is in front of a cut when `(order, path) < cut` (`in_front`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Iterable

import numpy as np
import pandas as pd

BUCKET_BITS = 10
_SHIFT = np.uint64(64 - BUCKET_BITS)


@dataclass(frozen=True)
class Cut:
    """Rows strictly before `(order, path)` are in front; `everything` puts every row in front."""

    order: int = 0
    path: str = ""
    everything: bool = False


NOTHING = Cut()  # (0, "") precedes every row
EVERYTHING = Cut(everything=True)


def order_key(tier: np.ndarray, key: np.ndarray) -> np.ndarray:
    """A uint64 sort key: `tier` (0-3) in the top two bits, the seeded key's top 62 bits below."""
    return (tier.astype(np.uint64) << np.uint64(62)) | (key.astype(np.uint64) >> np.uint64(2))


def bucket(order: np.ndarray) -> np.ndarray:
    return (order >> _SHIFT).astype(np.int64)


def histogram(frame: pd.DataFrame, by: list[str]) -> pd.Series:
    """Row counts per (*by, bucket of the frame's `order`)."""
    return frame.assign(_bucket=bucket(frame["order"].to_numpy())).groupby(by + ["_bucket"]).size()


def merge_histograms(parts: Iterable[pd.Series]) -> pd.Series:
    parts = [p for p in parts if len(p)]
    return pd.concat(parts).groupby(level=list(range(parts[0].index.nlevels))).sum() if parts else pd.Series(dtype=int)


@dataclass(frozen=True)
class Boundary:
    """Where rank `rank` of `group` falls: in bucket `bucket`, after `below` rows of lower buckets."""

    group: Hashable
    rank: int
    bucket: int
    below: int

    @property
    def cell(self) -> tuple:
        """(*group, bucket): the key of the rows this boundary needs."""
        return (*_as_tuple(self.group), self.bucket)


def locate(hist: pd.Series, ranks: dict[Hashable, list[int]]) -> tuple[dict[tuple[Hashable, int], Cut], list[Boundary]]:
    """Cuts that the histogram settles (rank 0, or at least the group's size) and the
    boundaries that need the rows of one bucket. `hist` is indexed by (*group, bucket)."""
    settled: dict[tuple[Hashable, int], Cut] = {}
    boundaries: list[Boundary] = []
    for group, wanted in ranks.items():
        counts = _group_counts(hist, group)
        total = int(counts.sum())
        cumulative = np.cumsum(counts.to_numpy())
        for rank in wanted:
            if rank <= 0:
                settled[(group, rank)] = NOTHING
            elif rank >= total:
                settled[(group, rank)] = EVERYTHING
            else:
                i = int(np.searchsorted(cumulative, rank, side="right"))
                boundaries.append(Boundary(group, rank, int(counts.index[i]), int(cumulative[i - 1]) if i else 0))
    return settled, boundaries


def _as_tuple(group: Hashable) -> tuple:
    return group if isinstance(group, tuple) else (group,)


def _group_counts(hist: pd.Series, group: Hashable) -> pd.Series:
    try:
        return hist.loc[_as_tuple(group)].sort_index()
    except KeyError:
        return pd.Series(dtype=int)


def boundary_rows(frame: pd.DataFrame, by: list[str], wanted: pd.DataFrame) -> pd.DataFrame:
    """The rows of `frame` in the wanted (*by, bucket) cells: columns *by, order, path."""
    cells = frame.assign(_bucket=bucket(frame["order"].to_numpy()))
    return cells.merge(wanted, on=by + ["_bucket"], how="inner")[by + ["order", "path"]]


def wanted_cells(boundaries: list[Boundary], by: list[str]) -> pd.DataFrame:
    """The (*by, bucket) cells whose rows `resolve` needs, as a frame to join on."""
    return pd.DataFrame(sorted({b.cell for b in boundaries}), columns=by + ["_bucket"])


def resolve(boundaries: list[Boundary], rows: pd.DataFrame, by: list[str]) -> dict[tuple[Hashable, int], Cut]:
    """The exact cut of every boundary from the rows of its bucket (from every partition)."""
    rows = rows.assign(_bucket=bucket(rows["order"].to_numpy()))
    grouped = dict(iter(rows.groupby(by + ["_bucket"], sort=False)))
    cuts = {}
    for b in boundaries:
        members = grouped[b.cell].sort_values(["order", "path"])
        row = members.iloc[b.rank - b.below]
        cuts[(b.group, b.rank)] = Cut(int(row["order"]), str(row["path"]))
    return cuts


def in_front(order: np.ndarray, path: pd.Series, cut: Cut) -> np.ndarray:
    """Rows strictly before the cut."""
    if cut.everything:
        return np.ones(len(order), dtype=bool)
    o = np.uint64(cut.order)
    return (order < o) | ((order == o) & (path.to_numpy() < cut.path))
