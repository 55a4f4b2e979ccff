"""Rebalance: read manifest, issues and duplicates; write `OUT/plan/` (every non-removed
manifest row: keep + reason, split, copies, augment_copies, weight, cluster_id).

Exclusions, in order: scan error, an issue whose severity is in validate.exclude, a dropped
duplicate, no label, a class below the minimum size (when configured to drop), then the
strategy's undersampling, which drops warned images first, then duplicate-cluster members,
then in seeded order (or, with `prefer = "diverse"`, the most redundant by their embeddings
first: `curate.rebalance.diversity`). Every random choice is a seeded hash of the sample_id, so the same input,
config and seed give the same plan whatever the partitioning.

Partition-bounded, on the run's Dask cluster (in-process for one manifest part or a small
manifest, under CLUSTER_MIN_ROWS rows, unless a scheduler is given): every pass
works on one manifest part (`marks`) and returns small tables; the driver holds per-class
counts and histograms, the duplicate-cluster members and a few boundary rows, never the
collection, except for its sample ids while it routes the issues, duplicates and diversity keys to
their parts (`curate.rebalance.routes`). Passes: mark each part; [re-split only: rank the single
images per class]; count and rank the rows the strategy rebalances; write each part's plan file.
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

import numpy as np
import pandas as pd
import pyarrow as pa

from curate.config import Config, RebalanceConfig
from curate.engine import dask_client, run_tasks
from curate.errors import ConfigError
from curate.labelled import labelled_embeddings
from curate.rebalance import ranks
from curate.rebalance.diversity import diverse_keys
from curate.rebalance.marks import (
    DIVERSITY,
    DIVERSITY_SCHEMA,
    STAGING,
    WORK,
    Assign,
    PartTask,
    RowView,
    boundary_pass,
    histogram_pass,
    mark_part,
    route_rows,
    write_cluster_splits,
    write_plan_part,
)
from curate.rebalance.splits import KeepSplits, Resplit, anchors, as_scanned, parse_ratios, place, singles_view
from curate.rebalance.strategies import STRATEGIES, StrategySettings
from curate.rebalance.weights import class_weights
from curate.schema import MANIFEST
from curate.tables import nested
from curate.view import Block, Table, View
from curate.workspace import Workspace

BY = ["split", "label"]
CLUSTER_MIN_ROWS = 500_000  # below this, a local cluster's start-up costs more than the passes


@dataclass
class RebalanceSummary:
    before: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> class -> usable images
    after: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> class -> samples incl. copies
    weights: dict[str, dict[str, float]] = field(default_factory=dict)  # scheme -> class -> weight
    excluded: dict[str, int] = field(default_factory=dict)  # reason kind -> images
    small_classes: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    def view(self, out: str) -> View:
        excluded = ", ".join(f"{k} {v}" for k, v in self.excluded.items()) or "none"
        blocks: list[Block] = []
        if self.small_classes:
            blocks.append(f"classes below the minimum size: {', '.join(self.small_classes)}")
        splits = list(self.after) or list(self.before)
        classes = sorted({c for counts in [*self.before.values(), *self.after.values()] for c in counts})
        rows = ([c, *(f"{self.before.get(s, {}).get(c, 0)} -> {self.after.get(s, {}).get(c, 0)}" for s in splits),
                 *(f"{self.weights[k].get(c, 0):.3f}" for k in self.weights)] for c in classes)
        blocks.append(Table.of("samples per class: before -> after",
                               ["class", *splits, *(f"w:{k}" for k in self.weights)], rows))
        return View("rebalance", f"excluded {sum(self.excluded.values())} ({excluded}) ({self.elapsed_s:.1f}s)",
                    blocks, {"plan": f"{out}/plan/"})


def resolve(cfg: Config) -> None:
    """Fail before any work on a bad strategy, split or target."""
    r = cfg.rebalance
    try:
        strategy = STRATEGIES.get(r.strategy)
    except ConfigError as exc:
        raise ConfigError(f"rebalance.strategy: {exc}") from exc
    strategy.check(StrategySettings.of(r))
    if r.split:
        parse_ratios(r.split)


Run = Callable[..., list[Any]]  # run_tasks bound to the stage's client and tasks


def find_cuts(run: Run, assign: Assign, view: RowView, by: list[str], hist: pd.Series,
              wanted: dict[Hashable, list[int]]) -> dict[tuple[Hashable, int], ranks.Cut]:
    """The exact cut of every wanted (group, rank): from the histogram, plus one pass for the
    rows of the boundary buckets when a rank falls inside one."""
    cuts, boundaries = ranks.locate(hist, wanted)
    if boundaries:
        rows = pd.concat(run(boundary_pass, label="rebalance: rank", assign=assign, view=view, by=by,
                             cells=ranks.wanted_cells(boundaries, by)))
        cuts |= ranks.resolve(boundaries, rows, by)
    return cuts


def strategy_view(marks: pd.DataFrame, apply_to: tuple[str, ...]) -> pd.DataFrame:
    """The rows the strategy ranks per (split, label) (RowView): usable rows of the rebalanced
    splits, warned images last, then duplicate-cluster members, then in seeded order."""
    rows = marks[marks["reason"].isna().to_numpy() & marks["split"].isin(apply_to).to_numpy()]
    tier = rows["warned"].to_numpy().astype(np.int64) * 2 + rows["cluster_id"].notna().to_numpy()
    return pd.DataFrame({"split": rows["split"], "label": rows["label"],
                         "order": ranks.order_key(tier, rows["key"].to_numpy()), "path": rows["path"]})


@dataclass(frozen=True)
class Decisions:
    """What the driver decided for the whole collection, applied to one part by `decide`."""

    strategy: str
    oversample_column: str
    apply_to: tuple[str, ...]
    small: frozenset[str]
    small_reason: str
    targets: dict[tuple[str, str], tuple[int, int]]  # (split, label) -> (usable n, target)
    cuts: dict[tuple[Hashable, int], ranks.Cut]
    weights: dict[str, float]


def cut_rank(n: int, want: int) -> int:
    """The rank that splits a class of `n` rows for a target of `want`: undersampling keeps the
    first `want`; oversampling gives the first `(want - n) % n` one copy more than the rest."""
    return want if want < n else (want - n) % n


def decide(marks: pd.DataFrame, d: Decisions) -> pd.DataFrame:
    """The plan rows of one marked part (splits assigned)."""
    reason = marks["reason"].to_numpy(dtype=object, na_value=None)
    reason[(pd.isna(reason) & marks["label"].isin(d.small).to_numpy())] = d.small_reason
    plan = marks.assign(reason=reason)
    extra = np.zeros(len(plan), dtype=np.int64)
    for (split, label), rows in strategy_view(plan, d.apply_to).groupby(BY, sort=False):
        n, want = d.targets[(split, label)]
        if want == n:
            continue
        cut = d.cuts[((split, label), cut_rank(n, want))]
        front = ranks.in_front(rows["order"].to_numpy(), rows["path"], cut)
        at = plan.index.get_indexer(rows.index)
        if want < n:
            reason[at[~front]] = f"{d.strategy}: class {label} reduced to {want}"
        else:
            extra[at] += (want - n) // n + front
    keep = pd.isna(reason)
    copies = np.where(keep, 1, 0)
    plan = plan.assign(reason=reason, keep=keep, copies=copies, augment_copies=0)
    plan[d.oversample_column] += np.where(keep, extra, 0)
    plan["weight"] = plan["label"].map(d.weights).where(keep).astype("float64")
    return plan


def split_rule(run: Run, r: RebalanceConfig, members: pd.DataFrame, ws: Workspace, parts: int) -> Assign:
    """How every row gets its split: the splits the data came with, or a re-split. Writes each
    duplicate cluster's split by part (`write_cluster_splits`, of `parts`) for the passes that follow."""
    if not r.split:
        write_cluster_splits(ws, members, anchors(members), parts)
        return KeepSplits()
    view = functools.partial(singles_view, keep_test=r.keep_test)
    tallies = run(histogram_pass, label="rebalance: split", assign=as_scanned, view=view, by=["label"])
    hist = ranks.merge_histograms(h for _, h in tallies)
    usable = ranks.merge_histograms(c for c, _ in tallies)
    free = hist.groupby(level=0).sum().to_dict() if len(hist) else {}
    fixed_test: dict[str, int] = {}
    if r.keep_test:
        clustered = members[members["usable"] & (members["split"] == "test")].groupby("label").size()
        in_test = usable.loc["test"] if "test" in usable.index.get_level_values(0) else pd.Series(dtype=int)
        fixed_test = (in_test.sub(clustered, fill_value=0)).astype(int).to_dict()
    placement = place(members, free, fixed_test, parse_ratios(r.split), r.seed, r.keep_test)
    quotas: dict[Hashable, list[int]] = {label: list(q) for label, q in placement.quotas.items()}
    cuts = find_cuts(run, as_scanned, view, ["label"], hist, quotas)
    write_cluster_splits(ws, members, placement.clusters, parts)
    return Resplit({label: (cuts[(label, a)], cuts[(label, b)]) for label, (a, b) in placement.quotas.items()},
                   parse_ratios(r.split), r.keep_test)


