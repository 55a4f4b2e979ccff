"""Augment: materialise augmented variants of kept images once, in batches, with Kornia.

Reads: `OUT/plan/` and `OUT/manifest/` (the kept samples and their classes, via `kept_samples`),
and the source images from SRC. Writes: `OUT/augmented/<split>/shard-NNNNN.parquet` (the shard
schema: `image` bytes at size x size, label, `source_sample_id`, `augment_ops` = the ops with the
parameters each variant drew, `augment_seed`) with their `_stats/` sidecars (which carry each
shard's fingerprint, see `curate.augment.layout`), then rebuilds `OUT/index.parquet`.

A variant is written in its source's split, so it stays with its source's duplicate cluster
(rebalance puts a whole cluster in one split; `source_sample_id` leads to the cluster in the
plan) and can never leak across splits. A source that no longer decodes is reported, not raised.

Work: worker processes (`engine.workers`, else one per core but one) decode sources and draw
parameters, the device (`cuda` when a GPU is present, else the CPU) transforms batches of
`augment.batch_size`, threads encode (`curate.augment.runner`), and one thread writes each shard a
row group at a time as its batches come (`curate.shards.writer.write_rows`), so a shard's variants
are never all in memory.

Determinism: each variant's parameters are drawn from its own seed alone, on the CPU, so they
are the same on every machine and device. Pixels come from the device's float32 kernels: the
same plan, config and seed give byte-identical shards on the same machine and device, while a
CPU and a GPU differ by a few levels in some pixels. The batch size and device kind are part of
each shard's fingerprint, and a batch never spans two shards, so a resumed run batches exactly
as a fresh one.
"""
from __future__ import annotations

import contextlib
import logging
import os
import queue
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import pandas as pd
import torch
from PIL import Image

from curate import progress
from curate.augment.layout import ShardJob, plan_split
from curate.augment.ops import resolve_ops
from curate.augment.pipeline import Pipeline
from curate.augment.runner import Job, Loaded, Output, run_batches
from curate.augment.settings import device_index, resolve
from curate.augment.summary import AugmentSummary
from curate.augment.variants import select
from curate.config import Config
from curate.errors import ConfigError
from curate.imaging import formats
from curate.imaging.pixels import square_rgb
from curate.schema import SHARD, SPLITS, hf_metadata
from curate.shards.index import build_index, write_dataset_json
from curate.shards.writer import is_complete, write_rows
from curate.source import Source
from curate.tables import kept_samples
from curate.workspace import Workspace

