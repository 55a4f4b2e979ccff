"""Train/val/test assignment: keep the splits the data came with, or re-split.

Both are functions of one marked row (`marks` frame) plus small tables that the stage computes
once for the whole collection, so every partition assigns its rows alone:

* `KeepSplits`: a row keeps its split (none = train); every member of a duplicate cluster
  follows the cluster's anchor, the split of its first usable member (by path).
* `Resplit`: stratified by class and group-aware. Per class, the split targets are the ratios
  of the class's usable images (largest remainder). Clusters are placed first, largest first
  (then in seeded order), each into the split furthest below its target; with `keep_test`,
  clusters and images that have a test member stay in test. The remaining single images fill
  the train quota, then the val quota, in seeded order (a rank cut-off, see `ranks`); the rest
  go to test (to val with `keep_test`). Unusable single images get a seeded draw by the ratios.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from curate.errors import ConfigError
from curate.rebalance import ranks
from curate.rebalance.strategies import largest_remainder
from curate.schema import SPLITS
from curate.seeds import seeded_key


def parse_ratios(spec: str) -> dict[str, float]:
    """'0.8,0.1,0.1' -> {'train': 0.8, 'val': 0.1, 'test': 0.1}."""
    try:
        values = [float(x) for x in spec.split(",")]
    except ValueError as exc:
        raise ConfigError(f"rebalance.split {spec!r}: expected three numbers like 0.8,0.1,0.1") from exc
    if len(values) != 3 or not all(math.isfinite(v) and v >= 0 for v in values) or abs(sum(values) - 1) > 1e-6:
        raise ConfigError(f"rebalance.split {spec!r}: three non-negative fractions that sum to 1, e.g. 0.8,0.1,0.1")
    return dict(zip(SPLITS, values))


def as_scanned(marks: pd.DataFrame, clusters: dict[int, str]) -> pd.Series:
    """The split each row came with."""
    return marks["split"]


def anchors(members: pd.DataFrame) -> dict[int, str]:
    """cluster_id -> the split of its first usable member by path (else of its first member)."""
    first = members.assign(split=members["split"].fillna("train")).sort_values(
        ["usable", "path"], ascending=[False, True], kind="stable").drop_duplicates("cluster_id")
    return dict(zip(first["cluster_id"].astype(int), first["split"]))


@dataclass(frozen=True)
class KeepSplits:
    """Rows keep the split they came with (none = train); a cluster's members go to its anchor's
    split (`anchors`: those of the clusters among the part's rows)."""

    def __call__(self, marks: pd.DataFrame, anchors: dict[int, str]) -> pd.Series:
        split = marks["split"].fillna("train").astype(object)
        clustered = marks["cluster_id"].notna()
        split[clustered] = marks.loc[clustered, "cluster_id"].astype(int).map(anchors)
        return split


def free_singles(marks: pd.DataFrame, keep_test: bool) -> pd.Series:
    """Usable images outside any cluster whose split a re-split chooses by rank."""
    free = marks["cluster_id"].isna() & marks["reason"].isna()
    return free & ~(marks["split"] == "test") if keep_test else free


def singles_view(marks: pd.DataFrame, keep_test: bool) -> pd.DataFrame:
    """The rows a re-split ranks per label (marks.RowView): free single images in seeded order."""
    rows = marks[free_singles(marks, keep_test).to_numpy()]
    return pd.DataFrame({"label": rows["label"], "order": ranks.order_key(np.zeros(len(rows)), rows["key"].to_numpy()),
                         "path": rows["path"]})


@dataclass(frozen=True)
class Placement:
    clusters: dict[int, str]  # cluster_id -> split
    quotas: dict[str, tuple[int, int]]  # label -> (train rank cut, val rank cut) over its free singles


def place(members: pd.DataFrame, free: dict[str, int], fixed_test: dict[str, int], ratios: dict[str, float],
          seed: int, keep_test: bool) -> Placement:
    """Place the clusters and size the single images' quotas, per label (see module doc)."""
    members = members.sort_values("path", kind="stable")
    clusters = members.groupby("cluster_id", sort=True).agg(
        label=("label", "first"), size=("usable", "sum"), test=("split", lambda s: (s == "test").any())).reset_index()
    placed: dict[int, str] = {}
    quotas: dict[str, tuple[int, int]] = {}
    for label in sorted(set(clusters["label"].dropna()) | set(free) | set(fixed_test)):
        g = clusters[clusters["label"] == label]
        g = g.assign(_r=[seeded_key(seed, f"cluster:{c}") for c in g["cluster_id"]]).sort_values(
            ["size", "_r"], ascending=[False, True])
        n_free, n_fixed = free.get(label, 0), fixed_test.get(label, 0)
        total = int(g["size"].sum()) + n_free + n_fixed
        targets = largest_remainder(ratios, total) if total else dict.fromkeys(SPLITS, 0)
        have = dict.fromkeys(SPLITS, 0)
        have["test"] = n_fixed
        for cluster_id, size, in_test in zip(g["cluster_id"], g["size"], g["test"]):
            split = "test" if keep_test and in_test else _furthest_below(targets, have, keep_test)
            placed[int(cluster_id)] = split
            have[split] += int(size)
        train = min(max(targets["train"] - have["train"], 0), n_free)
        val = n_free - train if keep_test else min(max(targets["val"] - have["val"], 0), n_free - train)
        quotas[label] = (train, train + val)
    for cluster_id in clusters["cluster_id"]:  # clusters with no label
        placed.setdefault(int(cluster_id), "train")
    return Placement(placed, quotas)


def _furthest_below(targets: dict[str, int], have: dict[str, int], keep_test: bool) -> str:
    candidates = [s for s in SPLITS if not (keep_test and s == "test")]
    return max(candidates, key=lambda s: (targets[s] - have[s], -SPLITS.index(s)))


@dataclass(frozen=True)
class Resplit:
    """Clusters where `place` put them (`clusters`: those of the part's rows), single images by
    rank cut or seeded draw."""

    cuts: dict[str, tuple[ranks.Cut, ranks.Cut]]  # label -> (train cut, val cut) over its free singles
    ratios: dict[str, float]
    keep_test: bool

    def __call__(self, marks: pd.DataFrame, clusters: dict[int, str]) -> pd.Series:
        split = pd.Series(self._draw(marks["key"].to_numpy()), index=marks.index, dtype=object)
        if self.keep_test:
            split[marks["split"] == "test"] = "test"
        clustered = marks["cluster_id"].notna()
        split[clustered] = marks.loc[clustered, "cluster_id"].astype(int).map(clusters)
        view = singles_view(marks, self.keep_test)
        for label, rows in view.groupby("label", sort=False):
            train_cut, val_cut = self.cuts[label]
            order = rows["order"].to_numpy()
            split[rows.index] = np.where(ranks.in_front(order, rows["path"], train_cut), "train",
                                         np.where(ranks.in_front(order, rows["path"], val_cut), "val",
                                                  "val" if self.keep_test else "test"))
        return split

    def _draw(self, keys: np.ndarray) -> np.ndarray:
        """A seeded split per row by the ratios (test left out with keep_test)."""
        names = [s for s in SPLITS if not (self.keep_test and s == "test")]
        weights = np.array([self.ratios[s] for s in names])
        if not weights.any():
            weights = np.ones(len(names))
        edges = np.cumsum(weights / weights.sum())
        u = (keys >> np.uint64(11)).astype(np.float64) / float(1 << 53)
        return np.array(names, dtype=object)[np.minimum(np.searchsorted(edges, u, side="right"), len(names) - 1)]
