"""The numbers behind the report (and the FiftyOne dataset's info): a JSON-able summary of OUT.

Reads `OUT/manifest/` and, where they exist, `OUT/issues/`, `OUT/duplicates/`, `OUT/plan/`,
`OUT/embeddings/` and `OUT/runs/rebalance.json`. Class counts before and after curation are
`curate.tables.class_counts`. Counts are taken in Arrow or a record batch at a time, and only the
rows shown (example clusters, leaks, the embedding map's sample, the top findings) are read whole,
so the report's memory does not grow with the collection.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from curate.config import Config
from curate.schema import DUPLICATES, ISSUES, MANIFEST, PLAN, Severity, Status
from curate.tables import (
    Counts,
    add_counts,
    batches,
    class_counts,
    counts_after,
    embeddings_schema_of,
    not_written_yet,
    read_embeddings,
    summed,
)
from curate.workspace import Workspace

EXAMPLES_PER_KIND = 2
MEMBERS_PER_EXAMPLE = 4
LISTED_LEAKS = 20


def imbalance(counts: Counts) -> dict[str, float]:
    """Largest over smallest class per split and over all splits ("all"); classes with none left out."""
    out: dict[str, float] = {}
    total: dict[str, int] = {}
    for split, by_class in counts.items():
        out[split] = round(max(by_class.values()) / min(by_class.values()), 3)
        for c, n in by_class.items():
            total[c] = total.get(c, 0) + n
    if total:
        out["all"] = round(max(total.values()) / min(total.values()), 3)
    return out


def issues_by_check(ws: Workspace) -> list[dict[str, Any]]:
    """Per (check, severity): how many findings, and whether they are per image or per collection."""
    if not ws.exists("issues"):
        return []
    table = ws.read("issues", ISSUES, columns=["sample_id", "check", "severity"])
    level = pc.if_else(pc.is_valid(table["sample_id"]), "image", "collection")
    grouped = table.append_column("level", level).group_by(["check", "severity", "level"], use_threads=False).aggregate(
        [([], "count_all")]).rename_columns(["check", "severity", "level", "count"]).to_pandas()
    rank = {s.value: i for i, s in enumerate(Severity)}
    grouped["_rank"] = grouped["severity"].map(rank)
    grouped = grouped.sort_values(["_rank", "count", "check"], ascending=[True, False, True])
    return grouped.drop(columns="_rank")[["check", "severity", "level", "count"]].to_dict("records")


@dataclass
class PlanFacts:
    """What the report shows of OUT/plan/, gathered a batch at a time (all empty without a plan)."""

    excluded: dict[str, int] = field(default_factory=dict)  # images left out, by kind of reason
    weights: dict[str, float] = field(default_factory=dict)  # class -> the weight of its kept rows

    @classmethod
    def of(cls, ws: Workspace) -> PlanFacts:
        reasons: Counter[str] = Counter()
        weights: dict[str, float] = {}
        for batch in batches(ws, "plan", PLAN, ["label", "keep", "reason", "weight"]):
            rows = batch.to_pandas()
            reasons.update(rows.loc[~rows["keep"], "reason"].fillna("").str.split(":").str[0].tolist())
            kept = rows[rows["keep"] & rows["weight"].notna()]
            for label, weight in kept.groupby("label")["weight"].first().items():
                weights.setdefault(str(label), float(weight))
        return cls({k: reasons[k] for k in sorted(reasons)}, weights)


def duplicates(ws: Workspace) -> dict[str, Any]:
    """Clusters by kind, label conflicts, a few example clusters per kind, and the leaks."""
    if not ws.exists("duplicates"):
        return {"by_kind": {}, "label_conflicts": 0, "examples": [], "leaks": {"clusters": 0, "by_splits": {},
                                                                                "listed": []}}
    shown = ["cluster_id", "kind", "path", "label", "split", "keep", "distance"]
    table = ws.read("duplicates", DUPLICATES, columns=[*shown, "leak", "label_conflict"])
    counted = table.append_column("dropped", pc.cast(pc.invert(table["keep"]), pa.int64())).group_by(
        "kind", use_threads=False).aggregate([("cluster_id", "count_distinct"), ([], "count_all"), ("dropped", "sum")])
    by_kind = {r["kind"]: {"clusters": r["cluster_id_count_distinct"], "images": r["count_all"],
                           "dropped": r["dropped_sum"]} for r in sorted(counted.to_pylist(), key=lambda r: r["kind"])}
    first = table.group_by(["kind", "cluster_id"], use_threads=False).aggregate([]).sort_by(
        [("kind", "ascending"), ("cluster_id", "ascending")]).to_pandas().groupby("kind").head(EXAMPLES_PER_KIND)
    examples = [_cluster(g) for g in _members(table, first["cluster_id"].tolist(), shown)]
    leaked = table.filter(table["leak"])
    clusters = [_cluster(g) for g in _members(leaked, sorted(pc.unique(leaked["cluster_id"]).to_pylist()), shown)]
    by_splits: dict[str, int] = {}
    for c in clusters:
        key = "/".join(c["splits"])
        by_splits[key] = by_splits.get(key, 0) + 1
    conflicts = pc.count_distinct(table.filter(table["label_conflict"])["cluster_id"]).as_py()
    return {"by_kind": by_kind, "label_conflicts": conflicts, "examples": examples,
            "leaks": {"clusters": len(clusters), "by_splits": dict(sorted(by_splits.items())),
                      "listed": clusters[:LISTED_LEAKS]}}


def _members(table: pa.Table, cluster_ids: list[int], columns: list[str]) -> list[pd.DataFrame]:
    """The rows of each of `cluster_ids`, in that order, each cluster's rows by distance then path."""
    rows = table.filter(pc.is_in(table["cluster_id"], pa.array(cluster_ids, pa.int64()))).select(columns)
    by_cluster = dict(tuple(rows.to_pandas().sort_values(["cluster_id", "distance", "path"]).groupby("cluster_id")))
    return [by_cluster[c] for c in cluster_ids]


