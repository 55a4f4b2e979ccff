"""Write one shard: read its samples' bytes from SRC, write Parquet atomically, then a sidecar
with its stats (count, bytes, sha256, class histogram). The sidecar marks the shard complete."""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

import fsspec
import pyarrow as pa

from curate.schema import SHARD
from curate.shards.normalize import Normalize, normalize
from curate.workspace import Workspace


@dataclass(frozen=True)
class ShardTask:
    src: str
    out: str
    rel: str  # shard path relative to OUT
    samples: tuple[dict[str, Any], ...]  # sample_id, path, label, label_name, width, height, copy_index
    row_group_size: int
    normalize: Normalize | None
    schema_metadata: tuple[tuple[bytes, bytes], ...]


def sidecar(rel: str) -> str:
    """Where a shard's stats live: `<split>/_stats/shard-N.json` (readers skip `_` folders)."""
    head, _, name = rel.rpartition("/")
    return f"{head}/_stats/{name.rsplit('.', 1)[0]}.json"


def write_shard(task: ShardTask) -> dict[str, Any]:
    """Write task.rel and its sidecar; return the sidecar's stats."""
    fs, root = fsspec.core.url_to_fs(task.src)
    columns: dict[str, list] = {name: [] for name in SHARD.names}
    for s in task.samples:
        with fs.open(f"{root.rstrip('/')}/{s['path']}", "rb") as f:
            data = f.read()
        width, height = s["width"], s["height"]
        if task.normalize is not None:
            data, width, height = normalize(data, task.normalize)
        columns["image"].append({"bytes": data, "path": s["path"]})
        columns["label"].append(s["label"])
        columns["label_name"].append(s["label_name"])
        columns["sample_id"].append(s["sample_id"])
        columns["source_path"].append(s["path"])
        columns["width"].append(width)
        columns["height"].append(height)
        columns["copy_index"].append(s["copy_index"])
        for name in ("source_sample_id", "augment_ops", "augment_seed"):
            columns[name].append(s.get(name))
    schema = SHARD.with_metadata(dict(task.schema_metadata))
    table = pa.table(columns, schema=schema)
    ws = Workspace(task.out)
    ws.write_table(task.rel, table, schema, row_group_size=task.row_group_size)
    with ws.fs.open(ws.path(task.rel), "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    stats = {"shard": task.rel, "count": table.num_rows, "bytes": ws.fs.size(ws.path(task.rel)), "sha256": digest,
             "histogram": dict(sorted(Counter(columns["label_name"]).items()))}
    ws.write_bytes(sidecar(task.rel), json.dumps(stats, sort_keys=True).encode())
    return stats
