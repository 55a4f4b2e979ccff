"""Per-partition work of the rebalance stage: one manifest part at a time, never the collection.

`mark_part` reads one manifest part and the issues and duplicates of its samples (routed to the
part once by `route_rows`), decides
every row's pre-strategy exclusion (`reason`), and writes a narrow "marks" file
(`OUT/plan.work/marks-NNNNN.parquet`) that the later passes read instead of the manifest. Each
pass returns small tables (counts, histograms, boundary rows, cluster members); the last one
writes the part's plan file.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from curate.by_part import read_part, write_by_part
from curate.rebalance import ranks, routes
from curate.schema import DUPLICATES, ISSUES, MANIFEST, PLAN, Status
from curate.seeds import seeded_keys
from curate.workspace import Workspace

WORK = "plan.work"
STAGING = "plan.new"
MARKS = pa.schema([
    pa.field("sample_id", pa.string(), nullable=False), pa.field("path", pa.string(), nullable=False),
    pa.field("label", pa.string()), pa.field("split", pa.string()), pa.field("reason", pa.string()),
    pa.field("warned", pa.bool_(), nullable=False), pa.field("cluster_id", pa.int64()),
    pa.field("key", pa.uint64(), nullable=False),
])


# How a part's marked rows get their split (splits.KeepSplits, splits.Resplit, or as scanned),
# given the split of each duplicate cluster among them (`cluster_splits`).
Assign = Callable[[pd.DataFrame, dict[int, str]], pd.Series]
CLUSTER_SPLITS = f"{WORK}/cluster_splits"  # by part: the split of each cluster with a member in it


@dataclass(frozen=True)
class PartTask:
    out: str
    part: str  # manifest part file name
    index: int

    @property
    def marks(self) -> str:
        return f"{WORK}/marks-{self.index:05d}.parquet"


DIVERSITY = f"{WORK}/diversity"  # sample_id -> order key, with `prefer = "diverse"`
DIVERSITY_SCHEMA = pa.schema([pa.field("sample_id", pa.string(), nullable=False),
                              pa.field("key", pa.uint64(), nullable=False)])
ROUTED = f"{WORK}/routed"  # the rows below, sorted by manifest part (`curate.rebalance.routes`)
ROUTED_COLUMNS = {"issues": (ISSUES, ["sample_id", "check", "severity"]),
                  "duplicates": (DUPLICATES, ["sample_id", "cluster_id", "keep", "reason"]),
                  DIVERSITY: (DIVERSITY_SCHEMA, ["sample_id", "key"])}


def route_rows(ws: Workspace, parts: list[str]) -> None:
    """Route the issues, duplicates and diversity keys that the mark pass reads to their parts."""
    manifest = routes.manifest_ids(ws, parts)
    for name, (schema, columns) in ROUTED_COLUMNS.items():
        routes.route(ws, manifest, len(parts), name, schema, columns, ROUTED)


def mark_part(task: PartTask, exclude: tuple[str, ...], seed: int) -> pd.DataFrame:
    """Write the part's marks; return its duplicate-cluster members (cluster_id, path, label,
    split, usable, part), which the stage needs whole to give every cluster one split. The order key is
    the seeded one, or the diversity key where the stage wrote them (DIVERSITY)."""
    ws = Workspace(task.out)
    with ws.fs.open(ws.path("manifest", task.part), "rb") as f:
        rows = pq.read_table(f, columns=["sample_id", "path", "label", "split", "status", "error_code"],
                             schema=MANIFEST).to_pandas()
    rows = rows[rows["status"] != Status.REMOVED.value]
    if not rows["path"].is_monotonic_increasing:
        rows = rows.sort_values("path", kind="stable")
    rows = rows.reset_index(drop=True)
    ids = rows["sample_id"].to_numpy(dtype=object)
    reason = np.full(len(rows), None, dtype=object)
    failed = (rows["status"] == Status.ERROR.value).to_numpy()
    reason[failed] = ("error: " + rows.loc[failed, "error_code"].fillna("")).to_numpy(dtype=object)
    warned = np.zeros(len(rows), dtype=bool)
    issues = routes.rows_of_part(ws, ROUTED, "issues", task.index)
    if issues is not None:
        issues = issues.to_pandas()
        bad = issues[issues["severity"].isin(exclude)].drop_duplicates("sample_id").set_index("sample_id")["check"]
        _first_reason(reason, "issue: ", lookup(rows["sample_id"], bad))
        warned = rows["sample_id"].isin(issues.loc[issues["severity"] == "warning", "sample_id"]).to_numpy()
    cluster_id = pd.Series(pd.NA, index=rows.index, dtype="Int64")
    dups = routes.rows_of_part(ws, ROUTED, "duplicates", task.index)
    if dups is not None:
        dups = dups.to_pandas().set_index("sample_id")
        cluster_id = lookup(rows["sample_id"], dups["cluster_id"]).astype("Int64")
        _first_reason(reason, "duplicate: ", lookup(rows["sample_id"], dups.loc[~dups["keep"], "reason"]))
    reason[pd.isna(reason) & rows["label"].isna().to_numpy()] = "unlabelled"
    key = seeded_keys(seed, ids)
    diverse = routes.rows_of_part(ws, ROUTED, DIVERSITY, task.index)
    if diverse is not None:
        key = lookup(rows["sample_id"], diverse.to_pandas().set_index("sample_id")["key"]
                     ).fillna(0).to_numpy(dtype=np.uint64)
    marks = rows[["sample_id", "path", "label", "split"]].assign(
        reason=reason, warned=warned, cluster_id=cluster_id, key=key)
    ws.write_table(task.marks, pa.Table.from_pandas(marks, schema=MARKS, preserve_index=False), MARKS)
    members = marks[marks["cluster_id"].notna()]
    return members[["cluster_id", "path", "label", "split"]].assign(usable=members["reason"].isna(), part=task.index)


def lookup(keys: pd.Series, table: pd.Series) -> pd.Series:
    """`keys.map(table)`, mapping only the keys that are in the (usually much smaller) table."""
    out = pd.Series(None, index=keys.index, dtype=object)
    hit = keys.isin(table.index).to_numpy()
    out[hit] = keys[hit].map(table).to_numpy(dtype=object)
    return out


def _first_reason(reason: np.ndarray, prefix: str, detail: pd.Series) -> None:
    """Set `prefix + detail` where `detail` applies (not NA) and no earlier reason was set."""
    values = detail.to_numpy(dtype=object, na_value=None)
    hit = pd.isna(reason) & ~pd.isna(values)
    reason[hit] = prefix + values[hit].astype(str).astype(object)


def write_cluster_splits(ws: Workspace, members: pd.DataFrame, splits: dict[int, str], parts: int) -> None:
    """The split of every duplicate cluster, once per part that holds a member of it
    (CLUSTER_SPLITS; `parts` manifest parts), so that a part's task reads its own clusters, not the
    collection's."""
    pairs = members[["part", "cluster_id"]].drop_duplicates()
    ids = pairs["cluster_id"].astype("int64").to_numpy()
    table = pa.table({"cluster_id": ids, "split": [splits[c] for c in ids.tolist()]})
    write_by_part(ws, CLUSTER_SPLITS, table, pairs["part"].to_numpy(), parts)


