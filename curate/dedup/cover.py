"""Duplicate clusters from the graph of near pairs: centred on the most connected member, with
one keeper each chosen by the keep policy, and no two keepers near each other.

Reads row-level facts handed in by the dedup stage (no I/O). Terms:

- unit: rows with identical bytes, identical decoded pixels or an identical hash. A unit is
  never split, and all its rows are near the same units.
- near: two units whose hashes are within the threshold (the `Edges` of near pairs between
  units' rows). Clusters are built on this graph, one connected component at a time.
- cover: repeatedly take the unit with the most neighbours not yet clustered (ties: the unit the
  keep policy ranks first) as a centre, and cluster it with those neighbours. Every member is
  near its centre, and the centre is the member most central to the others, so a peripheral
  copy (a padded or cropped one) never anchors a cluster and splits one photo in two.
- keepers: the component's rows in keep-policy order; a row becomes its cluster's keeper when the
  cluster has none yet, the label-conflict rule allows its label, and it is not near a keeper
  already chosen. No two kept images are then near each other, and a held-out (test/val) copy is
  considered before a train copy. A cluster can end with no keeper: all its members are near a
  kept image of another cluster (they are dropped as duplicates of it), or its labels conflict
  and conflicts are dropped. A cover leftover (one row whose neighbours all went to other
  clusters) that is near a kept image joins that image's cluster; otherwise it is kept alone.

The result depends on the rows' facts, never on their order.
"""
from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field
from typing import Hashable, Sequence

import numpy as np

from curate.dedup.cluster import Edges, components


@dataclass
class Cluster:
    centre: int  # a row of the centre unit
    members: list[int]  # rows, ascending
    keeper: int | None = None

    @property
    def id(self) -> int:
        return self.members[0]


@dataclass
class Graph:
    """Rows grouped into units, and which units are near each other."""

    unit: np.ndarray  # unit id of each row
    rows: list[list[int]]  # rows of each unit, ascending
    near: list[set[int]] = field(default_factory=list)  # neighbouring units of each unit

    @classmethod
    def build(cls, n: int, exact: Edges, near: Edges) -> Graph:
        unit = components(n, exact)
        rows: list[list[int]] = [[] for _ in range(int(unit.max()) + 1 if n else 0)]
        for r in range(n):
            rows[unit[r]].append(r)
        adjacency: list[set[int]] = [set() for _ in rows]
        for a, b in zip(unit[near.a], unit[near.b]):
            if a != b:
                adjacency[a].add(int(b))
                adjacency[b].add(int(a))
        return cls(unit, rows, adjacency)

    def components(self) -> list[list[int]]:
        """The units of every connected component that holds two rows or more."""
        a = [u for u, others in enumerate(self.near) for v in others]
        b = [v for others in self.near for v in others]
        label = components(len(self.rows), Edges(np.asarray(a, np.int64), np.asarray(b, np.int64)))
        groups: dict[int, list[int]] = {}
        for u, lab in enumerate(label):
            groups.setdefault(int(lab), []).append(u)
        return [units for units in groups.values() if sum(len(self.rows[u]) for u in units) > 1]


def cover(graph: Graph, units: list[int], rank: np.ndarray) -> list[Cluster]:
    """Greedy cover of one component's units from the most connected (see module doc)."""
    unit_rank = {u: min(int(rank[r]) for r in graph.rows[u]) for u in units}
    open_units = set(units)
    degree = {u: len(graph.near[u]) for u in units}
    heap = [(-degree[u], unit_rank[u], u) for u in units]
    heapq.heapify(heap)
    clusters = []
    while heap:
        neg, _, u = heapq.heappop(heap)
        if u not in open_units:
            continue
        if -neg != degree[u]:
            heapq.heappush(heap, (-degree[u], unit_rank[u], u))
            continue
        taken = [u, *sorted(v for v in graph.near[u] if v in open_units)]
        open_units.difference_update(taken)
        for v in taken:
            for w in graph.near[v]:
                degree[w] -= 1
        members = sorted(r for v in taken for r in graph.rows[v])
        clusters.append(Cluster(min(graph.rows[u], key=lambda r: rank[r]), members))
    return clusters


def allowed_labels(labels: Sequence[Hashable], conflicts: str) -> set[Hashable] | None:
    """Labels a cluster's keeper may carry under the conflict rule (None: no keeper at all)."""
    counts = Counter(labels)
    if len(counts) < 2 or conflicts == "keep":
        return set(counts)
    if conflicts == "drop":
        return None
    top = max(counts.values())
    return {label for label, n in counts.items() if n == top}  # keep-majority


def choose_keepers(graph: Graph, clusters: list[Cluster], rank: np.ndarray, labels: Sequence[Hashable],
                   conflicts: str) -> None:
    """Set each cluster's keeper (see module doc); `clusters` are one component's."""
    cluster_of = {r: c for c in clusters for r in c.members}
    allowed = {id(c): allowed_labels([labels[r] for r in c.members], conflicts) for c in clusters}
    kept_units: set[int] = set()
    for r in sorted(cluster_of, key=lambda row: rank[row]):
        c = cluster_of[r]
        ok = allowed[id(c)]
        if c.keeper is not None or ok is None or labels[r] not in ok:
            continue
        u = int(graph.unit[r])
        if kept_units.isdisjoint(graph.near[u]):
            c.keeper = r
            kept_units.add(u)


def settle_singles(graph: Graph, clusters: list[Cluster], rank: np.ndarray) -> list[Cluster]:
    """The clusters of 2+ rows, after the cover's leftovers (one row whose neighbours all went to
    other clusters) are settled: a leftover that became a keeper is an image of its own; one that
    is near a kept image joins that image's cluster as its duplicate."""
    keepers = [c.keeper for c in clusters if c.keeper is not None]
    cluster_of = {c.keeper: c for c in clusters if c.keeper is not None}
    for single in (c for c in clusters if len(c.members) == 1 and c.keeper is None):
        kept = kept_neighbour(graph, single.members[0], keepers, rank)
        if kept is not None:
            cluster_of[kept].members = sorted([*cluster_of[kept].members, single.members[0]])
    return [c for c in clusters if len(c.members) > 1]


def kept_neighbour(graph: Graph, row: int, keepers: list[int], rank: np.ndarray) -> int | None:
    """The kept row (policy-first) that `row` is near, if any."""
    near = graph.near[int(graph.unit[row])]
    found = [k for k in keepers if int(graph.unit[k]) in near]
    return min(found, key=lambda k: rank[k]) if found else None
