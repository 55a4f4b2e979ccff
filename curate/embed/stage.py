"""Embed: read `OUT/manifest/` (the ok images), their source files and the previous
`OUT/embeddings/`; write `OUT/embeddings/` (schema `embeddings_schema`): one row per ok image with
its L2-normalised embedding (float16) and the model's id in the schema metadata.

One task per manifest part, on the run's Dask cluster on the CPU (each worker process loads the
model once and shares the cores with the others), in-process for one part or on a GPU. Each
image is decoded by the scan's isolated reduced-scale decode (`curate.imaging.sandbox`, in
child processes with time and memory limits) straight to the model's input square; decoding
runs ahead of the model, which takes batches of `embed.batch_size`. Incremental: an image
embedded by the same model (same weights) keeps its row; a different model recomputes all.
A file that no longer decodes gets a row with its error and no embedding.
"""
from __future__ import annotations

import functools
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate.config import Config
from curate.embed import models
from curate.engine import dask_client, run_tasks
from curate.imaging.sandbox import DecodeJob, DecodeSettings, decode_all
from curate.schema import MANIFEST, Status, embeddings_schema
from curate.view import Block, View
from curate.workspace import Workspace

log = logging.getLogger(__name__)

NAME = "embeddings"
STAGING = f"{NAME}.new"
ROW_GROUP = 32_768  # embeddings a row group holds: what a reader decodes at a time (80 MB at 1280 dimensions)


@dataclass(frozen=True)
class EmbedTask:
    src: str
    out: str
    part: str  # manifest part file name
    index: int
    model: models.Settings
    batch_size: int
    decoders: int
    decode: DecodeSettings


@dataclass
class EmbedSummary:
    model: str = ""
    weights_sha256: str = ""
    device: str = ""
    precision: str = ""
    runtime: str = ""
    dim: int = 0
    images: int = 0  # rows with an embedding
    embedded: int = 0  # embedded this run (the rest were kept from the previous run)
    failed: dict[str, str] = field(default_factory=dict)  # path -> why it has no embedding
    images_per_s: float = 0.0  # embedded this run per second of the stage
    elapsed_s: float = 0.0

    def view(self, out: str) -> View:
        blocks: list[Block] = [f"no embedding for {path}: {why}" for path, why in list(self.failed.items())[:10]]
        if len(self.failed) > 10:
            blocks.append(f"... and {len(self.failed) - 10} more (rows with an error in {out}/{NAME}/)")
        return View("embed", f"{self.images} images embedded with {self.model} ({self.dim} dimensions) on "
                             f"{self.device} ({self.precision}, {self.runtime}); {self.embedded} this run, "
                             f"{self.images_per_s:.1f} images/s ({self.elapsed_s:.1f}s)", blocks,
                    {"embeddings": f"{out}/{NAME}/"})


def resolve(cfg: Config) -> None:
    """Reject an unknown model, a missing model file, a bad device or a runtime that cannot run
    the model there, before any work."""
    e = cfg.embed
    models.check(e.model)
    if e.device not in ("auto", "cpu") and not e.device.startswith("cuda"):
        from curate.errors import ConfigError

        raise ConfigError(f"embed.device={e.device!r} is not allowed; use auto, cpu, cuda or cuda:N")
    device = models.resolve_device(e.device)
    models.resolve_runtime(e.runtime, e.model, device, models.resolve_precision(e.precision, device))


@functools.lru_cache(maxsize=2)
def _embedder(settings: models.Settings) -> models.Embedder:
    """The model, loaded once per process."""
    return models.load(settings)


def previous(ws: Workspace, model_id: str, sample_ids: list[str]) -> pa.Table | None:
    """The previous run's rows for `sample_ids`, if it used the same model; else None."""
    parts = [p for p in (ws.parts(NAME) if ws.exists(NAME) else [])]
    if not parts:
        return None
    with ws.fs.open(parts[0], "rb") as f:
        schema = pq.read_schema(f)
    if (schema.metadata or {}).get(b"model", b"").decode() != model_id:
        return None
    table = ws.read(NAME, schema, filter=pc.field("sample_id").isin(sample_ids))
    return table.filter(pc.is_valid(table["embedding"]))


@dataclass
class Batch:
    """Decoded images ready for the model, and the files that would not decode."""

    paths: list[str]
    pixels: np.ndarray | None  # uint8 (len(paths), size, size, 3)
    errors: dict[str, str]


def _batches(task: EmbedTask, paths: list[str], size: int) -> Iterator[Batch]:
    """Batches of `task.batch_size` decoded images, decoding ahead of the model."""
    job = DecodeJob(task.src, tuple(paths), task.decode, pixels=size)
    ready: list[tuple[str, bytes]] = []
    errors: dict[str, str] = {}
    for path, (facts, pixels, _size) in decode_all(job, task.decoders):
        if pixels is None:
            errors[path] = f"{facts.get('error_code')}: {facts.get('error_message')}"
        else:
            ready.append((path, pixels))
        if len(ready) == task.batch_size:
            yield _stack(ready, size, errors)
            ready, errors = [], {}
    if ready or errors:
        yield _stack(ready, size, errors)


