"""Rows of datasets that are not laid out like the manifest (issues, duplicates, diversity keys),
sorted once by the manifest part of their sample, so that each part's task reads its own rows only.

Filtering a whole dataset by a part's sample ids in every part's task costs parts x rows: at 10M
rows, 5,000 parts each reading 2.9M issue and duplicate rows. `route` instead reads every
manifest part's sample ids once, maps all of a dataset's rows to their parts with one call of
`pyarrow.compute.index_in` (which builds a hash table of the manifest's ids on every call), and
writes `OUT/<folder>/<name>.parquet` sorted by part, in row groups of ROW_GROUP rows;
`rows_of_part` then reads only the row groups whose `part` statistics cover the part. Rows whose
sample is not in the manifest are dropped. Driver memory: the manifest's sample ids (~25 bytes
each, and their hash table) and the routed columns.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate.schema import MANIFEST
from curate.workspace import Workspace

ROW_GROUP = 4096
PART = "part"


def manifest_ids(ws: Workspace, parts: list[str]) -> tuple[pa.Array, np.ndarray]:
    """(every manifest row's sample_id, the index in `parts` of its part), in part order."""
    ids, owner = [], []
    for index, part in enumerate(parts):
        with ws.fs.open(ws.path("manifest", part), "rb") as f:
            column = pq.read_table(f, columns=["sample_id"], schema=MANIFEST)["sample_id"].combine_chunks()
        ids.append(column)
        owner.append(np.full(len(column), index, dtype=np.int32))
    if not ids:
        return pa.array([], pa.string()), np.zeros(0, dtype=np.int32)
    return pa.concat_arrays(ids), np.concatenate(owner)


def route(ws: Workspace, manifest: tuple[pa.Array, np.ndarray], name: str, schema: pa.Schema,
          columns: list[str], folder: str) -> None:
    """Write `columns` (sample_id among them) of the dataset `name` with each row's manifest part,
    sorted by part, to `folder/<name>.parquet` (nothing when `name` is absent)."""
    if not ws.exists(name):
        return
    ids, owner = manifest
    rows = ws.read(name, schema, columns=columns)
    rows = rows.filter(pc.is_valid(rows["sample_id"]))
    at = pc.index_in(rows["sample_id"], value_set=ids)  # one hash table of the manifest's ids
    rows = rows.filter(pc.is_valid(at)).append_column(PART, pa.array(owner[pc.drop_null(at).to_numpy()]))
    out_schema = pa.schema([*(schema.field(c) for c in columns), pa.field(PART, pa.int32(), nullable=False)])
    ws.write_table(_file(folder, name), rows.sort_by(PART), out_schema, row_group_size=ROW_GROUP)


def rows_of_part(ws: Workspace, folder: str, name: str, index: int) -> pa.Table | None:
    """The routed rows of `name` whose sample is in manifest part `index` (without the part
    column), or None when `name` was not routed."""
    if not ws.exists(_file(folder, name)):
        return None
    with ws.fs.open(ws.path(_file(folder, name)), "rb") as f:
        file = pq.ParquetFile(f)
        at = file.schema_arrow.get_field_index(PART)
        groups = [g for g in range(file.num_row_groups)
                  if _covers(file.metadata.row_group(g).column(at).statistics, index)]
        table = file.read_row_groups(groups) if groups else file.schema_arrow.empty_table()
    return table.filter(pc.equal(table[PART], index)).drop_columns([PART])


def _covers(stats: pq.Statistics | None, index: int) -> bool:
    return stats is None or not stats.has_min_max or stats.min <= index <= stats.max


def _file(folder: str, name: str) -> str:
    return f"{folder}/{name.rpartition('/')[2]}.parquet"
