"""Dedup: read `OUT/manifest/` (and `OUT/embeddings/` with semantic dedup), write `OUT/duplicates/`
(one row per member of a cluster of 2+) and `OUT/dedup_pairs/` (the unique hash keys and their
near pairs, so that a later run with the same settings searches only the keys it has not seen).

The pairs are found first, from every image's hashes (and embeddings: `curate.dedup.semantic`,
out of core above the in-memory size); whole rows, and embeddings, are then read only for the
images in a pair, so memory follows the images in pairs, not the collection.

Clusters are centred on their most connected member and every member is within the threshold
of its centre; one keeper per cluster is chosen by the keep policy, and no two kept images are
within the threshold of each other (`curate.dedup.cover`).

Columns: sample_id, path, label, split, cluster_id, kind (bytes / pixels / phash / near: how
the member relates to the cluster's anchor, its keeper or, without one, its centre; the anchor
carries the cluster's weakest kind), distance (pHash bits to the anchor), keep, reason, leak
(the cluster spans splits), label_conflict (its members carry different labels).
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from curate.config import Config
from curate.dedup.cluster import Edges, KeyPairs, equal_value_edges, near_edges
from curate.dedup.cover import Cluster, Graph, choose_keepers, cover, kept_neighbour, settle_singles
from curate.dedup.measures import KIND_ORDER, Measures
from curate.dedup.policy import CRITERIA, policy_rank
from curate.dedup.policy import reason as policy_reason
from curate.dedup.semantic import semantic_edges
from curate.errors import ConfigError
from curate.mapped import MappedMatrix
from curate.schema import DUPLICATES, MANIFEST, Status
from curate.tables import mapped_embeddings
from curate.view import Block, Table, View
from curate.workspace import Workspace

COLUMNS = ["sample_id", "path", "label", "split", "bytes_hash", "pixel_hash", "phash", "phash_d8", "width", "height",
           "size_bytes", "format", "extension"]
DIGESTS = ["bytes_hash", "pixel_hash"]


@dataclass
class DedupSummary:
    clusters: dict[str, int] = field(default_factory=dict)  # kind -> clusters
    images: dict[str, int] = field(default_factory=dict)  # kind -> images in such clusters
    leaks: dict[str, int] = field(default_factory=dict)  # "train+test" -> clusters
    label_conflicts: int = 0
    dropped: int = 0
    max_diameter: int = 0
    examples: list[list[str]] = field(default_factory=list)
    elapsed_s: float = 0.0

    def view(self, out: str) -> View:
        blocks: list[Block] = [Table.of("clusters by kind", ["kind", "clusters", "images"],
                                        ((kind, n, self.images[kind]) for kind, n in self.clusters.items()))]
        blocks += [f"leak: {n} clusters span {pair}" for pair, n in self.leaks.items()]
        blocks += ["example: " + "  ==  ".join(example) for example in self.examples]
        return View("dedup", f"{sum(self.clusters.values())} clusters, {sum(self.images.values())} images in them, "
                             f"{self.dropped} would be dropped; {self.label_conflicts} label conflicts; largest "
                             f"cluster diameter {self.max_diameter} bits ({self.elapsed_s:.1f}s)",
                    blocks, {"duplicates": f"{out}/duplicates/"})


def resolve(cfg: Config) -> None:
    """Fail before any work on an unknown keep criterion, naming the key and the valid ones."""
    try:
        CRITERIA.require(cfg.dedup.keep_policy)
    except ConfigError as exc:
        raise ConfigError(f"dedup.keep_policy: {exc}") from exc


@dataclass
class Found:
    """The clusters of one dedup run, with what deciding about them needs."""

    clusters: list[Cluster]
    graph: Graph
    rank: np.ndarray  # keep-policy position of every row
    key_pairs: KeyPairs  # for the next incremental run


@dataclass
class DupEdges:
    """Rows joined by equal bytes, pixels or hash keys (`exact`), by near hashes (`near`) and, with
    semantic dedup, by alike embeddings (`semantic`); and the key pairs for the next incremental run."""

    exact: Edges
    near: Edges
    key_pairs: KeyPairs
    semantic: Edges = field(default_factory=Edges.empty)

    @classmethod
    def of(cls, rows: pd.DataFrame, cfg: Config, previous: KeyPairs | None, m: Measures) -> DupEdges:
        """The hash edges of `rows` (semantic ones are added with `dataclasses.replace`)."""
        same, near, key_pairs = near_edges(m.d8 if m.d8 is not None else m.phash[:, None], cfg.dedup.threshold,
                                           previous)
        exact = equal_value_edges(rows["bytes_hash"]) + equal_value_edges(rows["pixel_hash"]) + same
        return cls(exact, near, key_pairs)

    def rows(self) -> np.ndarray:
        """The rows with any edge (ascending): the only ones a cluster can hold."""
        return np.unique(np.concatenate([e for edges in (self.exact, self.near, self.semantic)
                                         for e in (edges.a, edges.b)]))

    def among(self, kept: np.ndarray, n: int) -> DupEdges:
        """The same edges numbered by position in `kept` (ascending rows that hold every edge)."""
        at = np.full(n, -1, dtype=np.int64)
        at[kept] = np.arange(len(kept))
        exact, near, semantic = (Edges(at[e.a], at[e.b]) for e in (self.exact, self.near, self.semantic))
        return DupEdges(exact, near, self.key_pairs, semantic)


def _clusters(rows: pd.DataFrame, cfg: Config, previous: KeyPairs | None = None,
              measures: Measures | None = None, edges: DupEdges | None = None) -> Found:
    """Every cluster of 2+ rows with its centre and keeper (`curate.dedup.cover`), from `edges`
    (found here by hash when not given; semantic edges come only with `edges`)."""
    m = measures or Measures.of(rows, cfg.dedup.threshold, cfg.dedup.dihedral)
    e = edges or DupEdges.of(rows, cfg, previous, m)
    graph = Graph.build(len(rows), e.exact, e.near + e.semantic)
    rank = policy_rank(rows, cfg.dedup.keep_policy)
    labels = rows["label"].tolist()
    clusters: list[Cluster] = []
    for units in graph.components():
        found = cover(graph, units, rank)
        choose_keepers(graph, found, rank, labels, cfg.dedup.conflicts)
        clusters += settle_singles(graph, found, rank)
    return Found(sorted(clusters, key=lambda c: c.id), graph, rank, e.key_pairs)


PAIRS = "dedup_pairs"


def _settings_key(cfg: Config) -> str:
    return f"threshold={cfg.dedup.threshold};dihedral={cfg.dedup.dihedral}"


def load_pairs(ws: Workspace, cfg: Config) -> KeyPairs | None:
    """The key pairs of the previous dedup run, if it used the same threshold and dihedral."""
    if not ws.exists(PAIRS, "settings") or ws.fs.cat_file(ws.path(PAIRS, "settings")).decode() != _settings_key(cfg):
        return None
    return KeyPairs(*(np.load(io.BytesIO(ws.fs.cat_file(ws.path(PAIRS, f"{n}.npy")))) for n in ("keys", "pairs")))


def save_pairs(ws: Workspace, cfg: Config, pairs: KeyPairs) -> None:
    ws.remove(f"{PAIRS}/settings")
    for name, array in (("keys", pairs.keys), ("pairs", pairs.pairs)):
        buf = io.BytesIO()
        np.save(buf, array)
        ws.write_bytes(f"{PAIRS}/{name}.npy", buf.getvalue())
    ws.write_bytes(f"{PAIRS}/settings", _settings_key(cfg).encode())


def _decide(rows: pd.DataFrame, cluster: Cluster, found: Found, keepers: list[int], cfg: Config,
            m: Measures, ids: np.ndarray | None) -> list[dict[str, Any]]:
    """The duplicates rows of one cluster: its keeper kept, every other member dropped with the
    member it duplicates (the keeper, else a kept image it is near) and how."""
    members = np.asarray(cluster.members)
    labels = {rows.at[i, "label"] for i in cluster.members}
    conflict = len(labels) > 1
    leak = len({rows.at[i, "split"] for i in cluster.members}) > 1
    anchor = cluster.keeper if cluster.keeper is not None else cluster.centre
    dist = dict(zip(cluster.members, m.bits(anchor, members).tolist()))
    sims = dict(zip(cluster.members, m.similarity(anchor, members).tolist()))
    kinds = {i: m.kind(i, anchor, dist[i]) for i in cluster.members if i != anchor}
    weakest = max(kinds.values(), key=KIND_ORDER.index)
    records = {i: rows.loc[i].to_dict() for i in cluster.members}
    cluster_id = cluster.id if ids is None else int(ids[cluster.id])  # its first row in the whole collection
    out = []
    for i in cluster.members:
        kind = weakest if i == anchor else kinds[i]
        if i == cluster.keeper:
            best, *rest = sorted(cluster.members, key=lambda j: found.rank[j])
            runner_up = records[rest[0]] if rest else None
            keep = True
            reason = (f"kept: {policy_reason(records[i], runner_up, cfg.dedup.keep_policy)}" if i == best else
                      "kept: majority label of a label conflict" if conflict else
                      "kept: the best member not near an image kept in another cluster")
        elif cluster.keeper is not None:
            keep = False
            reason = _duplicate_of(rows, i, cluster.keeper, kind, dist[i], sims[i])
        elif conflict and cfg.dedup.conflicts == "drop":
            keep, reason = False, f"label conflict ({', '.join(sorted(map(str, labels)))}): dropped"
        else:  # every member is near an image kept in another cluster
            near = kept_neighbour(found.graph, i, keepers, found.rank)
            keep = False
            if near is None:
                reason = f"label conflict ({', '.join(sorted(map(str, labels)))}): dropped"
            else:
                bits = int(m.bits(near, np.asarray([i]))[0])
                reason = _duplicate_of(rows, i, near, m.kind(i, near, bits), bits,
                                       float(m.similarity(near, np.asarray([i]))[0]))
        out.append({"sample_id": records[i]["sample_id"], "path": records[i]["path"], "label": records[i]["label"],
                    "split": records[i]["split"], "cluster_id": cluster_id, "kind": kind, "distance": dist[i],
                    "similarity": None if np.isnan(sims[i]) else sims[i], "keep": keep, "reason": reason,
                    "leak": leak, "label_conflict": conflict})
    return out


def _duplicate_of(rows: pd.DataFrame, i: int, kept: int, kind: str, bits: int, similarity: float) -> str:
    how = f"similarity {similarity:.2f}" if kind == "semantic" else f"{bits} bits"
    reason = f"duplicate ({kind}, {how}) of {rows.at[kept, 'path']}"
    if rows.at[i, "split"] != rows.at[kept, "split"]:
        reason += f" in {rows.at[kept, 'split']}: dropped from {rows.at[i, 'split']} to stop a leak"
    return reason


@dataclass
class Decided:
    """Every duplicates row of a run, the largest cluster diameter, the key pairs for the next run."""

    table: pa.Table  # DUPLICATES
    max_diameter: int
    key_pairs: KeyPairs


DECIDED_CHUNK = 50_000  # duplicates rows held as Python dicts before they become Arrow


def decide(rows: pd.DataFrame, cfg: Config, previous: KeyPairs | None = None,
           vectors: MappedMatrix | None = None, edges: DupEdges | None = None,
           ids: np.ndarray | None = None) -> Decided:
    """Cluster `rows` (the manifest's ok images, sorted by path; with semantic dedup, `vectors`
    holds their embeddings out of core, NaN rows for images without one, and `edges` the semantic
    pairs) and decide what to keep. Given the `edges` of a larger collection, `rows` are only the rows they
    join (renumbered by `DupEdges.among`) and `ids` their positions in the collection (which name
    the clusters)."""
    m = Measures.of(rows, cfg.dedup.threshold, cfg.dedup.dihedral, vectors)
    chunks: list[pa.Table] = []
    result: list[dict[str, Any]] = []
    diameters = []
    found = _clusters(rows, cfg, previous, m, edges)
    keepers = [c.keeper for c in found.clusters if c.keeper is not None]
    for cluster in found.clusters:
        members = np.asarray(cluster.members)
        result.extend(_decide(rows, cluster, found, keepers, cfg, m, ids))
        if len(result) >= DECIDED_CHUNK:
            chunks.append(pa.Table.from_pylist(result, schema=DUPLICATES))
            result = []
        if len(members) <= 500:  # all pairs; larger clusters report twice their radius instead
            diameters.append(max(int(m.bits(i, members).max()) for i in members))
        else:
            diameters.append(2 * int(m.bits(cluster.centre, members).max()))
    table = pa.concat_tables([*chunks, pa.Table.from_pylist(result, schema=DUPLICATES)])
    return Decided(table, max(diameters, default=0), found.key_pairs)


def dedup(src: str | None, out: str, cfg: Config) -> DedupSummary:
    """Cluster OUT's images into duplicates and choose what to keep (src unused)."""
    started = time.perf_counter()
    resolve(cfg)
    ws = Workspace(out)
    previous = load_pairs(ws, cfg) if cfg.dedup.incremental else None
    # every image's hashes (and id) find the pairs; whole rows are read only for images in one
    paths, hashes = hash_rows(ws, cfg)
    edges = DupEdges.of(hashes, cfg, previous, Measures.of(hashes, cfg.dedup.threshold, cfg.dedup.dihedral))
    if cfg.dedup.semantic:
        edges = dataclasses.replace(edges, semantic=semantic_edges(ws, cfg.dedup.similarity, hashes["sample_id"]))
    joined = edges.rows()
    digests = hashes[DIGESTS].to_numpy()[joined]  # as codes: Measures.kind only compares them
    wanted = paths.take(pa.array(joined, pa.int64()))
    edges = edges.among(joined, len(paths))
    del hashes, paths
    pa.default_memory_pool().release_unused()  # Arrow's pool keeps freed pages otherwise
    rows = ok_rows(ws, cfg, [c for c in COLUMNS if c not in DIGESTS], where=pc.field("path").isin(wanted))
    rows[DIGESTS] = digests
    with (mapped_embeddings(ws, pa.array(rows["sample_id"], pa.string())) if cfg.dedup.semantic
          else contextlib.nullcontext()) as vectors:
        decided = decide(rows, cfg, vectors=vectors, edges=edges, ids=joined)
    del rows
    save_pairs(ws, cfg, decided.key_pairs)
    ws.write_dataset("duplicates", decided.table, DUPLICATES)
    summary = summarize(decided.table)
    summary.max_diameter = decided.max_diameter
    summary.elapsed_s = time.perf_counter() - started
    return summary


