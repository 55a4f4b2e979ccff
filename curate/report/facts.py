"""The numbers behind the report (and the FiftyOne dataset's info): a JSON-able summary of OUT.

Reads `OUT/manifest/` and, where they exist, `OUT/issues/`, `OUT/duplicates/`, `OUT/plan/`,
`OUT/embeddings/` and `OUT/runs/rebalance.json`. Class counts before and after curation are
`curate.tables.class_counts`.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from curate.config import Config
from curate.schema import DUPLICATES, ISSUES, Severity
from curate.tables import Counts, class_counts, manifest_rows, not_written_yet, plan_rows, read_embeddings
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
    table = ws.read("issues", ISSUES, columns=["sample_id", "check", "severity"]).to_pandas()
    table["level"] = table["sample_id"].notna().map({True: "image", False: "collection"})
    rank = {s.value: i for i, s in enumerate(Severity)}
    grouped = table.groupby(["check", "severity", "level"]).size().reset_index(name="count")
    grouped["_rank"] = grouped["severity"].map(rank)
    grouped = grouped.sort_values(["_rank", "count", "check"], ascending=[True, False, True])
    return grouped.drop(columns="_rank").to_dict("records")


def excluded(plan: pd.DataFrame | None) -> dict[str, int]:
    """Images the plan leaves out, by kind of reason (error, issue, duplicate, cap, ...)."""
    if plan is None:
        return {}
    reasons = plan.loc[~plan["keep"], "reason"].fillna("").str.split(":").str[0]
    return {k: int(v) for k, v in reasons.value_counts().sort_index().items()}


def duplicates(ws: Workspace) -> dict[str, Any]:
    """Clusters by kind, label conflicts, a few example clusters per kind, and the leaks."""
    if not ws.exists("duplicates"):
        return {"by_kind": {}, "label_conflicts": 0, "examples": [], "leaks": {"clusters": 0, "by_splits": {},
                                                                                "listed": []}}
    table = ws.read("duplicates", DUPLICATES).to_pandas().sort_values(["cluster_id", "distance", "path"])
    by_kind = {kind: {"clusters": int(g["cluster_id"].nunique()), "images": len(g), "dropped": int((~g["keep"]).sum())}
               for kind, g in table.groupby("kind")}
    examples = []
    for _kind, g in table.groupby("kind"):
        for cid in sorted(g["cluster_id"].unique())[:EXAMPLES_PER_KIND]:
            examples.append(_cluster(table[table["cluster_id"] == cid]))
    leaked = table[table["leak"]]
    clusters = [_cluster(g) for _, g in leaked.groupby("cluster_id")]
    by_splits: dict[str, int] = {}
    for c in clusters:
        key = "/".join(c["splits"])
        by_splits[key] = by_splits.get(key, 0) + 1
    return {"by_kind": by_kind, "label_conflicts": int(table.loc[table["label_conflict"], "cluster_id"].nunique()),
            "examples": examples,
            "leaks": {"clusters": len(clusters), "by_splits": dict(sorted(by_splits.items())),
                      "listed": clusters[:LISTED_LEAKS]}}


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


def class_weights(ws: Workspace, plan: pd.DataFrame | None, cfg: Config) -> tuple[dict[str, dict[str, float]], str]:
    """(scheme -> class -> weight, the scheme in the plan's weight column): every scheme rebalance
    computed, else the plan's weight column under the configured scheme."""
    if ws.exists("runs/rebalance.json"):
        run = ws.read_json("runs/rebalance.json")
        return run["summary"].get("weights", {}), run["config"]["rebalance"]["weights"]
    if plan is None:
        return {}, cfg.rebalance.weights
    kept = plan[plan["keep"] & plan["weight"].notna()]
    by_class = {str(k): float(v) for k, v in kept.groupby("label")["weight"].first().items()}
    return {cfg.rebalance.weights: by_class}, cfg.rebalance.weights


MAP_POINTS = 2000  # images drawn on the embedding map (a seeded sample above this)
LISTED_FINDINGS = 8


def embedding_facts(ws: Workspace) -> dict[str, Any]:
    """A 2-D map of the embeddings coloured by class (t-SNE over a PCA projection, of a seeded
    sample of MAP_POINTS images) and the top outliers and label suspects; empty without embeddings."""
    if not ws.exists("embeddings"):
        return {}
    found = read_embeddings(ws)
    labels = manifest_rows(ws).set_index("sample_id")["label"]
    rng = np.random.default_rng(0)
    take = np.sort(rng.choice(len(found.sample_ids), min(MAP_POINTS, len(found.sample_ids)), replace=False))
    points = project(found.vectors[take])
    ids = [found.sample_ids[i] for i in take]
    issues = ws.read("issues", ISSUES).to_pandas() if ws.exists("issues") else pd.DataFrame(columns=ISSUES.names)

    def top(check: str) -> list[dict[str, Any]]:
        rows = issues[issues["check"] == check].sort_values("score").head(LISTED_FINDINGS)
        return [{"path": r.path, "label": _text(r.label), "score": round(float(r.score), 3),
                 "suggested": r.suggested if isinstance(r.suggested, str) else None} for r in rows.itertuples()]

    return {"model": found.model, "images": len(found.sample_ids),
            "map": [{"x": round(float(x), 3), "y": round(float(y), 3), "label": str(labels.get(s))}
                    for (x, y), s in zip(points, ids)],
            "outliers": top("outlier"), "label_suspects": top("label_suspect")}


def project(vectors: np.ndarray) -> np.ndarray:
    """2-D coordinates: t-SNE of the 50-dimensional PCA projection (PCA alone for a handful)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    if len(vectors) < 5:
        return np.zeros((len(vectors), 2)) if len(vectors) < 2 else PCA(2).fit_transform(vectors)
    reduced = PCA(min(50, len(vectors) - 1, vectors.shape[1]), random_state=0).fit_transform(vectors)
    return TSNE(2, perplexity=min(30.0, (len(vectors) - 1) / 3), init="pca", random_state=0).fit_transform(reduced)


def collect(ws: Workspace, cfg: Config) -> dict[str, Any]:
    """Everything the report shows, as plain JSON-able data."""
    manifest = manifest_rows(ws)
    plan = plan_rows(ws)
    counts = class_counts(manifest, plan)
    classes = sorted({c for stage in counts.values() for by_class in stage.values() for c in by_class})
    weights, weight_column = class_weights(ws, plan, cfg)
    return {
        "classes": classes,
        "images": len(manifest),
        "unlabelled": int(manifest["label"].isna().sum()),
        "counts": counts,
        "imbalance": {stage: imbalance(c) for stage, c in counts.items()},
        "issues": issues_by_check(ws),
        "excluded": excluded(plan),
        "duplicates": duplicates(ws),
        "class_weights": weights,
        "weight_column": weight_column,
        "missing": not_written_yet(ws, "report"),
        "embeddings": embedding_facts(ws),
    }
