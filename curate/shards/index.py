"""The index of every shard (training and augmented) and dataset.json.

Reads: the shard files and their stats sidecars (`_stats/`) under `OUT/shards/` and `OUT/augmented/`, the plan,
the stage records. Writes: `OUT/index.parquet` (sample -> shard, row group, row; per-shard
count, bytes, sha256, class histogram and samples left out by reason in its metadata under
b"shards"; the left-out samples themselves stay in the sidecars) and `OUT/dataset.json`.
"""
from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from curate import lineage, storage
from curate.config import Config
from curate.schema import INDEX
from curate.shards.writer import counted, sidecar
from curate.workspace import TMP_MARK, Workspace

SHARD_ROOTS = ("shards", "augmented")


def shard_files(ws: Workspace) -> list[str]:
    """Every complete shard (its sidecar exists), relative to OUT, sorted."""
    found = []
    for top in SHARD_ROOTS:
        if not ws.exists(top):
            continue
        for p in ws.fs.glob(ws.path(top, "*", "shard-*.parquet")):
            rel = p[len(ws.root.rstrip("/")) + 1:]
            if not rel.rpartition("/")[2].startswith(TMP_MARK) and ws.exists(sidecar(rel)):
                found.append(rel)
    return sorted(found)


def shard_stats(ws: Workspace, rel: str) -> dict[str, Any]:
    return ws.read_json(sidecar(rel))


def build_index(ws: Workspace) -> list[dict[str, Any]]:
    """Write OUT/index.parquet from the shard files; return the per-shard stats (`counted`)."""
    parts, stats = [], []
    for rel in shard_files(ws):
        split = rel.split("/")[1]
        with ws.fs.open(ws.path(rel), "rb") as f:
            pf = pq.ParquetFile(f)
            for rg in range(pf.num_row_groups):
                t = pf.read_row_group(rg, columns=["sample_id", "label", "copy_index"])
                n = t.num_rows
                parts.append(pa.table({
                    "sample_id": t["sample_id"], "split": pa.array([split] * n, pa.string()), "label": t["label"],
                    "copy_index": t["copy_index"], "shard": pa.array([rel] * n, pa.string()),
                    "row_group": pa.array([rg] * n, pa.int32()), "row": pa.array(range(n), pa.int32())},
                    schema=INDEX))
        stats.append(counted(shard_stats(ws, rel)))
    table = pa.concat_tables(parts) if parts else INDEX.empty_table()
    schema = INDEX.with_metadata({b"shards": json.dumps(stats, sort_keys=True).encode()})
    ws.write_table("index.parquet", table.cast(schema), schema)
    return stats


def read_shard_stats(ws: Workspace) -> list[dict[str, Any]]:
    """The per-shard stats stored in OUT/index.parquet's metadata."""
    with ws.fs.open(ws.path("index.parquet"), "rb") as f:
        return json.loads(pq.read_schema(f).metadata[b"shards"])


def write_dataset_json(ws: Workspace, cfg: Config, classes: list[str]) -> dict[str, Any]:
    """OUT/dataset.json: classes, counts before/after, weights, shards (training and augmented),
    image encoding, config, versions, source, and the embedding model when `curate embed` ran.
    Written by `shard` and again by `augment`."""
    s = cfg.shard
    encoding = ({"normalize": True, "max_side": s.max_side, "format": s.format, "quality": s.quality}
                if s.normalize else {"normalize": False})
    rebalance = ws.read_json("runs/rebalance.json")["summary"] if ws.exists("runs/rebalance.json") else {}
    stats = read_shard_stats(ws)
    doc = {
        "classes": [{"id": i, "name": name} for i, name in enumerate(classes)],
        "counts": {"before": rebalance.get("before", {}), "after": rebalance.get("after", {})},
        "shard_counts": _counts_in_shards(stats),
        "class_weights": rebalance.get("weights", {}),
        "class_weight_column": cfg.rebalance.weights,
        "shards": [{k: s[k] for k in ("shard", "count", "bytes", "sha256")} for s in stats],
        "source": lineage.recorded_source(ws),
        "image_encoding": encoding,
        "config": cfg.to_record(),
        "versions": lineage.versions(),
    }
    embedded = lineage.last_run(ws, "embed")
    if embedded is not None:
        doc["embeddings"] = {k: embedded["summary"][k] for k in ("model", "weights_sha256", "dim", "images")}
    ws.write_json("dataset.json", storage.scrubbed(doc))
    return doc


def _counts_in_shards(stats: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, int]]]:
    """root (shards/augmented) -> split -> class -> rows."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for s in stats:
        root, split = s["shard"].split("/")[:2]
        by_class = out.setdefault(root, {}).setdefault(split, {})
        for name, n in s["histogram"].items():
            by_class[name] = by_class.get(name, 0) + n
    return out
