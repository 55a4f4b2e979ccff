"""Shard: read the plan (kept rows, with copies) and write `OUT/shards/<split>/shard-NNNNN.parquet`,
then `OUT/index.parquet` and `OUT/dataset.json`.

Image bytes are copied unchanged unless normalisation is configured, and only the bytes the scan
saw: a sample whose file changed since the scan (its bytes hash to another sample id), that now
leads out of SRC through a link, or that is gone, is left out with its reason in its shard's stats
(so in index.parquet's metadata and the summary), and `curate verify` names it. Each shard's contents are
fingerprinted in its stats sidecar (`<split>/_stats/shard-N.json`, written last): a rerun, after
a kill or after the plan changed, writes only the shards that are missing or whose contents
changed, and removes shards beyond the new count.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from curate.by_part import write_by_part
from curate.config import Config, parse_size
from curate.engine import dask_client, run_tasks
from curate.schema import SPLITS, hf_metadata
from curate.shards.index import build_index, write_dataset_json
from curate.shards.layout import assign, interleave_order, row_group_size, shard_count
from curate.shards.normalize import Normalize
from curate.shards.writer import SAMPLES, ShardTask, is_complete, left_out_examples, remove_shards_from, write_shard
from curate.tables import kept_table
from curate.view import Block, View
from curate.workspace import Workspace

WORK = "shards.work"  # each split's samples by shard, which the shard tasks read
CLUSTER_MIN_BYTES = 256 * 2**20  # below this, writing in-process beats starting a local cluster
EXAMPLES = 20  # left-out samples a summary names (the shards' sidecars list them all)


@dataclass
class ShardSummary:
    shards: dict[str, int] = field(default_factory=dict)  # split -> shards
    samples: dict[str, int] = field(default_factory=dict)  # split -> rows
    bytes: int = 0
    written: int = 0
    max_class_deviation: float = 0.0  # largest |shard class share - split class share|
    left_out: dict[str, int] = field(default_factory=dict)  # reason -> samples left out of the shards
    left_out_examples: list[str] = field(default_factory=list)  # "path (reason)", the first EXAMPLES
    elapsed_s: float = 0.0

    def view(self, out: str) -> View:
        parts = ", ".join(f"{split}: {self.samples[split]} samples in {n} shards" for split, n in self.shards.items())
        lines: list[Block] = []
        if self.left_out:
            reasons = ", ".join(f"{n} {reason}" for reason, n in self.left_out.items())
            lines.append(f"left out of the shards ({reasons}; `curate verify {out}` names them all; rescan and "
                         f"reshard to include them): {'; '.join(self.left_out_examples)}")
        return View("shard", f"{parts or 'nothing to write'}; {self.bytes / 2**20:.1f} MiB, {self.written} shards "
                             f"written this run; largest class-share deviation of a shard "
                             f"{self.max_class_deviation:.3f} ({self.elapsed_s:.1f}s)", blocks=lines,
                    paths={"shards": f"{out}/shards/", "index": f"{out}/index.parquet",
                           "dataset": f"{out}/dataset.json"})


def resolve(cfg: Config) -> None:
    parse_size(cfg.shard.shard_size)


def _layout_key(samples: pa.Table, rg: int, norm: Normalize | None, classes: list[str]) -> str:
    h = xxhash.xxh3_128()
    h.update(f"{rg}/{norm}/{classes}\n".encode())
    for sample_id, copy_index, path in zip(*(samples[c].to_pylist() for c in ("sample_id", "copy_index", "path"))):
        h.update(f"{sample_id}/{copy_index}/{path}\n".encode())
    return h.hexdigest()


def plan_split_tasks(ws: Workspace, src: str, split: str, kept: pa.Table, rows: np.ndarray, cfg: Config,
                     classes: list[str]) -> list[ShardTask]:
    """Every shard of one split (`rows` of the kept samples), with the fingerprint of what it must
    hold; the samples go to `OUT/shards.work/<split>/` by shard, not into the tasks."""
    s = cfg.shard
    norm = Normalize(s.max_side, s.format, s.quality) if s.normalize else None
    part = kept.select(["sample_id", "copy_index", "label", "size_bytes"]).take(pa.array(rows)).to_pandas()
    sizes = part["size_bytes"].fillna(0).to_numpy()
    n = shard_count(int(sizes.sum()), len(part), parse_size(s.shard_size), s.min_shards)
    interleaved = interleave_order(part, cfg.rebalance.seed)
    shard_of = assign(part, n, cfg.rebalance.seed)[interleaved]
    del part
    by_shard = np.argsort(shard_of, kind="stable")  # each shard's samples in interleaved order
    order, shard_of = interleaved[by_shard], shard_of[by_shard]
    sizes = sizes[order]
    starts = np.searchsorted(shard_of, np.arange(n + 1))
    folder = f"shards/{split}"
    ws.clean_temporaries(folder)
    remove_shards_from(ws, folder, n)
    listed = f"{WORK}/{split}"
    table = kept.select(SAMPLES.names).take(pa.array(rows[order])).cast(SAMPLES)
    write_by_part(ws, listed, table, shard_of, n)
    meta = tuple(hf_metadata(classes).items())
    tasks = []
    for i in range(n):
        lo, hi = int(starts[i]), int(starts[i + 1])
        rg = row_group_size(float(sizes[lo:hi].mean()) if hi > lo else 1.0)
        tasks.append(ShardTask(src, ws.url, f"{folder}/shard-{i:05d}.parquet", listed, i, int(sizes[lo:hi].sum()),
                               rg, norm, meta, _layout_key(table.slice(lo, hi - lo), rg, norm, classes)))
    return tasks


def max_class_deviation(ws: Workspace, stats: list[dict[str, Any]]) -> float:
    """Largest difference between a shard's class share and its split's (0-1)."""
    worst = 0.0
    by_split: dict[str, list[dict[str, Any]]] = {}
    for st in stats:
        by_split.setdefault(st["shard"].split("/")[1], []).append(st)
    for shards in by_split.values():
        total: dict[str, int] = {}
        for st in shards:
            for c, n in st["histogram"].items():
                total[c] = total.get(c, 0) + n
        n_all = sum(total.values())
        for st in (x for x in shards if x["count"]):
            for c in total:
                worst = max(worst, abs(st["histogram"].get(c, 0) / st["count"] - total[c] / n_all))
    return worst


def shard(src: str, out: str, cfg: Config) -> ShardSummary:
    """Write the plan's images into Parquet shards, the index and dataset.json. See module doc."""
    started = time.perf_counter()
    resolve(cfg)
    ws = Workspace(out)
    kept, classes = kept_table(ws)
    tasks: list[ShardTask] = []
    for split in SPLITS:
        rows = np.flatnonzero(pc.fill_null(pc.equal(kept["split"], split), False).to_numpy(zero_copy_only=False))
        if len(rows):
            tasks.extend(plan_split_tasks(ws, src, split, kept, rows, cfg, classes))
        else:
            ws.remove(f"shards/{split}")
    del kept
    todo = [t for t in tasks if not is_complete(ws, t.rel, t.layout)]
    todo_bytes = sum(t.size_bytes for t in todo)
    with dask_client(cfg.engine, len(todo), (src, out), worth_a_cluster=todo_bytes > CLUSTER_MIN_BYTES) as client:
        run_tasks(client, write_shard, todo, label="shard", retries=cfg.engine.retries)
    ws.remove(WORK)
    stats = build_index(ws)
    write_dataset_json(ws, cfg, classes)
    summary = ShardSummary(written=len(todo), elapsed_s=time.perf_counter() - started)
    for st in stats:
        root, split = st["shard"].split("/")[:2]
        if root == "shards":
            summary.shards[split] = summary.shards.get(split, 0) + 1
            summary.samples[split] = summary.samples.get(split, 0) + st["count"]
            summary.bytes += st["bytes"]
            for reason, n in st.get("left_out_by_reason", {}).items():
                summary.left_out[reason] = summary.left_out.get(reason, 0) + n
    training = [s for s in stats if s["shard"].startswith("shards/")]
    summary.left_out_examples = left_out_examples(ws, training, EXAMPLES)
    summary.max_class_deviation = max_class_deviation(ws, training)
    return summary
