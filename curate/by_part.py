"""Rows sorted by a part number, from which a task reads its own part only.

Used where a driver deals rows out to tasks (the rebalance's routed issues and duplicates, each
shard's samples): the rows go to a folder under OUT instead of into the task graph, each file of
it holding PARTS_PER_FILE consecutive parts, and a task reads the row groups of its part's file
whose `part` statistics cover its part. A task's read costs the same whatever the collection's
size: with every part in one file, each task parsed a footer that grows with the rows (at 10M
rows and 5,000 parts, 3-5 ms a read against 1.4 ms at 1M; benchmarks/RESULTS.md, "Scale runs
(stages)").
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate.workspace import Workspace

ROW_GROUP = 4096
PARTS_PER_FILE = 64
PART = "part"


def write_by_part(ws: Workspace, rel: str, table: pa.Table, part: np.ndarray, parts: int) -> None:
    """Write `table` with each row's `part` (int32, 0 <= part < `parts`) to the folder `rel`, sorted
    by part (stably), in row groups of ROW_GROUP rows: file k holds parts k * PARTS_PER_FILE up to
    the next file's first, and every file is written, empty or not."""
    part = np.asarray(part, dtype=np.int32)
    if len(part) and not 0 <= part.min() <= part.max() < parts:
        raise ValueError(f"part numbers must lie in [0, {parts}): {part.min()}..{part.max()}")
    if len(part) and (part[1:] < part[:-1]).any():
        order = np.argsort(part, kind="stable")
        table, part = table.take(pa.array(order)), part[order]
    rows = table.append_column(PART, pa.array(part))
    schema = table.schema.append(pa.field(PART, pa.int32(), nullable=False))
    files = max(1, -(-parts // PARTS_PER_FILE))
    bounds = np.searchsorted(part, np.arange(files + 1) * PARTS_PER_FILE).tolist()
    ws.remove(rel)
    for k in range(files):
        ws.write_table(_file(rel, k), rows.slice(bounds[k], bounds[k + 1] - bounds[k]), schema,
                       row_group_size=ROW_GROUP)


def read_part(ws: Workspace, rel: str, index: int) -> pa.Table:
    """The rows of the folder `rel` in part `index`, in their written order, without the part column."""
    with ws.fs.open(ws.path(_file(rel, index // PARTS_PER_FILE)), "rb") as f:
        file = pq.ParquetFile(f)
        at = file.schema_arrow.get_field_index(PART)
        groups = [g for g in range(file.num_row_groups)
                  if _covers(file.metadata.row_group(g).column(at).statistics, index)]
        table = file.read_row_groups(groups) if groups else file.schema_arrow.empty_table()
    return table.filter(pc.equal(table[PART], index)).drop_columns([PART])


def _file(rel: str, k: int) -> str:
    return f"{rel}/{k:05d}.parquet"


def _covers(stats: pq.Statistics | None, index: int) -> bool:
    return stats is None or not stats.has_min_max or stats.min <= index <= stats.max
