"""The scan's plan: which manifest row each listed path gets, worked out per group of paths on the
workers by joining the listing with the labels file and the previous manifest.

Paths are grouped by the top `bits` bits of their key (`curate.scan.listed.path_key`); `bits` is
the fewest that keep a group under `GROUP_ROWS` paths (0, one group, for collections up to that
size, whose manifest is then sorted by path as a whole). Within a group paths are sorted; the
manifest is the groups in order, each cut into runs of `[engine] partition_size` rows, so the same
tree gives the same manifest whatever the number of workers.

Reads `OUT/scan.work/listing/`, the labels file and the previous `OUT/manifest/` (only the parts of
the group's keys: `manifest/_groups.json` says which parts hold which group). A labels file is
first split by group, a chunk at a time, by one task (`split_labels`), into
`OUT/scan.work/labels/group-GGGGG-CCCCC.parquet`, so that each group's task reads its own labels
only and no process holds the whole file. Writes, per group, `OUT/scan.work/plan/group-GGGGG.parquet`
(schema `SCAN_PLAN`, one row group per manifest part) and `OUT/scan.work/previous/group-GGGGG.parquet`
(the previous rows the group keeps), and returns counts, so the driver never holds a path.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from curate import listing
from curate.config import Config
from curate.engine import dask_client, run_tasks
from curate.listing import labels_chunks, layout_label
from curate.scan.listed import LISTING, WORK, path_key
from curate.schema import MANIFEST, SCAN_LISTING, SCAN_PLAN, Status
from curate.workspace import Workspace

GROUP_ROWS = 250_000  # the most paths a group should hold (memory of one planning task: ~1 KB each)
LAYOUT = "_groups.json"  # in the manifest: {"bits": k, "parts": [manifest parts of each group]}
PLAN = f"{WORK}/plan"
PREVIOUS = f"{WORK}/previous"
LABELS = f"{WORK}/labels"
LABELS_SCHEMA = pa.schema([("path", pa.string()), ("label", pa.string()), ("split", pa.string())])

# Columns added to the manifest since some manifests were written: an ok row without them was
# scanned by an older curate, and its file is decoded again (as if it had changed).
ADDED_COLUMNS = ("edge_sharpness",)


def group_file(folder: str, group: int) -> str:
    """The file of `group` in the plan's `folder` (`PLAN` or `PREVIOUS`), relative to OUT."""
    return f"{folder}/group-{group:05d}.parquet"


def group_bits(files: int) -> int:
    """The fewest key bits that split `files` paths into groups of at most about `GROUP_ROWS`."""
    return max(0, math.ceil(math.log2(files / GROUP_ROWS))) if files > GROUP_ROWS else 0


def key_range(group: int, bits: int) -> tuple[int, int]:
    """The keys of `group` when groups are the top `bits` bits: [low, high)."""
    return group << (64 - bits), (group + 1) << (64 - bits)


@dataclass(frozen=True)
class GroupTask:
    """One group to plan: its number, the key bits, and the previous manifest's parts it reads."""

    out: str
    group: int
    bits: int
    previous: tuple[str, ...]  # part files (names in OUT/manifest/) that may hold the group's paths
    labels_file: str
    rows_per_part: int

    @property
    def part(self) -> str:
        """Its name in messages."""
        return f"plan of group {self.group}"


@dataclass(frozen=True)
class GroupPlan:
    """What one group's plan holds (counts and a digest, never paths)."""

    group: int
    rows: int  # manifest rows, removed ones included
    parts: int  # manifest parts
    unchanged: bool  # every row kept as it is
    newly_removed: int  # paths gone since the previous scan
    labels_unmatched: int  # labels file paths of this group that are not in SRC
    digest: str  # of the plan: the staging folder of an interrupted scan is resumed only for the same one


@dataclass(frozen=True)
class LabelsTask:
    """The labels file to split into the groups of `bits` key bits."""

    out: str
    labels_file: str
    bits: int
    chunk_rows: int

    @property
    def part(self) -> str:
        """Its name in messages."""
        return f"split of the labels file {self.labels_file}"


def split_labels(task: LabelsTask) -> int:
    """Write each chunk of the labels file's rows of each group to
    `OUT/scan.work/labels/group-GGGGG-CCCCC.parquet` (chunk CCCCC); returns the rows read."""
    ws = Workspace(task.out)
    rows = 0
    for chunk, table in enumerate(labels_chunks(task.labels_file, task.chunk_rows)):
        rows += table.num_rows
        keys = np.fromiter((path_key(p) for p in table.column("path").to_pylist()), np.uint64, table.num_rows)
        groups = keys >> np.uint64(64 - task.bits) if task.bits else np.zeros(len(keys), np.uint64)
        order = np.argsort(groups, kind="stable")
        found, starts = np.unique(groups[order], return_index=True)
        for group, rows_of in zip(found.tolist(), np.split(order, starts[1:])):
            ws.write_table(f"{LABELS}/group-{group:05d}-{chunk:05d}.parquet", table.take(rows_of), LABELS_SCHEMA)
    return rows


