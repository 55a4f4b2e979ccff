"""The table curate publishes: one row per image, with every decision about it.

Reads `OUT/manifest/` (every image that is not `removed`, or only the selected ones: see
`curate.publish.select`), and where they exist `OUT/issues/`, `OUT/duplicates/`, `OUT/plan/` and
`OUT/index.parquet` (each filtered to those images while read); a stage that has not run leaves
its fields null. Columns: `filepath` (where the app reads the image) and the fields in
`curate.publish.fields`. Pure data: nothing here talks to FiftyOne.
"""
from __future__ import annotations

import os.path
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash

from curate.publish.fields import FIELDS, NAMES
from curate.schema import DUPLICATES, ISSUES, MANIFEST, PLAN, Severity, Status
from curate.source import Source
from curate.storage import safe_url
from curate.workspace import Workspace, local_path

COLUMNS: tuple[str, ...] = ("filepath", *NAMES)

_MANIFEST_COLUMNS = ["sample_id", "path", "label", "split", "status", "error_code", "error_message", "width", "height",
                     "format", "size_bytes", "brightness_p05", "brightness_p50", "brightness_p95", "contrast",
                     "entropy", "sharpness", "edge_sharpness", "channel_spread"]
_SEVERITY_ORDER = {s.value: i for i, s in enumerate(Severity)}


def media_prefix(root: str) -> str:
    """What FiftyOne's path for a file under `root` starts with: the absolute folder when local,
    else the URL (FiftyOne's open-source app shows local files only)."""
    local = local_path(root)
    return os.path.abspath(local).rstrip("/") + "/" if local is not None else safe_url(root).rstrip("/") + "/"



ALL_CHUNK_ROWS = 250_000  # publishing every image: manifest rows joined and sent at a time


def originals_in_chunks(ws: Workspace, src: str, ids: set[str] | None) -> Iterator[pd.DataFrame]:
    """`originals` of the images of `ids`; of every image (ids None) a range of sample ids at a
    time, ALL_CHUNK_ROWS manifest rows each (the bounds are every ALL_CHUNK_ROWS-th id in sorted
    order), so that no process holds the whole table (each chunk reads the other stages' outputs
    filtered to its range)."""
    if ids is not None:
        yield originals(ws, src, _only(ids))
        return
    every = ws.read("manifest", MANIFEST, columns=["sample_id"])["sample_id"]
    ordered = every.take(pc.sort_indices(every))
    bounds = [ordered[k].as_py() for k in range(ALL_CHUNK_ROWS, len(ordered), ALL_CHUNK_ROWS)]
    del every, ordered
    for k in range(len(bounds) + 1):  # the first range open below and the last open above
        only = None if k == 0 else pc.field("sample_id") >= bounds[k - 1]
        if k < len(bounds):
            below = pc.field("sample_id") < bounds[k]
            only = below if only is None else only & below
        yield originals(ws, src, only)
        pa.default_memory_pool().release_unused()  # the chunk's Arrow reads, kept by the pool otherwise


def originals(ws: Workspace, src: str, only: pc.Expression | None = None) -> pd.DataFrame:
    """One row per manifest image, or per image whose row passes `only` (a filter on sample_id;
    removed files, and files that now lead out of SRC through a link, left out), every stage's
    decision joined in."""
    present = pc.field("status") != Status.REMOVED.value
    frame = ws.read("manifest", MANIFEST, columns=_MANIFEST_COLUMNS,
                    filter=present if only is None else present & only).to_pandas()
    frame = frame.sort_values("path", kind="stable").reset_index(drop=True)
    frame = frame.rename(columns={"label": "ground_truth", "split": "source_split"})
    frame = frame[~frame["path"].map(Source(src).leads_outside).astype(bool)]  # the app shows no file from outside
    frame["filepath"] = media_prefix(src) + frame["path"]
    frame = frame.merge(_issues(ws, only), on="sample_id", how="left")
    frame = frame.merge(_embedding_findings(ws, only), on="sample_id", how="left")
    frame = frame.merge(_duplicates(ws, only), on="sample_id", how="left")
    frame = frame.merge(_plan(ws, only), on="sample_id", how="left")
    frame = frame.merge(_shard_rows(ws, only), on="sample_id", how="left")
    frame["split"] = frame["split"].where(frame["split"].notna(), frame["source_split"])
    frame["augmented"] = False
    for name in ("source_sample_id", "augment_ops"):
        frame[name] = None
    for name in ("issues", "severities"):
        frame[name] = [v if isinstance(v, list) else [] for v in frame[name]]
    frame["curate_hash"] = None
    return frame[list(COLUMNS)]


def _only(ids: set[str] | None) -> pc.Expression | None:
    """The filter of rows whose sample_id is one of `ids` (None: every row)."""
    return None if ids is None else pc.field("sample_id").isin(pa.array(sorted(ids), pa.string()))


def _and(filter: pc.Expression, only: pc.Expression | None) -> pc.Expression:
    return filter if only is None else filter & only


