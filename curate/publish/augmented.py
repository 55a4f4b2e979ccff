"""Augmented variants as image files the FiftyOne app can show, and their rows for the table.

Reads the complete shards under `OUT/augmented/<split>/` (written by `curate augment`), one row
group at a time, and writes the bytes of each variant of a published image to
`OUT/publish/augmented/<split>/<variant id>.<ext>` (a file already there with the same size is
kept; files no variant refers to any more are removed). A variant's id is its shard
`sample_id`, or `<sample_id>~<copy_index>` when the shard reuses its source's id.
"""
from __future__ import annotations

import re
from typing import Iterator

import pandas as pd
import pyarrow.parquet as pq

from curate.imaging import formats
from curate.publish.table import COLUMNS, media_prefix
from curate.shards.index import shard_files
from curate.workspace import Workspace

FOLDER = "publish/augmented"
_READ = ["image", "label_name", "sample_id", "source_sample_id", "augment_ops", "width", "height", "copy_index"]


def variant_id(sample_id: str | None, source_sample_id: str | None, copy_index: int | None) -> str:
    if sample_id and sample_id != source_sample_id:
        return sample_id
    return f"{sample_id or source_sample_id}~{copy_index or 0}"


def augmented_shards(ws: Workspace) -> Iterator[tuple[str, str]]:
    """(shard file, split) of every complete shard under OUT/augmented/."""
    for rel in shard_files(ws):
        root, split = rel.split("/")[:2]
        if root == "augmented":
            yield rel, split


def sources(ws: Workspace) -> set[str]:
    """The sample ids of the images OUT/augmented/ holds variants of."""
    found: set[str] = set()
    for rel, _split in augmented_shards(ws):
        with ws.fs.open(ws.path(rel), "rb") as f:
            found.update(pq.read_table(f, columns=["source_sample_id"])["source_sample_id"].to_pylist())
    return found


def variants(ws: Workspace, weight: dict[str, float]) -> pd.DataFrame:
    """One row per augmented variant of a published source image (`weight`: the class weight of
    each, by sample id), its image extracted under OUT/publish/augmented/; a variant's class weight
    is its source's."""
    prefix = media_prefix(ws.url)
    rows, written = [], set()
    for rel, split in augmented_shards(ws):
        with ws.fs.open(ws.path(rel), "rb") as f:
            pf = pq.ParquetFile(f)
            for rg in range(pf.num_row_groups):
                for row, r in enumerate(pf.read_row_group(rg, columns=_READ).to_pylist()):
                    if r["source_sample_id"] not in weight:
                        continue
                    vid = variant_id(r["sample_id"], r["source_sample_id"], r["copy_index"])
                    data = (r["image"] or {}).get("bytes") or b""
                    fmt = formats.sniff(data)
                    name = f"{FOLDER}/{split}/{_safe(vid)}.{formats.suffix(fmt)}"
                    if not (ws.exists(name) and ws.fs.size(ws.path(name)) == len(data)):
                        ws.write_bytes(name, data)
                    written.add(ws.path(name))
                    rows.append({
                        "filepath": prefix + name, "sample_id": vid, "ground_truth": r["label_name"],
                        "split": split, "status": "ok", "keep": True, "copies": 1, "augment_copies": 0,
                        "weight": weight[r["source_sample_id"]], "width": r["width"], "height": r["height"],
                        "format": fmt or "IMG", "size_bytes": len(data),
                        "shard": rel, "shard_row_group": rg, "shard_row": row, "augmented": True,
                        "source_sample_id": r["source_sample_id"], "augment_ops": r["augment_ops"],
                        "issues": [], "severities": []})
    _remove_stale(ws, written)
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _remove_stale(ws: Workspace, written: set[str]) -> None:
    if ws.exists(FOLDER):
        for p in ws.fs.find(ws.path(FOLDER)):
            if p not in written:
                ws.fs.rm(p)


def _safe(name: str) -> str:
    """`name` usable as a file name."""
    return re.sub(r"[^A-Za-z0-9._~-]", "_", name)
