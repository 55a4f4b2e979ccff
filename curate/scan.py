"""Scan: list SRC, decode every file once, write `OUT/manifest/`.

Reads: the source tree (never for writing) and, on a rerun, the previous `OUT/manifest/`.
Writes: `OUT/manifest/part-NNNNN.parquet`, one row per file found (schema `MANIFEST`).
Unchanged files (same path, size and mtime) keep their previous row without a decode; files
that disappeared keep their row with status `removed`. When nothing changed at all, the
manifest is left as it is (so the stages that read it stay current). Partitions are fixed runs
of the sorted path list, so the same tree gives the same manifest whatever the number of workers.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from curate.config import Config
from curate.engine import dask_client, run_tasks
from curate.imaging.formats import sample_id
from curate.imaging.probe import fingerprint
from curate.imaging.sandbox import DecodeJob, DecodeSettings, decode_all
from curate.listing import SourceFile, list_source
from curate.schema import MANIFEST, Status
from curate.source import refuse_overlap
from curate.view import Block, Table, View
from curate.workspace import Workspace

log = logging.getLogger(__name__)

STAGING = "manifest.new"


@dataclass(frozen=True)
class ScanTask:
    """One partition: which files to decode, which to copy from the previous manifest."""

    src: str
    out: str
    index: int
    files: tuple[SourceFile, ...]
    reuse: frozenset[str]  # paths whose previous row is still valid
    removed: frozenset[str]  # paths gone from the source, kept as `removed`
    decode: DecodeSettings
    decoders: int = 1  # decoder processes for this partition (more when it runs alone, in-process)


@dataclass
class ScanSummary:
    files: int = 0
    ok: int = 0
    decoded: int = 0
    reused: int = 0
    removed: int = 0
    newly_removed: int = 0  # removed since the previous scan
    errors: dict[str, int] = field(default_factory=dict)
    classes: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0

    @property
    def changed(self) -> int:
        """Files decoded (new or changed) plus files removed since the previous scan."""
        return self.decoded + self.newly_removed

    @property
    def images_per_s(self) -> float:
        return self.decoded / self.elapsed_s if self.elapsed_s else 0.0

    def view(self, out: str) -> View:
        blocks: list[Block] = []
        if self.errors:
            blocks.append(Table.of("errors by code", ["error_code", "count"], self.errors.items()))
        blocks.append(Table.of("images by class", ["class", "count"], self.classes.items()))
        return View("scan", f"{self.files} files, {self.ok} images ok, {sum(self.errors.values())} errors, "
                            f"{self.removed} removed; decoded {self.decoded} (reused {self.reused}) in "
                            f"{self.elapsed_s:.1f}s = {self.images_per_s:.0f} images/s",
                    blocks, {"manifest": f"{out}/manifest/"})


def _new_row(f: SourceFile, size: int | None, facts: dict[str, Any]) -> dict[str, Any]:
    extension = f.path.rpartition(".")[2].lower() if "." in f.path.rpartition("/")[2] else ""
    row = {"path": f.path, "label": f.label, "split": f.split, "mtime": f.mtime, "extension": extension,
           "size_bytes": size if size is not None else f.size, **facts}
    row["sample_id"] = sample_id(f.path, row.get("bytes_hash"))
    return row


def scan_partition(task: ScanTask) -> dict[str, int]:
    """Decode one partition's files and write its manifest part. Returns small counts."""
    old = _previous_rows(task)
    to_decode = [f.path for f in task.files if f.path not in old and not f.error]
    decoded = dict(decode_all(DecodeJob(task.src, tuple(to_decode), task.decode), task.decoders))
    rows: list[dict[str, Any]] = []
    thumbs: list[bytes | None] = []
    for f in task.files:
        if f.path in old:
            row = dict(old[f.path])
            if f.path in task.removed:
                row["status"] = Status.REMOVED.value
            else:
                row.update(label=f.label, split=f.split)
            rows.append(row)
            thumbs.append(None)
            continue
        if f.error:
            facts, thumb, size = {"status": Status.ERROR.value, "error_code": f.error_code,
                                  "error_message": f.error}, None, None
        else:
            facts, thumb, size = decoded[f.path]
        rows.append(_new_row(f, size, facts))
        thumbs.append(thumb)
    fingerprint(rows, thumbs)
    table = pa.Table.from_pylist(rows, schema=MANIFEST)
    Workspace(task.out).write_table(f"{STAGING}/part-{task.index:05d}.parquet", table, MANIFEST)
    return {"decoded": len(to_decode), "reused": len(task.reuse)}


def _previous_rows(task: ScanTask) -> dict[str, dict[str, Any]]:
    wanted = task.reuse | task.removed
    if not wanted:
        return {}
    table = Workspace(task.out).read("manifest", MANIFEST, filter=pc.field("path").isin(sorted(wanted)))
    return {r["path"]: r for r in table.to_pylist()}


# Columns added to the manifest since some manifests were written: an ok row without them was
# scanned by an older curate, and its file is decoded again (as if it had changed).
ADDED_COLUMNS = ("edge_sharpness",)


def _previous_listing(ws: Workspace) -> dict[str, tuple[int, float, str, str | None, str | None]]:
    """path -> (size, mtime, status, label, split) of the previous manifest; the size of a row that
    lacks an `ADDED_COLUMNS` value is -1, so that its file counts as changed."""
    if not ws.exists("manifest"):
        return {}
    t = ws.read("manifest", MANIFEST, columns=["path", "size_bytes", "mtime", "status", "label", "split",
                                               *ADDED_COLUMNS])
    lacking = functools.reduce(pc.or_, (pc.is_null(t.column(c)) for c in ADDED_COLUMNS))
    old = pc.and_(pc.equal(t.column("status"), Status.OK.value), lacking)
    return {p: (-1 if outdated else size, mtime, status, label, split)
            for p, size, mtime, status, label, split, outdated in
            zip(*(t.column(c).to_pylist() for c in ["path", "size_bytes", "mtime", "status", "label", "split"]),
                old.to_pylist())}


