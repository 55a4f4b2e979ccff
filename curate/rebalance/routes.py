"""Rows of datasets that are not laid out like the manifest (issues, duplicates, diversity keys),
sorted once by the manifest part of their sample, so that each part's task reads its own rows only.

Filtering a whole dataset by a part's sample ids in every part's task costs parts x rows: at 10M
rows, 5,000 parts each reading 2.9M issue and duplicate rows. `route` instead reads every
manifest part's sample ids once, maps all of a dataset's rows to their parts with one call of
`pyarrow.compute.index_in` (which builds a hash table of the manifest's ids on every call), and
writes them to `OUT/<folder>/<name>/` sorted by part (`curate.by_part`), from which `rows_of_part`
reads only the row groups that hold the part. Rows whose sample is not in the manifest are
dropped. Driver memory: the manifest's sample ids (~25 bytes each, and their hash table) and the
routed columns.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate.by_part import read_part, write_by_part
from curate.schema import MANIFEST
from curate.workspace import Workspace


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


def route(ws: Workspace, manifest: tuple[pa.Array, np.ndarray], parts: int, name: str, schema: pa.Schema,
          columns: list[str], folder: str) -> None:
    """Write `columns` (sample_id among them) of the dataset `name` with each row's manifest part
    (of `parts`), sorted by part, to `folder/<name>/` (nothing when `name` is absent)."""
    if not ws.exists(name):
        return
    ids, owner = manifest
    rows = ws.read(name, schema, columns=columns)
    rows = rows.filter(pc.is_valid(rows["sample_id"]))
    at = pc.index_in(rows["sample_id"], value_set=ids)  # one hash table of the manifest's ids
    rows = rows.filter(pc.is_valid(at))
    write_by_part(ws, _folder(folder, name), rows, owner[pc.drop_null(at).to_numpy()], parts)


def rows_of_part(ws: Workspace, folder: str, name: str, index: int) -> pa.Table | None:
    """The routed rows of `name` whose sample is in manifest part `index`, or None when `name`
    was not routed."""
    return read_part(ws, _folder(folder, name), index) if ws.exists(_folder(folder, name)) else None


def _folder(folder: str, name: str) -> str:
    return f"{folder}/{name.rpartition('/')[2]}"