__all__ = ["AugmentSummary", "augment", "resolve", "resolve_device"]

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """`auto` (cuda when present), `cpu`, `cuda` or `cuda:N`; ConfigError if that device is not there."""
    index = device_index(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if index is None:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError(f"augment.device={name!r}, but torch {torch.__version__} sees no CUDA device: "
                          "use --device cpu (or auto)")
    if index >= torch.cuda.device_count():
        raise ConfigError(f"augment.device={name!r}: there are only {torch.cuda.device_count()} CUDA devices "
                          f"(cuda:0..cuda:{torch.cuda.device_count() - 1})")
    return torch.device(name)


@dataclass(frozen=True)
class SourceReader:
    """Reads a source image from SRC exactly as the scan saw it (`Source.read_scanned`: `scanned` maps
    its path to its sample id) and brings it to size x size (picklable, for worker processes)."""

    src: str
    size: int
    background: str
    scanned: dict[str, str]

    def __call__(self, path: str) -> Loaded:
        try:
            data = Source(self.src).read_scanned(path, self.scanned[path])
            return square_rgb(data, self.size, self.background), None
        except Exception as exc:  # noqa: BLE001  (a source changed or gone since the scan is reported, never raised)
            log.warning("augment: cannot use %s: %s: %s", path, type(exc).__name__, exc)
            return None, f"{type(exc).__name__}: {exc}"


def _workers(cfg: Config, src: str) -> int:
    """Worker processes that prepare batches: engine.workers, else one per core but one; none for memory://."""
    if src.startswith("memory://"):
        return 0
    return cfg.engine.workers or max(1, (os.cpu_count() or 2) - 1)


def _columns(variants: pd.DataFrame, outputs: list[Output | None], size: int, ext: str) -> dict[str, list]:
    """The SHARD columns of the variants that were made."""
    columns: dict[str, list] = {name: [] for name in SHARD.names}
    for row, out in zip(variants.itertuples(index=False), outputs):
        if out is None:
            continue
        name = f"augmented/{PurePosixPath(row.path).with_suffix('')}-aug{row.copy_index}.{ext}"
        columns["image"].append({"bytes": out.data, "path": name})
        columns["label"].append(row.label)
        columns["label_name"].append(row.label_name)
        columns["sample_id"].append(row.sample_id)
        columns["source_path"].append(row.path)
        columns["width"].append(size)
        columns["height"].append(size)
        columns["copy_index"].append(row.copy_index)
        columns["source_sample_id"].append(row.source_sample_id)
        columns["augment_ops"].append(out.ops)
        columns["augment_seed"].append(row.augment_seed)
    return columns


def _batches(todo: list[ShardJob], size: int) -> tuple[list[list[Job]], list[tuple[int, int]]]:
    """The batches of every shard in `todo`, and for each its (shard, first row). A batch never spans
    two shards, so a shard's bytes do not depend on which other shards a run makes."""
    batches, owner = [], []
    for s, job in enumerate(todo):
        for lo in range(0, len(job.variants), size):
            part = job.variants.iloc[lo:lo + size]
            batches.append([Job(p, seed) for p, seed in zip(part["path"], part["augment_seed"])])
            owner.append((s, lo))
    return batches, owner


_END, _ABANDON = object(), object()  # put on a shard's rows: its last batch came; the run stopped


class _Abandoned(Exception):
    """A shard's writer stops: the run stopped before its last batch (the run's own error is raised)."""


def _taken(rows: queue.SimpleQueue[Any]) -> Iterator[dict[str, list]]:
    """The chunks of SHARD columns put on `rows`, until _END; _ABANDON raises _Abandoned."""
    while (chunk := rows.get()) is not _END:
        if chunk is _ABANDON:
            raise _Abandoned
        yield chunk


def _make(out: str, src: str, todo: list[ShardJob], pipeline: Pipeline, cfg: Config,
          metadata: dict[bytes, bytes]) -> tuple[int, dict[str, str]]:
    """Make and write the variants of the shards in `todo`; return (variants made, failed sources)."""
    a = cfg.augment
    batches, owner = _batches(todo, a.batch_size)
    remaining = [sum(o[0] == s for o in owner) for s in range(len(todo))]  # batches still to come, per shard
    made, failed = 0, {}
    scanned = {path: sid for job in todo for path, sid in zip(job.variants["path"], job.variants["source_sample_id"])}
    load = SourceReader(src, a.size, cfg.scan.background, scanned)
    ext = formats.suffix(a.format)

    def encode(pixels: Any) -> bytes:
        return formats.encode(Image.fromarray(pixels, "RGB"), a.format, a.quality)

    writes: list[Future] = []
    open_shards: dict[int, queue.SimpleQueue[Any]] = {}  # shard -> the rows its writer takes as its batches come
    total = sum(len(j.variants) for j in todo)
    with progress.task("augment", total) as advance, ThreadPoolExecutor(1, "augment-write") as writer:

        def begin(s: int) -> None:
            job = todo[s]
            rows: queue.SimpleQueue[Any] = queue.SimpleQueue()
            open_shards[s] = rows
            writes.append(writer.submit(write_rows, out, job.rel, _taken(rows), job.row_group_size, metadata,
                                        job.layout))

        for s in range(len(todo)):
            if not remaining[s]:  # a shard with no variants (more shards than variants)
                begin(s)
                open_shards.pop(s).put(_END)
        stream = run_batches(batches, pipeline, load, encode, _workers(cfg, src), os.cpu_count() or 1)
        try:
            for (s, lo), (results, errors) in zip(owner, stream):
                if s not in open_shards:
                    begin(s)
                open_shards[s].put(_columns(todo[s].variants.iloc[lo:lo + len(results)], results, a.size, ext))
                made += sum(r is not None for r in results)
                failed.update(errors)
                advance(len(results))
                remaining[s] -= 1
                if not remaining[s]:
                    open_shards.pop(s).put(_END)
        except BaseException:
            for rows in open_shards.values():  # their writers stop and leave no file
                rows.put(_ABANDON)
            raise
        for f in writes:
            f.result()
    return made, failed


def augment(src: str, out: str, cfg: Config) -> AugmentSummary:
    """Make the variants that the plan (or augment.copies) asks for. See module doc."""
    started = time.perf_counter()
    resolve(cfg)
    a = cfg.augment
    device = resolve_device(a.device)
    ws = Workspace(out)
    samples, classes = kept_samples(ws)
    sources = select(samples, classes, cfg)
    jobs: list[ShardJob] = []
    for split in SPLITS:
        part = sources[sources["split"] == split]
        if part.empty:
            ws.remove(f"augmented/{split}")
        else:
            jobs.extend(plan_split(ws, split, part, cfg, device.type, classes))
    todo = [j for j in jobs if not is_complete(ws, j.rel, j.layout)]
    log.info("augment: %d variants in %d shards to make on %s", sum(len(j.variants) for j in todo), len(todo),
             device)
    pipeline = Pipeline(resolve_ops(a.ops, a.size), a.size, device)
    loop_started = time.perf_counter()
    with _deterministic(device):
        made, failed = _make(out, src, todo, pipeline, cfg, hf_metadata(classes))
    loop_s = time.perf_counter() - loop_started
    summary = AugmentSummary(made=made, failed=failed, device=_device_name(device), batch_size=a.batch_size,
                             images_per_s=made / loop_s if made else 0.0)
    for st in build_index(ws):
        root, split = st["shard"].split("/")[:2]
        if root == "augmented":
            summary.shards += 1
            summary.per_split[split] = summary.per_split.get(split, 0) + st["count"]
            for name, n in st["histogram"].items():
                summary.variants[name] = summary.variants.get(name, 0) + n
    summary.variants = dict(sorted(summary.variants.items()))
    write_dataset_json(ws, cfg, classes)
    summary.elapsed_s = time.perf_counter() - started
    return summary


def _device_name(device: torch.device) -> str:
    return f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "cpu"


def _deterministic(device: torch.device) -> contextlib.AbstractContextManager:
    """On a GPU: cuDNN without autotuning and with deterministic kernels while the batches run."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    return torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=True, allow_tf32=False)