def _text(value: Any) -> str | None:
    """A table cell as JSON text: None for a missing value (pandas reads it as NaN, not valid JSON)."""
    return None if pd.isna(value) else str(value)


def _cluster(members: pd.DataFrame) -> dict[str, Any]:
    """One duplicate cluster: its kind, the splits it spans (no split is train) and its first members."""
    splits = members["split"].fillna("train")
    return {"cluster_id": int(members["cluster_id"].iloc[0]), "kind": str(members["kind"].iloc[0]),
            "splits": sorted(splits.unique().tolist()),
            "members": [{"path": r.path, "label": _text(r.label), "split": split, "keep": bool(r.keep),
                         "distance": int(r.distance)}
                        for r, split in zip(members.head(MEMBERS_PER_EXAMPLE).itertuples(), splits)]}


def class_weights(ws: Workspace, plan: PlanFacts | None, cfg: Config) -> tuple[dict[str, dict[str, float]], str]:
    """(scheme -> class -> weight, the scheme in the plan's weight column): every scheme rebalance
    computed, else the plan's weight column under the configured scheme."""
    if ws.exists("runs/rebalance.json"):
        run = ws.read_json("runs/rebalance.json")
        return run["summary"].get("weights", {}), run["config"]["rebalance"]["weights"]
    if plan is None:
        return {}, cfg.rebalance.weights
    return {cfg.rebalance.weights: plan.weights}, cfg.rebalance.weights


MAP_POINTS = 2000  # images drawn on the embedding map (a seeded sample above this)
LISTED_FINDINGS = 8


