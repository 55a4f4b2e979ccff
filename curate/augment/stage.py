"""Augment: materialise augmented variants of kept images once, in batches, with Kornia.

Reads: `OUT/plan/` and `OUT/manifest/` (the kept samples and their classes, via `kept_samples`),
and the source images from SRC. Writes: `OUT/augmented/<split>/shard-NNNNN.parquet` (the shard
schema: `image` bytes at size x size, label, `source_sample_id`, `augment_ops` = the ops with the
parameters each variant drew, `augment_seed`) with their `_stats/` sidecars (which carry each
shard's fingerprint, see `curate.augment.layout`), then rebuilds `OUT/index.parquet`.

A variant is written in its source's split, so it stays with its source's duplicate cluster
(rebalance puts a whole cluster in one split; `source_sample_id` leads to the cluster in the
plan) and can never leak across splits. Runs on `cuda` when a GPU is present, else on the CPU.
The same plan, config and seed give the same bytes on the same machine and device: parameters
are drawn per variant from its seed alone, on the CPU, so they are the same everywhere; pixels
can differ by one level between devices or CPU vector units, since float rounding in the
kernels depends on them and on the batch's shape. A shard's batches never span shards, so a
resumed run batches exactly as a fresh one. A source that no longer decodes is reported, not raised.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import fsspec
import pandas as pd
import torch

from curate.augment import images
from curate.augment.layout import ShardJob, plan_split
from curate.augment.ops import resolve_ops
from curate.augment.pipeline import Pipeline
from curate.augment.runner import Job, Loaded, Output, run_batches
from curate.augment.variants import check_classes, select
from curate.config import Config
from curate.errors import ConfigError
from curate.schema import SHARD, SPLITS
from curate.shards.index import build_index
from curate.shards.stage import hf_metadata, kept_samples, parse_size
from curate.shards.writer import is_complete, write_rows
from curate.workspace import Workspace

log = logging.getLogger(__name__)


@dataclass
class AugmentSummary:
    variants: dict[str, int] = field(default_factory=dict)  # class -> variants in OUT/augmented/
    per_split: dict[str, int] = field(default_factory=dict)  # split -> variants in OUT/augmented/
    shards: int = 0
    made: int = 0  # variants made this run; complete shards of an earlier run are kept
    failed: dict[str, str] = field(default_factory=dict)  # source path -> why it could not be used
    device: str = "cpu"
    batch_size: int = 0
    images_per_s: float = 0.0  # variants made per second of the batch loop
    elapsed_s: float = 0.0


def resolve_device(name: str) -> torch.device:
    """`auto` (cuda when present), `cpu`, `cuda` or `cuda:N`; ConfigError if that device is not there."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", name)
    if not match:
        raise ConfigError(f"augment.device={name!r} is not allowed; use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise ConfigError(f"augment.device={name!r}, but torch {torch.__version__} sees no CUDA device: "
                          "use --device cpu (or auto)")
    if int(match.group(1) or 0) >= torch.cuda.device_count():
        raise ConfigError(f"augment.device={name!r}: there are only {torch.cuda.device_count()} CUDA devices "
                          f"(cuda:0..cuda:{torch.cuda.device_count() - 1})")
    return torch.device(name)


def resolve(cfg: Config) -> None:
    """Fail before any work on a bad op, parameter, device, class choice or shard size."""
    resolve_ops(cfg.augment.ops, cfg.augment.size)
    resolve_device(cfg.augment.device)
    check_classes(cfg)
    parse_size(cfg.shard.shard_size)


def _loader(src: str, size: int, background: str) -> Any:
    fs, root = fsspec.core.url_to_fs(src)

    def load(path: str) -> Loaded:
        try:
            with fs.open(f"{root.rstrip('/')}/{path}", "rb") as f:
                return images.load(f.read(), size, background), None
        except Exception as exc:  # a source changed or gone since the scan is reported, never raised
            log.warning("augment: cannot use %s: %s: %s", path, type(exc).__name__, exc)
            return None, f"{type(exc).__name__}: {exc}"

    return load


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


def _make(out: str, src: str, todo: list[ShardJob], pipeline: Pipeline, cfg: Config,
          metadata: dict[bytes, bytes]) -> tuple[int, dict[str, str]]:
    """Make and write the variants of the shards in `todo`; return (variants made, failed sources)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    a = cfg.augment
    batches, owner = [], []  # batches never span two shards
    for s, job in enumerate(todo):
        for lo in range(0, len(job.variants), a.batch_size):
            part = job.variants.iloc[lo:lo + a.batch_size]
            batches.append([Job(p, seed) for p, seed in zip(part["path"], part["augment_seed"])])
            owner.append((s, lo))
    outputs: list[list[Output | None]] = [[None] * len(job.variants) for job in todo]
    remaining = [len(range(0, len(job.variants), a.batch_size)) for job in todo]
    made, failed = 0, {}
    load = _loader(src, a.size, cfg.scan.background)

    def encode(pixels: Any) -> bytes:
        return images.encode(pixels, a.format, a.quality)

    progress = Progress(TextColumn("augment"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        disable=not sys.stderr.isatty(), transient=True)
    writes: list[Future] = []
    with progress, ThreadPoolExecutor(1, "augment-write") as writer:
        bar = progress.add_task("augment", total=sum(len(j.variants) for j in todo))

        def write(s: int) -> None:
            job = todo[s]
            columns = _columns(job.variants, outputs[s], a.size, images.EXTENSIONS[a.format])
            writes.append(writer.submit(write_rows, out, job.rel, columns, job.row_group_size, metadata, job.layout))
            outputs[s] = []

        for s in range(len(todo)):
            if not remaining[s]:  # a shard with no variants (more shards than variants)
                write(s)
        threads = os.cpu_count() or 1
        for (s, lo), (results, errors) in zip(owner, run_batches(batches, pipeline, load, encode, threads)):
            outputs[s][lo:lo + len(results)] = results
            made += sum(r is not None for r in results)
            failed.update(errors)
            progress.advance(bar, len(results))
            remaining[s] -= 1
            if not remaining[s]:
                write(s)
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
    summary.elapsed_s = time.perf_counter() - started
    return summary


def _device_name(device: torch.device) -> str:
    return f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "cpu"


def _deterministic(device: torch.device) -> contextlib.AbstractContextManager:
    """On a GPU: cuDNN without autotuning and with deterministic kernels while the batches run."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    return torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=True, allow_tf32=False)


def render(summary: AugmentSummary, out: str) -> None:
    """Print the summary: variants per class and split, device, images/s."""
    from rich.table import Table

    from curate.console import console

    total = sum(summary.per_split.values())
    if not total:
        console.print("[bold]augment[/bold]: nothing to augment: the plan asks for no variants "
                      "(`rebalance --oversample augment`) and --copies is 0")
        return
    console.print(f"[bold]augment[/bold]: {total} variants in {summary.shards} shards; made {summary.made} this run "
                  f"on {summary.device}, batch {summary.batch_size}, {summary.images_per_s:.1f} images/s "
                  f"({summary.elapsed_s:.1f}s)")
    table = Table(title="variants per class", title_justify="left")
    table.add_column("class")
    table.add_column("variants", justify="right")
    for name, n in summary.variants.items():
        table.add_row(name, str(n))
    console.print(table)
    console.print("per split: " + ", ".join(f"{split} {n}" for split, n in summary.per_split.items()))
    for path, why in summary.failed.items():
        console.print(f"[yellow]skipped[/yellow] {path}: {why}")
    console.print(f"augmented: {out}/augmented/  index: {out}/index.parquet")