def unchanged(files: list[SourceFile], previous: dict[str, tuple[int, float, str, str | None, str | None]]) -> bool:
    """Whether the listing is the one the previous manifest describes: the same files with the same
    size, mtime, label and split, and no file gone since (the manifest would be rewritten as it is)."""
    present = {f.path for f in files}
    if any(p not in present and st != Status.REMOVED.value for p, (_s, _m, st, _l, _sp) in previous.items()):
        return False
    return all(f.error is None and f.path in previous and previous[f.path][2] != Status.REMOVED.value
               and previous[f.path][:2] == (f.size, f.mtime) and previous[f.path][3:] == (f.label, f.split)
               for f in files)


def plan_tasks(src: str, out: str, cfg: Config, files: list[SourceFile],
               previous: dict[str, tuple[int, float, str, str | None, str | None]]) -> list[ScanTask]:
    """Split the sorted listing (plus removed paths) into fixed-size partitions."""
    present = {f.path for f in files}
    reuse = {f.path for f in files if f.path in previous and previous[f.path][:2] == (f.size, f.mtime)
             and previous[f.path][2] != Status.REMOVED.value and f.error is None}
    gone = [SourceFile(p, s, m) for p, (s, m, *_rest) in previous.items() if p not in present]
    everything = sorted(files + gone, key=lambda f: f.path)
    removed = {f.path for f in gone}
    size = cfg.engine.partition_size
    decode = DecodeSettings.of(cfg.scan, src)
    tasks = []
    for i in range(0, len(everything), size):
        chunk = tuple(everything[i:i + size])
        paths = {f.path for f in chunk}
        tasks.append(ScanTask(src, out, i // size, chunk, frozenset(paths & reuse), frozenset(paths & removed),
                              decode))
    return tasks


def _listing_key(tasks: list[ScanTask]) -> str:
    h = xxhash.xxh3_128()
    for t in tasks:
        for f in t.files:
            h.update(f"{f.path}\0{f.size}\0{f.mtime}\0{f.label}\0{f.split}\0{f.path in t.reuse}\n".encode())
    return h.hexdigest()


def scan(src: str, out: str, cfg: Config) -> ScanSummary:
    """Scan SRC into OUT/manifest/ (incrementally when a manifest exists). See module doc."""
    started = time.perf_counter()
    refuse_overlap(src, out)
    files = list_source(src, cfg.scan.labels, cfg.scan.follow_symlinks, cfg.scan.ignore)
    ws = Workspace(out)
    ws.claim()
    previous = _previous_listing(ws)
    if previous and not ws.exists(STAGING) and unchanged(files, previous):
        log.info("nothing changed in %s since the last scan: the manifest is kept as it is", src)
        summary = summarize(ws)
        summary.reused = len(files)
        summary.elapsed_s = time.perf_counter() - started
        return summary
    tasks = plan_tasks(src, out, cfg, files, previous)
    key = _listing_key(tasks)
    if not (ws.exists(STAGING, "_listing") and ws.fs.cat_file(ws.path(STAGING, "_listing")).decode() == key):
        ws.remove(STAGING)  # a staging folder from another listing cannot be resumed
        ws.write_bytes(f"{STAGING}/_listing", key.encode())
    ws.clean_temporaries(STAGING)
    todo = [t for t in tasks if not ws.exists(STAGING, f"part-{t.index:05d}.parquet")]
    if len(todo) == 1 and not (cfg.engine.scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS")):
        # one partition runs in-process: give it the machine's decoders instead of one
        todo = [dataclasses.replace(todo[0], decoders=cfg.engine.workers or os.cpu_count() or 1)]
    if len(todo) < len(tasks):
        log.info("resuming: %d of %d partitions already written", len(tasks) - len(todo), len(tasks))
    with dask_client(cfg.engine, len(todo), (src, out)) as client:
        counts = run_tasks(client, scan_partition, todo, label="scan", retries=cfg.engine.retries)
    ws.fs.rm(ws.path(STAGING, "_listing"))
    ws.swap_in(STAGING, "manifest")
    summary = summarize(ws)
    summary.decoded = sum(c["decoded"] for c in counts)
    summary.reused = sum(c["reused"] for c in counts)
    present = {f.path for f in files}
    summary.newly_removed = sum(1 for p, (_s, _m, st, *_rest) in previous.items()
                                if p not in present and st != Status.REMOVED.value)
    summary.elapsed_s = time.perf_counter() - started
    return summary


def summarize(ws: Workspace) -> ScanSummary:
    """Counts from OUT/manifest/: files, ok images, errors by code, images per class."""
    t = ws.read("manifest", MANIFEST, columns=["status", "error_code", "label"])
    status = t.column("status").to_pylist()
    codes = t.column("error_code").to_pylist()
    labels = t.column("label").to_pylist()
    return ScanSummary(
        files=sum(s != Status.REMOVED.value for s in status),
        ok=status.count(Status.OK.value),
        removed=status.count(Status.REMOVED.value),
        errors=dict(sorted(Counter(c for s, c in zip(status, codes) if s == Status.ERROR.value).items())),
        classes=dict(sorted(Counter(lab or "(unlabelled)" for s, lab in zip(status, labels)
                                    if s == Status.OK.value).items())),
    )
