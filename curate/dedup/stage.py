"""Dedup: read `OUT/manifest/`, write `OUT/duplicates/` (one row per member of a cluster of 2+)
and `OUT/dedup_pairs/` (the unique hash keys and their near pairs, so that a later run with the
same settings searches only the keys it has not seen).

Columns: sample_id, path, label, split, cluster_id, kind (bytes / pixels / phash / near: how
the member relates to the cluster's representative; the representative carries the cluster's
weakest kind), distance (pHash bits to the representative), keep, reason, leak (the cluster
spans splits), label_conflict (its members carry different labels).
"""
from __future__ import annotations

import io
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from curate.config import Config
from curate.dedup.cluster import Edges, KeyPairs, components, distance_to, equal_value_edges, near_edges
from curate.dedup.policy import CRITERIA, rank
from curate.schema import DUPLICATES, MANIFEST, Status
from curate.view import Block, Table, View
from curate.workspace import Workspace

COLUMNS = ["sample_id", "path", "label", "split", "bytes_hash", "pixel_hash", "phash", "phash_d8", "width", "height",
           "size_bytes", "format", "extension"]
KIND_ORDER = ("bytes", "pixels", "phash", "near")


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
    """Fail before any work on an unknown keep criterion."""
    CRITERIA.require(cfg.dedup.keep_policy)


def _relation(rows: pd.DataFrame, i: int, rep: int, dist: int) -> str:
    if rows.at[i, "bytes_hash"] == rows.at[rep, "bytes_hash"]:
        return "bytes"
    if rows.at[i, "pixel_hash"] == rows.at[rep, "pixel_hash"]:
        return "pixels"
    return "phash" if dist == 0 else "near"


def _clusters(rows: pd.DataFrame, cfg: Config, previous: KeyPairs | None = None
              ) -> tuple[list[np.ndarray], KeyPairs]:
    """Member row indices of every cluster of 2+, after the chaining guard; and the key pairs
    for the next incremental run."""
    t = cfg.dedup.threshold
    phash = rows["phash"].to_numpy(dtype=np.int64)
    d8 = np.stack(rows["phash_d8"].to_numpy()).astype(np.int64) if cfg.dedup.dihedral and len(rows) else None
    near, key_pairs = near_edges(d8 if d8 is not None else phash[:, None], t, previous)
    edges = equal_value_edges(rows["bytes_hash"]) + equal_value_edges(rows["pixel_hash"]) + near
    labels = components(len(rows), edges)
    order = np.argsort(labels, kind="stable")
    bounds = np.flatnonzero(np.diff(labels[order])) + 1
    queue = [g for g in np.split(order, bounds) if len(g) > 1]
    records = rows.to_dict("records")
    done = []
    while queue:
        members = queue.pop()
        ranked, _ = rank([records[i] | {"_i": i} for i in members], cfg.dedup.keep_policy)
        rep = ranked[0]["_i"]
        dist = distance_to(rep, members, phash, d8)
        exact = (rows["bytes_hash"].to_numpy()[members] == rows.at[rep, "bytes_hash"]) | (
            rows["pixel_hash"].to_numpy()[members] == rows.at[rep, "pixel_hash"])
        far = (dist > t) & ~exact
        if far.any():
            sub = members[far]
            mask = np.zeros(len(rows), dtype=bool)
            mask[sub] = True
            inside = mask[edges.a] & mask[edges.b]
            sub_labels = components(len(rows), Edges(edges.a[inside], edges.b[inside]))[sub]
            queue.extend(g for g in (sub[sub_labels == lab] for lab in np.unique(sub_labels)) if len(g) > 1)
            members = members[~far]
        if len(members) > 1:
            done.append(np.sort(members))
    return sorted(done, key=lambda m: m[0]), key_pairs


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