def hash_rows(ws: Workspace, cfg: Config) -> tuple[pa.Array, pd.DataFrame]:
    """Every ok image's path, sorted, and in that order what finds its pairs: phash (and phash_d8
    with dihedral matching, sample_id with semantic dedup), and bytes_hash and pixel_hash as codes
    (equal values, equal codes). Equal bytes or pixels mean an equal pHash, so the hex digests
    are read only for images whose pHash another image shares (every other image gets a code of
    its own): a collection's digests as strings would cost ~150 bytes an image."""
    columns = ["path", "phash"] + ["phash_d8"] * cfg.dedup.dihedral + ["sample_id"] * cfg.dedup.semantic
    ok = pc.field("status") == Status.OK.value
    table = ws.read("manifest", MANIFEST, columns=columns, filter=ok)
    order = pc.sort_indices(table["path"])
    paths = table["path"].take(order).combine_chunks()
    frame: dict[str, Any] = {"phash": table["phash"].take(order).to_numpy()}
    for name in columns[2:]:
        frame[name] = table[name].take(order).to_pandas()
    del table
    twinned = equal_value_edges(pd.Series(frame["phash"]))
    shared = np.union1d(twinned.a, twinned.b)
    twins = ws.read("manifest", MANIFEST, columns=["path", *DIGESTS],
                    filter=ok & pc.field("path").isin(paths.take(pa.array(shared, pa.int64()))))
    twins = twins.take(pc.sort_indices(twins["path"]))  # in the order of `shared`: both by path
    for name in DIGESTS:
        codes = -1 - np.arange(len(paths), dtype=np.int64)  # a code of its own, negative
        found = pc.fill_null(pc.dictionary_encode(twins[name]).combine_chunks().indices, -1).to_numpy()
        codes[shared[found >= 0]] = found[found >= 0]
        frame[name] = codes
    del twins
    pa.default_memory_pool().release_unused()
    return paths, pd.DataFrame(frame)


