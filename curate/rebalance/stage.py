"""Rebalance: read manifest, issues and duplicates; write `OUT/plan/` (every non-removed
manifest row: keep + reason, split, copies, augment_copies, weight, cluster_id).

Exclusions, in order: scan error, an issue whose severity is in validate.exclude, a dropped
duplicate, no label, a class below the minimum size (when configured to drop), then the
strategy's undersampling. Every random choice is a seeded hash of the sample_id, so the same
input, config and seed give the same plan whatever the partitioning.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from curate.config import Config
from curate.errors import ConfigError
from curate.rebalance.splits import parse_ratios, resplit, seeded_key
from curate.rebalance.strategies import STRATEGIES, StrategySettings, parse_target
from curate.rebalance.weights import class_weights
from curate.schema import DUPLICATES, ISSUES, MANIFEST, PLAN, SPLITS, Status
from curate.workspace import Workspace


@dataclass
class RebalanceSummary:
    before: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> class -> usable images
    after: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> class -> samples incl. copies
    weights: dict[str, dict[str, float]] = field(default_factory=dict)  # scheme -> class -> weight
    excluded: dict[str, int] = field(default_factory=dict)  # reason kind -> images
    small_classes: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0


def resolve(cfg: Config) -> None:
    """Fail before any work on a bad strategy, split or target."""
    r = cfg.rebalance
    STRATEGIES.get(r.strategy)
    if r.split:
        parse_ratios(r.split)
    if r.strategy == "target":
        parse_target(r.target)
    if r.strategy == "cap" and r.cap < 1:
        raise ConfigError("rebalance.cap must be at least 1 with strategy cap (e.g. --cap 500)")
    if r.strategy == "floor" and r.floor < 1:
        raise ConfigError("rebalance.floor must be at least 1 with strategy floor (e.g. --floor 100)")


def _load(ws: Workspace, cfg: Config) -> pd.DataFrame:
    rows = ws.read("manifest", MANIFEST, columns=["sample_id", "path", "label", "split", "status", "error_code"],
                   filter=pc.field("status") != Status.REMOVED.value).to_pandas()
    rows = rows.sort_values("path", kind="stable").reset_index(drop=True)
    rows["reason"] = None
    rows.loc[rows["status"] == Status.ERROR.value, "reason"] = "error: " + rows["error_code"].fillna("")
    warned: set[str] = set()
    if ws.exists("issues"):
        issues = ws.read("issues", ISSUES, columns=["sample_id", "check", "severity"],
                         filter=pc.is_valid(pc.field("sample_id"))).to_pandas()
        bad = issues[issues["severity"].isin(cfg.validate.exclude)].drop_duplicates("sample_id")
        reason = "issue: " + bad.set_index("sample_id")["check"]
        hit = rows["reason"].isna() & rows["sample_id"].isin(reason.index)
        rows.loc[hit, "reason"] = rows.loc[hit, "sample_id"].map(reason)
        warned = set(issues.loc[issues["severity"] == "warning", "sample_id"])
    rows["warned"] = rows["sample_id"].isin(warned)
    rows["cluster_id"] = pd.array([pd.NA] * len(rows), dtype="Int64")
    if ws.exists("duplicates"):
        dups = ws.read("duplicates", DUPLICATES, columns=["sample_id", "cluster_id", "keep", "reason"]).to_pandas()
        dups = dups.set_index("sample_id")
        rows["cluster_id"] = rows["sample_id"].map(dups["cluster_id"]).astype("Int64")
        dropped = dups.loc[~dups["keep"], "reason"]
        hit = rows["reason"].isna() & rows["sample_id"].isin(dropped.index)
        rows.loc[hit, "reason"] = "duplicate: " + rows.loc[hit, "sample_id"].map(dropped)
    rows.loc[rows["reason"].isna() & rows["label"].isna(), "reason"] = "unlabelled"
    return rows


def _assign_splits(rows: pd.DataFrame, cfg: Config) -> pd.Series:
    """The split of every row; members of one duplicate cluster share one split."""
    group = rows["cluster_id"].astype("string").fillna("s:" + rows["sample_id"])
    rows = rows.assign(group=group)
    if cfg.rebalance.split:
        usable = rows[rows["reason"].isna()]
        sizes = usable.groupby("group").size()
        everyone = rows.groupby("group").agg(label=("label", "first"), test=("split", lambda s: (s == "test").any()))
        everyone["size"] = sizes.reindex(everyone.index).fillna(0).astype(int)
        chosen = resplit(everyone.reset_index(), parse_ratios(cfg.rebalance.split), cfg.rebalance.seed,
                         cfg.rebalance.keep_test)
        return rows["group"].map(chosen)
    split = rows["split"].fillna("train")
    # a cluster's members follow its kept member (dedup keeps a held-out copy over a train one)
    anchor = rows.assign(split=split).sort_values("reason", na_position="first").groupby("group")["split"].first()
    return rows["group"].map(anchor)


def _apply_strategy(rows: pd.DataFrame, cfg: Config) -> None:
    """Set keep/reason/copies/augment_copies for the usable rows of the rebalanced splits."""
    r = cfg.rebalance
    settings = StrategySettings(r.cap, r.floor, r.target)
    for split in r.apply_to:
        usable = rows[(rows["split"] == split) & rows["reason"].isna()]
        counts = usable.groupby("label").size().to_dict()
        targets = STRATEGIES.get(r.strategy)(counts, settings)
        for label, members in usable.groupby("label", sort=True):
            n, want = len(members), int(targets.get(label, len(members)))
            # drop warned images first, then duplicate-cluster members, then in seeded order
            order = members.assign(_r=[seeded_key(r.seed, s) for s in members["sample_id"]],
                                   _dup=members["cluster_id"].notna()).sort_values(["warned", "_dup", "_r"])
            if want < n:
                rows.loc[order.index[want:], "reason"] = f"{r.strategy}: class {label} reduced to {want}"
            elif want > n:
                extra = want - n
                each, rest = divmod(extra, n)
                add = np.full(n, each) + (np.arange(n) < rest)
                column = "augment_copies" if r.oversample == "augment" else "copies"
                rows.loc[order.index, column] += add


def rebalance(src: str | None, out: str, cfg: Config) -> RebalanceSummary:
    """Plan OUT's final membership (src unused). See module doc."""
    started = time.perf_counter()
    resolve(cfg)
    ws = Workspace(out)
    rows = _load(ws, cfg)
    rows["split"] = _assign_splits(rows, cfg)
    rows["copies"] = 1
    rows["augment_copies"] = 0
    summary = RebalanceSummary()
    summary.before = _counts(rows[rows["reason"].isna()], weighted=False)
    class_sizes = rows[rows["reason"].isna()].groupby("label").size()
    summary.small_classes = sorted(class_sizes[class_sizes < cfg.rebalance.min_class_size].index)
    if cfg.rebalance.small_classes == "drop":
        small = rows["reason"].isna() & rows["label"].isin(summary.small_classes)
        rows.loc[small, "reason"] = f"class below minimum size {cfg.rebalance.min_class_size}"
    _apply_strategy(rows, cfg)
    rows["keep"] = rows["reason"].isna()
    rows.loc[~rows["keep"], ["copies", "augment_copies"]] = [0, 0]
    kept = rows[rows["keep"]]
    summary.after = _counts(kept, weighted=True)
    summary.weights = class_weights(summary.after.get("train", {}), cfg.rebalance.beta)
    rows["weight"] = rows["label"].map(summary.weights[cfg.rebalance.weights]).where(rows["keep"])
    summary.excluded = rows.loc[~rows["keep"], "reason"].str.split(":").str[0].value_counts().sort_index().to_dict()
    table = pa.Table.from_pandas(rows[PLAN.names].astype({"cluster_id": "Int64"}), schema=PLAN, preserve_index=False)
    ws.write_dataset("plan", table, PLAN)
    summary.elapsed_s = time.perf_counter() - started
    return summary


def _counts(rows: pd.DataFrame, weighted: bool) -> dict[str, dict[str, int]]:
    n = rows["copies"] + rows["augment_copies"] if weighted else pd.Series(1, index=rows.index)
    table = n.groupby([rows["split"], rows["label"]]).sum()
    out: dict[str, dict[str, int]] = {}
    for (split, label), v in table.items():
        out.setdefault(split, {})[label] = int(v)
    return {s: out[s] for s in SPLITS if s in out}