def _decide(rows: pd.DataFrame, members: np.ndarray, cfg: Config, phash: np.ndarray,
            d8: np.ndarray | None) -> list[dict[str, Any]]:
    records = [rows.loc[i].to_dict() | {"_i": int(i)} for i in members]
    ranked, why = rank(records, cfg.dedup.keep_policy)
    rep = ranked[0]["_i"]
    labels = {r["label"] for r in records}
    splits = {r["split"] for r in records}
    conflict, leak = len(labels) > 1, len(splits) > 1
    keeper: int | None = rep
    if conflict and cfg.dedup.conflicts == "drop":
        keeper = None
    elif conflict and cfg.dedup.conflicts == "keep-majority":
        counts = Counter(r["label"] for r in records)
        top = max(counts.values())
        keeper = next(r["_i"] for r in ranked if counts[r["label"]] == top)
    dist = dict(zip(members.tolist(), distance_to(rep, members, phash, d8).tolist()))
    kinds = {int(i): _relation(rows, int(i), rep, dist[int(i)]) for i in members if i != rep}
    weakest = max(kinds.values(), key=KIND_ORDER.index)
    out = []
    for r in records:
        i = r["_i"]
        kind = weakest if i == rep else kinds[i]
        if keeper is None:
            keep, reason = False, f"label conflict ({', '.join(sorted(map(str, labels)))}): dropped"
        elif i == keeper:
            keep, reason = True, f"kept: {why}" if i == rep else "kept: majority label of a label conflict"
        else:
            keep = False
            reason = f"duplicate ({kind}, {dist[i]} bits) of {rows.at[keeper, 'path']}"
            if r["split"] != rows.at[keeper, "split"]:
                reason += f" in {rows.at[keeper, 'split']}: dropped from {r['split']} to stop a leak"
        out.append({"sample_id": r["sample_id"], "path": r["path"], "label": r["label"], "split": r["split"],
                    "cluster_id": int(members[0]), "kind": kind, "distance": dist[i], "keep": keep,
                    "reason": reason, "leak": leak, "label_conflict": conflict})
    return out


def dedup(src: str | None, out: str, cfg: Config) -> DedupSummary:
    """Cluster OUT's images into duplicates and choose what to keep (src unused)."""
    started = time.perf_counter()
    resolve(cfg)
    ws = Workspace(out)
    rows = ws.read("manifest", MANIFEST, columns=COLUMNS, filter=pc.field("status") == Status.OK.value).to_pandas()
    rows = rows.sort_values("path", kind="stable").reset_index(drop=True)
    for col in ("label", "split"):
        rows[col] = rows[col].astype(object).where(rows[col].notna(), None)
    phash = rows["phash"].to_numpy(dtype=np.int64)
    d8 = np.stack(rows["phash_d8"].to_numpy()).astype(np.int64) if cfg.dedup.dihedral and len(rows) else None
    result: list[dict[str, Any]] = []
    diameters = []
    clusters, key_pairs = _clusters(rows, cfg, load_pairs(ws, cfg) if cfg.dedup.incremental else None)
    save_pairs(ws, cfg, key_pairs)
    for members in clusters:
        result.extend(_decide(rows, members, cfg, phash, d8))
        if len(members) <= 500:  # all pairs; larger clusters report twice their radius instead
            diameters.append(max(int(distance_to(i, members, phash, d8).max()) for i in members))
        else:
            diameters.append(2 * int(distance_to(int(members[0]), members, phash, d8).max()))
    ws.write_dataset("duplicates", pa.Table.from_pylist(result, schema=DUPLICATES), DUPLICATES)
    summary = summarize(pd.DataFrame(result, columns=DUPLICATES.names))
    summary.max_diameter = max(diameters, default=0)
    summary.elapsed_s = time.perf_counter() - started
    return summary


def summarize(dups: pd.DataFrame) -> DedupSummary:
    s = DedupSummary()
    for _cluster, g in dups.groupby("cluster_id", sort=True):
        kind = max(g["kind"], key=KIND_ORDER.index)
        s.clusters[kind] = s.clusters.get(kind, 0) + 1
        s.images[kind] = s.images.get(kind, 0) + len(g)
        if g["leak"].iloc[0]:
            pair = "+".join(sorted({str(x) for x in g["split"]}))
            s.leaks[pair] = s.leaks.get(pair, 0) + 1
        s.label_conflicts += bool(g["label_conflict"].iloc[0])
        if len(s.examples) < 3:
            s.examples.append(list(g["path"]))
    s.dropped = int((~dups["keep"]).sum()) if len(dups) else 0
    return s