def read_marks(task: PartTask, assign: Assign) -> pd.DataFrame:
    """The part's marks, with `split` as `assign` decides it."""
    ws = Workspace(task.out)
    with ws.fs.open(ws.path(task.marks), "rb") as f:
        marks = pq.read_table(f, schema=MARKS).to_pandas()
    clusters: dict[int, str] = {}
    if ws.exists(CLUSTER_SPLITS):
        mine = read_part(ws, CLUSTER_SPLITS, task.index)
        clusters = dict(zip(mine["cluster_id"].to_pylist(), mine["split"].to_pylist()))
    marks["split"] = assign(marks, clusters)
    return marks


# A view: the rows of a marked part (splits assigned) that one cut-off problem ranks, with
# columns *by, order and path.
RowView = Callable[[pd.DataFrame], pd.DataFrame]


def histogram_pass(task: PartTask, assign: Assign, view: RowView, by: list[str]
                   ) -> tuple[pd.Series, pd.Series]:
    """(usable rows per (split, label), histogram of the view's order keys per (*by, bucket))."""
    marks = read_marks(task, assign)
    usable = marks[marks["reason"].isna()]
    return usable.groupby(["split", "label"]).size(), ranks.histogram(view(marks), by)


def boundary_pass(task: PartTask, assign: Assign, view: RowView, by: list[str],
                  cells: pd.DataFrame) -> pd.DataFrame:
    """The view's rows that fall in the wanted (*by, bucket) cells."""
    marks = read_marks(task, assign)
    return ranks.boundary_rows(view(marks), by, cells)


def write_plan_part(task: PartTask, assign: Assign,
                    decide: Callable[[pd.DataFrame], pd.DataFrame]) -> tuple[pd.Series, pd.Series]:
    """Write the part's plan rows; return (samples per (split, label) incl. copies, excluded rows
    per reason kind)."""
    marks = read_marks(task, assign)
    plan = decide(marks)
    ws = Workspace(task.out)
    ws.write_table(f"{STAGING}/part-{task.index:05d}.parquet",
                   pa.Table.from_pandas(plan[PLAN.names], schema=PLAN, preserve_index=False), PLAN)
    kept = plan[plan["keep"]]
    after = (kept["copies"] + kept["augment_copies"]).groupby([kept["split"], kept["label"]]).sum()
    reasons = plan.loc[~plan["keep"], "reason"].value_counts()
    excluded = reasons.groupby(reasons.index.str.split(":").str[0]).sum()
    return after, excluded