def ok_rows(ws: Workspace, cfg: Config, columns: list[str] = COLUMNS, where: Any = None) -> pd.DataFrame:
    """`columns` of the manifest's ok rows (passing `where`), sorted by path; phash_d8 (8 hashes a
    row) only with dihedral matching on."""
    wanted = [c for c in columns if cfg.dedup.dihedral or c != "phash_d8"]
    ok = pc.field("status") == Status.OK.value
    rows = ws.read("manifest", MANIFEST, columns=wanted, filter=ok if where is None else ok & where).to_pandas()
    rows = rows.sort_values("path", kind="stable").reset_index(drop=True)
    for col in ("label", "split"):
        if col in rows:
            rows[col] = rows[col].astype(object).where(rows[col].notna(), None)
    return rows


def summarize(dups: pa.Table) -> DedupSummary:
    """The counts `curate dedup` prints: clusters and images by (the cluster's weakest) kind, leaks
    by the splits they span, label conflicts, dropped images and the first clusters' paths."""
    s = DedupSummary()
    frame = dups.select(["cluster_id", "kind", "leak", "label_conflict", "keep"]).to_pandas()
    weakest = frame["kind"].map(KIND_ORDER.index).groupby(frame["cluster_id"]).transform("max")
    kinds = pd.Series(KIND_ORDER)[weakest.to_numpy()].to_numpy()
    per_cluster = frame.assign(kind=kinds).groupby("cluster_id", sort=True).agg(
        kind=("kind", "first"), images=("kind", "size"), leak=("leak", "first"), conflict=("label_conflict", "first"))
    for kind, g in per_cluster.groupby("kind", sort=False):
        s.clusters[kind], s.images[kind] = len(g), int(g["images"].sum())
    leaked = dups.filter(pc.is_in(dups["cluster_id"], pa.array(per_cluster.index[per_cluster["leak"]], pa.int64())))
    for _cluster, g in leaked.select(["cluster_id", "split"]).to_pandas().groupby("cluster_id", sort=True):
        pair = "+".join(sorted({str(x) for x in g["split"]}))
        s.leaks[pair] = s.leaks.get(pair, 0) + 1
    s.label_conflicts = int(per_cluster["conflict"].sum())
    first = dups.filter(pc.is_in(dups["cluster_id"], pa.array(per_cluster.index[:3], pa.int64())))
    s.examples = [list(g["path"]) for _c, g in first.select(["cluster_id", "path"]).to_pandas().groupby(
        "cluster_id", sort=True)]
    s.dropped = int((~frame["keep"]).sum()) if len(frame) else 0
    return s
