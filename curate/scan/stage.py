"""Scan: list SRC, decode every file once, write `OUT/manifest/`.

Reads: the source tree (never for writing) and, on a rerun, the previous `OUT/manifest/`.
Writes: `OUT/manifest/part-NNNNN.parquet`, one row per file found (schema `MANIFEST`), and
`OUT/manifest/_groups.json` (which parts hold which group of paths: `curate.scan.plan`).
Unchanged files (same path, size and mtime) keep their previous row without a decode; files
that disappeared keep their row with status `removed`. When nothing changed at all, the
manifest is left as it is (so the stages that read it stay current).

Three jobs, none of which holds the listing in the driver: the listing, written to
`OUT/scan.work/listing/` by listing tasks (`curate.scan.listed`); the plan, per group of paths,
joined with the previous manifest (`curate.scan.plan`); the decode, one task per manifest part,
reading its run of the plan (`scan_partition`). `OUT/scan.work/` is removed when the scan ends.
Decoding happens in sandboxed child processes, so on one machine the decode tasks run on the
driver's threads, each with its own decoder child (`curate.engine.local_threads`), and a local
cluster the plan started (more than one group of paths) is closed first; on the Dask cluster
with a scheduler configured or more workers than `LOCAL_THREADS_MAX`.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from curate.config import Config
from curate.engine import close_local_cluster, dask_client, local_threads, run_tasks, scheduler_address, shared_cluster
from curate.errors import CurateError
from curate.imaging.formats import sample_id
from curate.imaging.probe import fingerprint
from curate.imaging.sandbox import DecodeJob, DecodeSettings, decode_all
from curate.listing import SourceFile
from curate.scan.listed import WORK, list_source_into
from curate.scan.plan import LAYOUT, PLAN, PREVIOUS, Planned, group_file, plan
from curate.schema import MANIFEST, Status
from curate.source import Source, refuse_overlap
from curate.view import Block, Table, View
from curate.workspace import Workspace

log = logging.getLogger(__name__)

STAGING = "manifest.new"


@dataclass(frozen=True)
class ScanTask:
    """One manifest part: a run of one group's plan (its row group `run`), decoded and written."""

    src: str
    out: str
    index: int  # the manifest part's number
    group: int
    run: int
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
    """Decode one part's new and changed files, keep its other rows, and write the part. Returns
    small counts."""
    ws = Workspace(task.out)
    with ws.fs.open(ws.path(group_file(PLAN, task.group)), "rb") as f:
        planned = pq.ParquetFile(f).read_row_group(task.run).to_pylist()
    old = _previous_rows(ws, task, planned)
    to_decode = [p["path"] for p in planned if not (p["reuse"] or p["removed"] or p["error"])]
    decoded = dict(decode_all(DecodeJob(task.src, tuple(to_decode), task.decode), task.decoders))
    rows: list[dict[str, Any]] = []
    thumbs: list[bytes | None] = []
    for p in planned:
        if p["reuse"] or p["removed"]:
            row = dict(old[p["path"]])
            if p["removed"]:
                row["status"] = Status.REMOVED.value
            else:
                row.update(label=p["label"], split=p["split"])
            rows.append(row)
            thumbs.append(None)
            continue
        f = SourceFile(p["path"], p["size"], p["mtime"], p["label"], p["split"])
        if p["error"]:
            facts, thumb, size = {"status": Status.ERROR.value, "error_code": p["error_code"],
                                  "error_message": p["error"]}, None, None
        else:
            facts, thumb, size = decoded[f.path]
        rows.append(_new_row(f, size, facts))
        thumbs.append(thumb)
    fingerprint(rows, thumbs)
    table = pa.Table.from_pylist(rows, schema=MANIFEST)
    ws.write_table(f"{STAGING}/part-{task.index:05d}.parquet", table, MANIFEST)
    return {"decoded": len(to_decode), "reused": sum(p["reuse"] for p in planned)}