def _issues(ws: Workspace, only: pc.Expression | None) -> pd.DataFrame:
    """sample_id -> the checks that fired on it and their severities (worst first)."""
    if not ws.exists("issues"):
        return pd.DataFrame({"sample_id": pd.Series(dtype=str), "issues": [], "severities": []})
    table = ws.read("issues", ISSUES, columns=["sample_id", "check", "severity"],
                    filter=_and(pc.is_valid(pc.field("sample_id")), only)).to_pandas()
    table = table.sort_values(["sample_id", "check"], kind="stable")
    checks = _lists(table.drop_duplicates(["sample_id", "check"]), "check")
    table["_rank"] = table["severity"].map(_SEVERITY_ORDER)
    worst_first = table.drop_duplicates(["sample_id", "severity"]).sort_values(["sample_id", "_rank"], kind="stable")
    severities = _lists(worst_first, "severity")
    return pd.DataFrame({"issues": checks, "severities": severities}).rename_axis("sample_id").reset_index()


def _lists(frame: pd.DataFrame, column: str) -> pd.Series:
    """sample_id -> the list of `column`'s values, in row order, of a frame sorted by sample_id
    (a split of one array: pandas' groupby(...).agg(list) runs Python per group)."""
    ids = frame["sample_id"].to_numpy(dtype=object)
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.zeros(0, np.int64)
    values = frame[column].to_numpy(dtype=object)
    return pd.Series([part.tolist() for part in np.split(values, starts[1:])] if len(ids) else [],
                     index=pd.Index(ids[starts], dtype=object), dtype=object)


def _embedding_findings(ws: Workspace, only: pc.Expression | None) -> pd.DataFrame:
    """sample_id -> the scores of the embedding checks that fired on it, and the suggested label."""
    columns = {"outlier": "outlier_score", "label_suspect": "label_confidence"}
    empty = pd.DataFrame(columns=["sample_id", *columns.values(), "suggested_label"])
    if not ws.exists("issues"):
        return empty
    table = ws.read("issues", ISSUES, columns=["sample_id", "check", "score", "suggested"],
                    filter=_and(pc.field("check").isin(list(columns)), only)).to_pandas()
    if table.empty:
        return empty
    scores = table.pivot_table(index="sample_id", columns="check", values="score", aggfunc="first")
    scores = scores.reindex(columns=list(columns)).rename(columns=columns)
    suggested = table.dropna(subset=["suggested"]).drop_duplicates("sample_id").set_index("sample_id")["suggested"]
    return scores.assign(suggested_label=suggested).rename_axis("sample_id").reset_index()


def _duplicates(ws: Workspace, only: pc.Expression | None) -> pd.DataFrame:
    columns = ["sample_id", "cluster_id", "kind", "distance", "similarity", "keep", "reason", "leak",
               "label_conflict"]
    renamed = {"kind": "dup_kind", "distance": "dup_distance", "similarity": "dup_similarity", "keep": "dup_keep",
               "reason": "dup_reason"}
    if not ws.exists("duplicates"):
        return pd.DataFrame(columns=columns).rename(columns=renamed)
    return ws.read("duplicates", DUPLICATES, columns=columns, filter=only).to_pandas().rename(columns=renamed)


def _plan(ws: Workspace, only: pc.Expression | None) -> pd.DataFrame:
    columns = ["sample_id", "split", "keep", "reason", "copies", "augment_copies", "weight"]
    if not ws.exists("plan"):
        return pd.DataFrame(columns=columns)
    return ws.read("plan", PLAN, columns=columns, filter=only).to_pandas()


def _shard_rows(ws: Workspace, only: pc.Expression | None) -> pd.DataFrame:
    """sample_id -> shard, row group and row of its first copy in OUT/shards/."""
    columns = ["sample_id", "shard", "shard_row_group", "shard_row"]
    if not ws.exists("index.parquet"):
        return pd.DataFrame(columns=columns)
    with ws.fs.open(ws.path("index.parquet"), "rb") as f:
        index = pq.read_table(f, columns=["sample_id", "copy_index", "shard", "row_group", "row"],
                              filters=only).to_pandas()
    index = index[index["shard"].str.startswith("shards/")].sort_values(["sample_id", "copy_index"], kind="stable")
    index = index.drop_duplicates("sample_id").rename(columns={"row_group": "shard_row_group", "row": "shard_row"})
    return index[columns]


_CONVERT: dict[str, Callable[[Any], Any]] = {"int": int, "float": float, "bool": bool, "str": str, "label": str}
_NATIVE = {"int": "iu", "float": "f", "bool": "b", "str": "O", "label": "O"}  # dtypes whose values need no cast
KINDS: dict[str, str] = {"filepath": "str", **{f.name: f.kind for f in FIELDS}}


def _column(series: pd.Series, kind: str) -> list[Any]:
    """Plain Python values of the field's kind, None where missing (an int column that a merge
    turned into floats gives ints again)."""
    values = series.tolist()
    if kind == "strings":
        return values
    missing = series.isna().to_numpy()
    if not missing.any() and series.dtype.kind in _NATIVE[kind]:
        return values
    convert = _CONVERT[kind]
    return [None if m else convert(v) for v, m in zip(values, missing.tolist())]


def records(frame: pd.DataFrame, batch_size: int) -> Iterator[list[dict[str, Any]]]:
    """The rows of `frame` as plain dicts (missing values None, each field of its kind),
    `batch_size` at a time, each with its `curate_hash`."""
    names = [c for c in COLUMNS if c != "curate_hash"]
    for start in range(0, len(frame), batch_size):
        part = frame.iloc[start:start + batch_size]
        columns = [_column(part[name], KINDS[name]) for name in names]
        batch = []
        for values in zip(*columns):
            row = dict(zip(names, values))
            row["curate_hash"] = xxhash.xxh3_64_hexdigest(repr(values).encode())
            batch.append(row)
        yield batch