def _stack(ready: list[tuple[str, bytes]], size: int, errors: dict[str, str]) -> Batch:
    if not ready:
        return Batch([], None, errors)
    pixels = np.empty((len(ready), size, size, 3), np.uint8)
    for i, (_path, data) in enumerate(ready):
        pixels[i] = np.frombuffer(data, np.uint8).reshape(size, size, 3)
    return Batch([path for path, _ in ready], pixels, errors)


def embed_partition(task: EmbedTask) -> dict[str, Any]:
    """Embed one manifest part's ok images (reusing the previous run's rows); write its part.
    The model is loaded only when there is something to embed."""
    ws = Workspace(task.out)
    with ws.fs.open(ws.path("manifest", task.part), "rb") as f:
        rows = pq.read_table(f, columns=["sample_id", "path", "status"], schema=MANIFEST)
    rows = rows.filter(pc.equal(rows["status"], Status.OK.value))
    ids, paths = rows["sample_id"].to_pylist(), rows["path"].to_pylist()
    model_id = models.identify(task.model.model)
    kept = previous(ws, model_id, ids)
    done = set(kept["sample_id"].to_pylist()) if kept is not None else set()
    todo = {p: s for s, p in zip(ids, paths) if s not in done}
    vectors: list[np.ndarray] = []
    embedded: list[str] = []
    failed: dict[str, str] = {}
    if todo:
        embedder = _embedder(task.model)
        for batch in _batches(task, list(todo), embedder.size):
            failed.update(batch.errors)
            if batch.pixels is not None:
                vectors.append(embedder(batch.pixels).astype(np.float16))
                embedded += [todo[p] for p in batch.paths]
        dim, sha = embedder.dim, embedder.weights_sha256
    else:
        dim, sha = (kept.schema.field("embedding").type.list_size if kept is not None else 0), ""
    schema = embeddings_schema(dim, model_id)
    matrix = np.concatenate(vectors) if vectors else np.zeros((0, dim), np.float16)
    new = pa.table({"sample_id": pa.array(embedded + [todo[p] for p in failed], pa.string()),
                    "embedding": pa.concat_arrays([
                        pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1), pa.float16()), dim),
                        pa.nulls(len(failed), schema.field("embedding").type)]),
                    "error": pa.array([None] * len(embedded) + list(failed.values()), pa.string())}, schema=schema)
    table = pa.concat_tables([kept.cast(schema), new]) if kept is not None else new
    ws.write_table(f"{STAGING}/part-{task.index:05d}.parquet", table, schema, row_group_size=ROW_GROUP)
    return {"model": model_id, "weights_sha256": sha, "dim": dim, "embedded": len(embedded),
            "images": len(embedded) + len(done), "failed": failed}


def embed(src: str, out: str, cfg: Config) -> EmbedSummary:
    """Embed OUT's ok images into OUT/embeddings/. See module doc."""
    started = time.perf_counter()
    resolve(cfg)
    e = cfg.embed
    device = models.resolve_device(e.device)
    ws = Workspace(out)
    parts = sorted(p.rpartition("/")[2] for p in ws.fs.glob(ws.path("manifest", "part-*.parquet")))
    on_gpu = device.startswith("cuda")
    processes = 1 if on_gpu or len(parts) == 1 else (cfg.engine.workers or os.cpu_count() or 1)
    cores = os.cpu_count() or 1
    threads = e.threads or max(1, cores // processes)
    precision = models.resolve_precision(e.precision, device)
    settings = models.Settings(e.model, device, e.size, 0 if on_gpu else threads, precision,
                               models.resolve_runtime(e.runtime, e.model, device, precision))
    decoders = cores if on_gpu else max(1, cores // processes)
    decode = DecodeSettings.of(cfg.scan, src)
    tasks = [EmbedTask(src, out, part, i, settings, e.batch_size, decoders, decode) for i, part in enumerate(parts)]
    ws.remove(STAGING)
    urls = (src, out)
    with dask_client(cfg.engine, 1 if on_gpu else len(tasks), urls) as client:
        results = run_tasks(client, embed_partition, tasks, label="embed", retries=cfg.engine.retries)
    ws.swap_in(STAGING, NAME)
    summary = EmbedSummary(device=device, precision=settings.precision, runtime=settings.runtime,
                           elapsed_s=time.perf_counter() - started)
    for r in results:
        summary.model, summary.dim = r["model"], r["dim"] or summary.dim
        summary.weights_sha256 = r["weights_sha256"] or summary.weights_sha256
        summary.embedded += r["embedded"]
        summary.images += r["images"]
        summary.failed.update(r["failed"])
    summary.images_per_s = summary.embedded / summary.elapsed_s if summary.elapsed_s else 0.0
    return summary