def rebalance(src: str | None, out: str, cfg: Config) -> RebalanceSummary:
    """Plan OUT's final membership (src unused). See module doc."""
    started = time.perf_counter()
    resolve(cfg)
    r = cfg.rebalance
    ws = Workspace(out)
    parts = sorted(p.rpartition("/")[2] for p in ws.fs.glob(ws.path("manifest", "part-*.parquet")))
    tasks = [PartTask(out, p, i) for i, p in enumerate(parts)]
    ws.remove(WORK)
    ws.remove(STAGING)
    if r.prefer == "diverse":
        write_diversity(ws, r.seed)
    route_rows(ws, parts)
    summary = RebalanceSummary()
    rows = ws.dataset("manifest", MANIFEST).count_rows()
    with dask_client(cfg.engine, len(tasks), (out,), worth_a_cluster=rows >= CLUSTER_MIN_ROWS) as client:
        def run(fn: Callable, label: str, **kwargs: Any) -> list[Any]:
            return run_tasks(client, fn, tasks, label=label, retries=cfg.engine.retries, **kwargs)

        members = pd.concat(run(mark_part, label="rebalance: mark", exclude=tuple(cfg.validate.exclude),
                                seed=r.seed))
        assign = split_rule(run, r, members, ws, len(tasks))
        view = functools.partial(strategy_view, apply_to=tuple(r.apply_to))
        tallies = run(histogram_pass, label="rebalance: count", assign=assign, view=view, by=BY)
        usable = ranks.merge_histograms(c for c, _ in tallies)
        hist = ranks.merge_histograms(h for _, h in tallies)
        summary.before = nested(usable)
        per_class = usable.groupby(level=1).sum() if len(usable) else pd.Series(dtype=int)
        summary.small_classes = sorted(per_class[per_class < r.min_class_size].index)
        small = frozenset(summary.small_classes if r.small_classes == "drop" else ())
        targets = strategy_targets(usable, r, small)
        wanted: dict[Hashable, list[int]] = {}
        for group, (n, want) in targets.items():
            if want != n and n:
                wanted.setdefault(group, []).append(cut_rank(n, want))
        cuts = find_cuts(run, assign, view, BY, hist, wanted)
        if "train" in r.apply_to:
            after_train = {label: want for (split, label), (_, want) in targets.items() if split == "train" and want}
        else:
            after_train = {label: n for label, n in summary.before.get("train", {}).items() if label not in small}
        summary.weights = class_weights(after_train, r.beta)
        decisions = Decisions(r.strategy, "augment_copies" if r.oversample == "augment" else "copies",
                              tuple(r.apply_to), small, f"class below minimum size {r.min_class_size}", targets, cuts,
                              summary.weights[r.weights])
        written = run(write_plan_part, label="rebalance: write", assign=assign,
                      decide=functools.partial(decide, d=decisions))
    ws.swap_in(STAGING, "plan")
    ws.remove(WORK)
    summary.after = nested(ranks.merge_histograms(a for a, _ in written))
    excluded = ranks.merge_histograms(e for _, e in written)
    summary.excluded = {str(k): int(v) for k, v in excluded.sort_index().items()}
    summary.elapsed_s = time.perf_counter() - started
    return summary


def write_diversity(ws: Workspace, seed: int) -> None:
    """The diversity order of the labelled ok images with an embedding (`curate.rebalance.diversity`),
    for the mark pass."""
    with labelled_embeddings(ws) as (images, sample_ids):
        keys = diverse_keys(images, sample_ids, seed)
    ws.write_dataset(DIVERSITY, pa.table({"sample_id": sample_ids, "key": keys}, schema=DIVERSITY_SCHEMA),
                     DIVERSITY_SCHEMA)


def strategy_targets(usable: pd.Series, r: RebalanceConfig, small: frozenset[str]
                     ) -> dict[tuple[str, str], tuple[int, int]]:
    """(split, label) -> (usable images, target) for the rebalanced splits."""
    settings = StrategySettings.of(r)
    out: dict[tuple[str, str], tuple[int, int]] = {}
    for split in r.apply_to:
        if split not in usable.index.get_level_values(0):
            continue
        counts = {label: int(n) for label, n in usable.loc[split].items() if label not in small}
        targets = STRATEGIES.get(r.strategy).targets(counts, settings)
        out |= {(split, label): (n, int(targets.get(label, n))) for label, n in counts.items()}
    return out