def embedding_facts(ws: Workspace) -> dict[str, Any]:
    """A 2-D map of the embeddings coloured by class (t-SNE over a PCA projection, of a seeded
    sample of MAP_POINTS images) and the top outliers and label suspects; empty without embeddings."""
    if not ws.exists("embeddings"):
        return {}
    ids = ws.read("embeddings", embeddings_schema_of(ws), columns=["sample_id"],
                  filter=pc.is_null(pc.field("error")))["sample_id"]  # an embedding: no error
    rng = np.random.default_rng(0)
    take = np.sort(rng.choice(len(ids), min(MAP_POINTS, len(ids)), replace=False))
    found = read_embeddings(ws, ids.take(pa.array(take, pa.int64())).to_pylist())
    points = project(found.vectors)
    named = ws.read("manifest", MANIFEST, columns=["sample_id", "label"],
                    filter=pc.field("sample_id").isin(pa.array(found.sample_ids, pa.string())))
    labels = dict(zip(named["sample_id"].to_pylist(), named["label"].to_pylist()))
    issues = (ws.read("issues", ISSUES, filter=pc.field("check").isin(["outlier", "label_suspect"])).to_pandas()
              if ws.exists("issues") else pd.DataFrame(columns=ISSUES.names))

    def top(check: str) -> list[dict[str, Any]]:
        rows = issues[issues["check"] == check].sort_values("score").head(LISTED_FINDINGS)
        return [{"path": r.path, "label": _text(r.label), "score": round(float(r.score), 3),
                 "suggested": r.suggested if isinstance(r.suggested, str) else None} for r in rows.itertuples()]

    return {"model": found.model, "images": len(ids),
            "map": [{"x": round(float(x), 3), "y": round(float(y), 3), "label": str(labels.get(s))}
                    for (x, y), s in zip(points, found.sample_ids)],
            "outliers": top("outlier"), "label_suspects": top("label_suspect")}


def project(vectors: np.ndarray) -> np.ndarray:
    """2-D coordinates: t-SNE of the 50-dimensional PCA projection (PCA alone for a handful)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    if len(vectors) < 5:
        return np.zeros((len(vectors), 2)) if len(vectors) < 2 else PCA(2).fit_transform(vectors)
    reduced = PCA(min(50, len(vectors) - 1, vectors.shape[1]), random_state=0).fit_transform(vectors)
    return TSNE(2, perplexity=min(30.0, (len(vectors) - 1) / 3), init="pca", random_state=0).fit_transform(reduced)


@dataclass
class ManifestFacts:
    """The images that are not `removed`: how many, how many unlabelled, and the class counts
    before curation (`class_counts`), gathered a batch at a time."""

    images: int
    unlabelled: int
    before: Counts

    @classmethod
    def of(cls, ws: Workspace) -> ManifestFacts:
        images = unlabelled = 0
        before: Counter[tuple[str, str]] = Counter()
        for batch in batches(ws, "manifest", MANIFEST, ["label", "split"],
                             pc.field("status") != Status.REMOVED.value):
            images += batch.num_rows
            unlabelled += batch["label"].null_count
            add_counts(before, class_counts(batch.to_pandas(), None)["before"])
        return cls(images, unlabelled, summed(before))


def collect(ws: Workspace, cfg: Config) -> dict[str, Any]:
    """Everything the report shows, as plain JSON-able data."""
    manifest = ManifestFacts.of(ws)
    plan = PlanFacts.of(ws) if ws.exists("plan") else None
    counts = {"before": manifest.before, "after": counts_after(ws)}
    classes = sorted({c for stage in counts.values() for by_class in stage.values() for c in by_class})
    weights, weight_column = class_weights(ws, plan, cfg)
    return {
        "classes": classes,
        "images": manifest.images,
        "unlabelled": manifest.unlabelled,
        "counts": counts,
        "imbalance": {stage: imbalance(c) for stage, c in counts.items()},
        "issues": issues_by_check(ws),
        "excluded": plan.excluded if plan else {},
        "duplicates": duplicates(ws),
        "class_weights": weights,
        "weight_column": weight_column,
        "missing": not_written_yet(ws, "report"),
        "embeddings": embedding_facts(ws),
    }