def _previous_rows(ws: Workspace, task: ScanTask, planned: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The previous manifest rows this part keeps, by path (read from the group's previous rows,
    only the row groups that can hold the part's paths)."""
    if not any(p["reuse"] or p["removed"] for p in planned):
        return {}
    import pyarrow.dataset as ds

    path = ds.field("path")
    previous = ds.dataset(ws.path(group_file(PREVIOUS, task.group)), schema=MANIFEST, format="parquet",
                          filesystem=ws.fs)
    table = previous.to_table(filter=(path >= planned[0]["path"]) & (path <= planned[-1]["path"]))
    return {r["path"]: r for r in table.to_pylist()}


def scan_tasks(src: str, out: str, cfg: Config, planned: Planned) -> list[ScanTask]:
    """One task per manifest part: the groups in order, each in runs of `partition_size` rows."""
    decode = DecodeSettings.of(cfg.scan, src)
    tasks: list[ScanTask] = []
    for g in planned.groups:
        first = len(tasks)
        tasks.extend(ScanTask(src, out, first + run, g.group, run, decode) for run in range(g.parts))
    return tasks


def scan(src: str, out: str, cfg: Config) -> ScanSummary:
    """Scan SRC into OUT/manifest/ (incrementally when a manifest exists). See module doc."""
    started = time.perf_counter()
    refuse_overlap(src, out)
    Source(src).check()
    ws = Workspace(out)
    ws.claim()
    ws.remove(WORK)
    try:
        with shared_cluster(cfg.engine):  # one cluster (if any) for the listing, the plan and the decode
            return _scan(src, out, cfg, ws, started)
    finally:
        ws.remove(WORK)


def _scan(src: str, out: str, cfg: Config, ws: Workspace, started: float) -> ScanSummary:
    listing = list_source_into(src, out, cfg)
    if not listing.files:
        raise CurateError(f"source {src} contains no files")
    planned = plan(out, cfg, listing.files)
    unmatched = sum(g.labels_unmatched for g in planned.groups)
    if unmatched:
        log.warning("%d paths in %s are not in the source", unmatched, cfg.scan.labels)
    if planned.unchanged and not ws.exists(STAGING):
        log.info("nothing changed in %s since the last scan: the manifest is kept as it is", src)
        summary = summarize(ws)
        summary.reused = listing.files
        summary.elapsed_s = time.perf_counter() - started
        return summary
    tasks = scan_tasks(src, out, cfg, planned)
    if not (ws.exists(STAGING, "_listing") and ws.fs.cat_file(ws.path(STAGING, "_listing")).decode() == planned.key):
        ws.remove(STAGING)  # a staging folder from another listing cannot be resumed
        ws.write_bytes(f"{STAGING}/_listing", planned.key.encode())
    ws.clean_temporaries(STAGING)
    todo = [t for t in tasks if not ws.exists(STAGING, f"part-{t.index:05d}.parquet")]
    if len(todo) == 1 and not scheduler_address(cfg.engine):
        # one partition runs in-process: give it the machine's decoders instead of one
        todo = [dataclasses.replace(todo[0], decoders=cfg.engine.workers or os.cpu_count() or 1)]
    if len(todo) < len(tasks):
        log.info("resuming: %d of %d partitions already written", len(tasks) - len(todo), len(tasks))
    threads = local_threads(cfg.engine) if tasks[0].decode.isolate else 0
    if threads:  # in-process: each thread's partition decodes in its own child
        close_local_cluster()  # the plan's, if it started one
        counts = run_tasks(None, scan_partition, todo, label="scan", retries=cfg.engine.retries, threads=threads)
    else:
        with dask_client(cfg.engine, len(todo), (src, out)) as client:
            counts = run_tasks(client, scan_partition, todo, label="scan", retries=cfg.engine.retries)
    ws.fs.rm(ws.path(STAGING, "_listing"))
    ws.write_json(f"{STAGING}/{LAYOUT}", {"bits": planned.bits, "parts": [g.parts for g in planned.groups]})
    ws.swap_in(STAGING, "manifest")
    summary = summarize(ws)
    summary.decoded = sum(c["decoded"] for c in counts)
    summary.reused = sum(c["reused"] for c in counts)
    summary.newly_removed = sum(g.newly_removed for g in planned.groups)
    summary.elapsed_s = time.perf_counter() - started
    return summary


def summarize(ws: Workspace) -> ScanSummary:
    """Counts from OUT/manifest/: files, ok images, errors by code, images per class (a part at a
    time, counted in Arrow: the driver's memory does not grow with the manifest)."""
    counts: Counter[tuple[str, str | None, str | None]] = Counter()
    for path in ws.parts("manifest"):
        with ws.fs.open(path, "rb") as f:
            part = pq.read_table(f, columns=["status", "error_code", "label"])
        for row in part.group_by(["status", "error_code", "label"]).aggregate([([], "count_all")]).to_pylist():
            counts[(row["status"], row["error_code"], row["label"])] += row["count_all"]
    by_status: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    classes: Counter[str] = Counter()
    for (status, code, label), n in counts.items():
        by_status[status] += n
        if status == Status.ERROR.value:
            errors[str(code)] += n
        elif status == Status.OK.value:
            classes[label or "(unlabelled)"] += n
    return ScanSummary(files=sum(by_status.values()) - by_status[Status.REMOVED.value], ok=by_status[Status.OK.value],
                       removed=by_status[Status.REMOVED.value], errors=dict(sorted(errors.items())),
                       classes=dict(sorted(classes.items())))
