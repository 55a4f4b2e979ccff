"""Write one shard: read its samples' bytes from SRC, write Parquet atomically, then a sidecar
with its stats (count, bytes, sha256, class histogram). The sidecar marks the shard complete."""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import xxhash

from curate.by_part import read_part
from curate.schema import SHARD
from curate.shards.normalize import Normalize, normalize
from curate.source import Source, unusable_reason
from curate.workspace import Workspace

# The shard schema's fingerprint, kept in every sidecar: a shard written under another schema (an
# older curate's) is not complete for this one, so a rerun rewrites it rather than mixing the two.
SHARD_FORMAT = xxhash.xxh3_64_hexdigest(SHARD.to_string().encode())


# What a shard task reads of each of its samples, from the split's file of samples by shard.
SAMPLES = pa.schema([("sample_id", pa.string()), ("path", pa.string()), ("label", pa.int32()),
                     ("label_name", pa.string()), ("width", pa.int32()), ("height", pa.int32()),
                     ("copy_index", pa.int32())])


@dataclass(frozen=True)
class ShardTask:
    src: str
    out: str
    rel: str  # shard path relative to OUT
    samples: str  # the split's samples (SAMPLES) by shard under OUT (`curate.by_part`): this shard's are part `index`
    index: int
    size_bytes: int  # of its samples' files, as scanned
    row_group_size: int
    normalize: Normalize | None
    schema_metadata: tuple[tuple[bytes, bytes], ...]
    layout: str  # fingerprint of what this shard holds; a rerun rewrites it only when it changes


def sidecar(rel: str) -> str:
    """Where a shard's stats live: `<split>/_stats/shard-N.json` (readers skip `_` folders)."""
    head, _, name = rel.rpartition("/")
    return f"{head}/_stats/{name.rsplit('.', 1)[0]}.json"


def write_rows(out: str, rel: str, chunks: Iterable[dict[str, list]], row_group_size: int,
               schema_metadata: dict[bytes, bytes], layout: str = "",
               left_out: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Write `chunks` of rows (each a dict of the SHARD schema's columns, of any length) as the shard
    `rel` under OUT, atomically, a row group of `row_group_size` rows at a time as they come, then
    its stats sidecar (count, bytes, sha256, class histogram, layout and schema fingerprints, and the
    samples `left_out` of it with their reasons, read after the last chunk: a generator of chunks
    may add to it), which marks it complete."""
    schema = SHARD.with_metadata(schema_metadata)
    histogram: Counter[str] = Counter()

    def tables() -> Iterator[pa.Table]:
        for columns in _regrouped(chunks, row_group_size):
            histogram.update(columns["label_name"])
            yield pa.table(columns, schema=schema)

    ws = Workspace(out)
    digest = ws.write_table(rel, tables(), schema, row_group_size=row_group_size, uncompressed=["image.bytes"])
    stats = {"shard": rel, "count": histogram.total(), "bytes": ws.fs.size(ws.path(rel)), "sha256": digest,
             "histogram": dict(sorted(histogram.items())), "layout": layout, "format": SHARD_FORMAT}
    if left_out:
        stats["left_out"] = left_out
    ws.write_bytes(sidecar(rel), json.dumps(stats, sort_keys=True).encode())
    return stats


def _regrouped(chunks: Iterable[dict[str, list]], rows: int) -> Iterator[dict[str, list]]:
    """The rows of `chunks` again, in chunks of exactly `rows` rows but the last (so a shard's row
    groups do not depend on how its rows were handed over)."""
    pending: dict[str, list] = {}
    for columns in chunks:
        pending = {name: pending.get(name, []) + values for name, values in columns.items()} if pending else columns
        while len(pending["label"]) >= rows:
            yield {name: values[:rows] for name, values in pending.items()}
            pending = {name: values[rows:] for name, values in pending.items()}
    if pending and pending["label"]:
        yield pending


def counted(stats: dict[str, Any]) -> dict[str, Any]:
    """A shard's stats with the samples left out of it counted by reason: what travels and what
    the index keeps (a list that can be as long as the collection stays in the sidecar)."""
    left_out = stats.get("left_out")
    if not left_out:
        return stats
    return {k: v for k, v in stats.items() if k != "left_out"} | {
        "left_out_by_reason": dict(sorted(Counter(s["reason"] for s in left_out).items()))}


def left_out(ws: Workspace, stats: dict[str, Any]) -> list[dict[str, Any]]:
    """The samples left out of a shard (`counted` stats), from its sidecar; none when it is gone."""
    if not stats.get("left_out_by_reason") or not ws.exists(sidecar(stats["shard"])):
        return []
    return list(ws.read_json(sidecar(stats["shard"])).get("left_out", []))


def left_out_examples(ws: Workspace, stats: list[dict[str, Any]], limit: int) -> list[str]:
    """The first `limit` samples left out of the shards of `stats`, as "path (reason)"."""
    found: list[str] = []
    for st in stats:
        if len(found) < limit:
            found += [f"{s['path']} ({s['reason']})" for s in left_out(ws, st)]
    return found[:limit]


def write_shard(task: ShardTask) -> dict[str, Any]:
    """Read the task's samples from SRC, each exactly as the scan saw it, and write them as one shard,
    a row group at a time (a task holds one row group's bytes, not the shard's); return its stats
    (`counted`). A sample whose file changed since the scan, now leads out of SRC through a link, is
    gone or unreadable is left out, with its reason in the stats."""
    left_out: list[dict[str, Any]] = []
    return counted(write_rows(task.out, task.rel, _row_groups(task, left_out), task.row_group_size,
                              dict(task.schema_metadata), task.layout, left_out))


def _row_groups(task: ShardTask, left_out: list[dict[str, Any]]) -> Iterator[dict[str, list]]:
    """The task's samples read from SRC as SHARD columns, `task.row_group_size` rows at a time; the
    samples that cannot be read are added to `left_out` instead."""
    source = Source(task.src)
    columns: dict[str, list] = {name: [] for name in SHARD.names}
    for s in read_part(Workspace(task.out), task.samples, task.index).to_pylist():
        try:
            data = source.read_scanned(s["path"], s["sample_id"])
        except OSError as exc:
            left_out.append({"sample_id": s["sample_id"], "copy_index": s["copy_index"], "path": s["path"],
                             "reason": unusable_reason(exc)})
            continue
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
        if len(columns["label"]) == task.row_group_size:
            yield columns
            columns = {name: [] for name in SHARD.names}
    if columns["label"]:
        yield columns


def is_complete(ws: Workspace, rel: str, layout: str) -> bool:
    """Whether `rel` was written with this layout and this shard schema (its sidecar exists and matches),
    with nothing left out (a rerun tries the left-out samples again)."""
    if not ws.exists(sidecar(rel)):
        return False
    stats = ws.read_json(sidecar(rel))
    return stats.get("layout") == layout and stats.get("format") == SHARD_FORMAT and not stats.get("left_out")


def remove_shards_from(ws: Workspace, folder: str, first: int) -> None:
    """Delete shards numbered `first` and above (and their sidecars) from `folder`."""
    for p in ws.fs.glob(ws.path(folder, "shard-*.parquet")):
        name = p.rpartition("/")[2]
        if int(name[6:11]) >= first:
            rel = f"{folder}/{name}"
            ws.remove(sidecar(rel))
            ws.remove(rel)
