"""A Parquet file of rows sorted by a part number, from which a task reads its own part only.

Used where a driver deals rows out to tasks (the rebalance's routed issues and duplicates, each
shard's samples): the rows go to one file instead of into the task graph, and each task reads the
row groups whose `part` statistics cover its part. Writes and reads one file under OUT.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate.workspace import Workspace

ROW_GROUP = 4096
PART = "part"


def write_by_part(ws: Workspace, rel: str, table: pa.Table, part: np.ndarray) -> None:
    """Write `table` with each row's `part` (int32) to `rel`, sorted by part (stably), in row
    groups of ROW_GROUP rows."""
    part = np.asarray(part, dtype=np.int32)
    if len(part) and (part[1:] < part[:-1]).any():
        order = np.argsort(part, kind="stable")
        table, part = table.take(pa.array(order)), part[order]
    rows = table.append_column(PART, pa.array(part))
    schema = table.schema.append(pa.field(PART, pa.int32(), nullable=False))
    ws.write_table(rel, rows, schema, row_group_size=ROW_GROUP)


def read_part(ws: Workspace, rel: str, index: int) -> pa.Table:
    """The rows of `rel` in part `index`, in their written order, without the part column."""
    with ws.fs.open(ws.path(rel), "rb") as f:
        file = pq.ParquetFile(f)
        at = file.schema_arrow.get_field_index(PART)
        groups = [g for g in range(file.num_row_groups)
                  if _covers(file.metadata.row_group(g).column(at).statistics, index)]
        table = file.read_row_groups(groups) if groups else file.schema_arrow.empty_table()
    return table.filter(pc.equal(table[PART], index)).drop_columns([PART])


def _covers(stats: pq.Statistics | None, index: int) -> bool:
    return stats is None or not stats.has_min_max or stats.min <= index <= stats.max