def plan_group(task: GroupTask) -> GroupPlan:
    """Join the group's listed paths with their labels and previous rows; write its plan and the
    previous rows it keeps (see module doc)."""
    ws = Workspace(task.out)
    low, high = key_range(task.group, task.bits)
    listed = _listed(ws, task, low, high).sort_by("path")
    paths = listed.column("path").to_pylist()
    labels, unmatched = _labels(ws, task, paths)
    previous = _previous(ws, task, low, high)
    before = {p: i for i, p in enumerate(previous.column("path").to_pylist())}
    prev_size = _previous_sizes(previous)
    prev_rest = list(zip(*(previous.column(c).to_pylist() for c in ("mtime", "status", "label", "split"))))
    rows: dict[str, list[Any]] = {name: [] for name in SCAN_PLAN.names}
    kept: list[int] = []
    unchanged = True
    for path, size, mtime, error, code, (label, split) in zip(
            paths, *(listed.column(c).to_pylist() for c in ("size", "mtime", "error", "error_code")), labels):
        i = before.pop(path, None)
        reuse = (i is not None and error is None and prev_rest[i][1] != Status.REMOVED.value
                 and (prev_size[i], prev_rest[i][0]) == (size, mtime))
        unchanged = unchanged and reuse and i is not None and prev_rest[i][2:] == (label, split)
        if reuse:
            kept.append(i)  # type: ignore[arg-type]
        _append(rows, path=path, size=size, mtime=mtime, label=label, split=split, error=error, error_code=code,
                reuse=reuse, removed=False)
    newly_removed = 0
    for path, i in before.items():  # gone from SRC: the previous row stays, as removed
        newly_removed += prev_rest[i][1] != Status.REMOVED.value
        kept.append(i)
        _append(rows, path=path, size=prev_size[i], mtime=prev_rest[i][0], label=prev_rest[i][2],
                split=prev_rest[i][3], error=None, error_code=None, reuse=False, removed=True)
    plan = pa.table(rows, schema=SCAN_PLAN).sort_by("path")
    ws.write_table(group_file(PLAN, task.group), plan, SCAN_PLAN, row_group_size=task.rows_per_part)
    keeps = previous.take(pa.array(sorted(kept), pa.int64())).sort_by("path")
    ws.write_table(group_file(PREVIOUS, task.group), keeps, MANIFEST, row_group_size=task.rows_per_part)
    return GroupPlan(task.group, plan.num_rows, -(-plan.num_rows // task.rows_per_part),
                     unchanged and newly_removed == 0, newly_removed, unmatched, _digest(plan))


def _append(rows: dict[str, list[Any]], **values: Any) -> None:
    for name, value in values.items():
        rows[name].append(value)


def _listed(ws: Workspace, task: GroupTask, low: int, high: int) -> pa.Table:
    import pyarrow.dataset as ds

    parts = sorted(p for p in ws.fs.glob(ws.path(LISTING, "part-*.parquet")))
    listing = ds.dataset(parts, schema=SCAN_LISTING, format="parquet", filesystem=ws.fs)
    if task.bits == 0:
        return listing.to_table()
    key = ds.field("key")
    wanted = key >= pa.scalar(low, pa.uint64())
    if high < 1 << 64:  # the last group has no upper bound
        wanted &= key < pa.scalar(high, pa.uint64())
    return listing.to_table(filter=wanted)


def _in_group(paths: list[str], task: GroupTask, low: int, high: int) -> pa.Array:
    if task.bits == 0:
        return pa.array([True] * len(paths))
    return pa.array([low <= path_key(p) < high for p in paths])


def _labels(ws: Workspace, task: GroupTask, paths: list[str]) -> tuple[list[tuple[str | None, str | None]], int]:
    """(label, split) of each path (from the group's split of the labels file, else the folder
    layout), and how many of the labels file's paths in this group are not in SRC."""
    if not task.labels_file:
        return [layout_label(p) for p in paths], 0
    import pyarrow.dataset as ds

    files = sorted(ws.fs.glob(ws.path(LABELS, f"group-{task.group:05d}-*.parquet")))
    table = ds.dataset(files, schema=LABELS_SCHEMA, format="parquet", filesystem=ws.fs).to_table()
    given = dict(zip(table.column("path").to_pylist(),
                     zip(table.column("label").to_pylist(), table.column("split").to_pylist())))
    listed = set(paths)
    return [given.get(p, (None, None)) for p in paths], sum(p not in listed for p in given)


def _previous(ws: Workspace, task: GroupTask, low: int, high: int) -> pa.Table:
    """The previous manifest's rows of this group's keys (empty without a previous manifest)."""
    if not task.previous:
        return MANIFEST.empty_table()
    import pyarrow.dataset as ds

    table = ds.dataset([ws.path("manifest", p) for p in task.previous], schema=MANIFEST, format="parquet",
                       filesystem=ws.fs).to_table()
    return table.filter(_in_group(table.column("path").to_pylist(), task, low, high))


def _previous_sizes(previous: pa.Table) -> list[int]:
    """Each previous row's size, -1 where an ok row lacks an `ADDED_COLUMNS` value (so that its file
    counts as changed and is decoded again)."""
    lacking = functools.reduce(pc.or_, (pc.is_null(previous.column(c)) for c in ADDED_COLUMNS))
    outdated = pc.and_(pc.equal(previous.column("status"), Status.OK.value), lacking).to_pylist()
    return [-1 if old else size for size, old in zip(previous.column("size_bytes").to_pylist(), outdated)]


def _digest(plan: pa.Table) -> str:
    h = xxhash.xxh3_128()
    for row in zip(*(plan.column(c).to_pylist() for c in ("path", "size", "mtime", "label", "split", "reuse"))):
        h.update("\0".join(map(str, row)).encode() + b"\n")
    return h.hexdigest()


@dataclass
class Planned:
    """The plan of every group: key bits, and each group's counts in group order."""

    bits: int
    groups: list[GroupPlan]

    @property
    def unchanged(self) -> bool:
        return all(g.unchanged for g in self.groups)

    @property
    def key(self) -> str:
        """Names the plan: the manifest parts an interrupted scan wrote belong to this plan only."""
        h = xxhash.xxh3_128(f"{self.bits}\n".encode())
        for g in self.groups:
            h.update(f"{g.rows}\0{g.parts}\0{g.digest}\n".encode())
        return h.hexdigest()


def previous_layout(ws: Workspace) -> tuple[int, list[list[str]]]:
    """The previous manifest's key bits and, per group, its part files (a manifest written before
    groups, or of one group, is one group of every part); (0, []) without a manifest."""
    if not ws.exists("manifest"):
        return 0, []
    names = [p.rpartition("/")[2] for p in ws.parts("manifest")]
    if not ws.exists("manifest", LAYOUT):
        return 0, [names]
    layout = ws.read_json(f"manifest/{LAYOUT}")
    cuts = [0]
    for n in layout["parts"]:
        cuts.append(cuts[-1] + n)
    return int(layout["bits"]), [names[a:b] for a, b in zip(cuts, cuts[1:])]


def _parts_of(group: int, bits: int, old_bits: int, old: list[list[str]]) -> tuple[str, ...]:
    """The previous parts that may hold paths of `group` (at `bits`), from the previous layout."""
    if not old:
        return ()
    if bits >= old_bits:
        return tuple(old[group >> (bits - old_bits)])
    wider = 1 << (old_bits - bits)
    return tuple(p for g in range(group * wider, (group + 1) * wider) for p in old[g])


def plan(out: str, cfg: Config, files: int) -> Planned:
    """Plan every group of the listing's `files` paths (on the workers when there are several)."""
    ws = Workspace(out)
    bits = group_bits(files)
    old_bits, old = previous_layout(ws)
    tasks = [GroupTask(out, g, bits, _parts_of(g, bits, old_bits, old), cfg.scan.labels, cfg.engine.partition_size)
             for g in range(1 << bits)]
    ws.remove(LABELS)
    with dask_client(cfg.engine, len(tasks), (out,)) as client:
        if cfg.scan.labels:
            split = LabelsTask(out, cfg.scan.labels, bits, listing.LABEL_CHUNK_ROWS)
            run_tasks(client, split_labels, [split], label="labels", retries=cfg.engine.retries)
        groups = run_tasks(client, plan_group, tasks, label="plan", retries=cfg.engine.retries)
    if (old_bits, len(old)) != (bits, len(groups)):  # a new layout: every manifest part is written again
        groups = [dataclasses.replace(g, unchanged=False) for g in groups]
    return Planned(bits, groups)
