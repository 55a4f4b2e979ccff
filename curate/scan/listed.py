"""The scan's listing of SRC, made by listing tasks and written to OUT, never held whole by the driver.

Reads the source tree (`curate.listing.list_some`). Writes `OUT/scan.work/listing/part-*.parquet`
(schema `SCAN_LISTING`, each part sorted by `key`, the path's xxh3-64: `curate.scan.plan` reads a
group of keys from every part). The listing goes in rounds: the first lists in the driver's
process up to `FIRST_BUDGET` files (a small collection is listed whole there, without a cluster);
what is left (folders not entered, S3 key ranges not listed) is shared out to listing tasks, each
listing up to `TASK_BUDGET` files and handing back what it did not reach, until nothing is left.
On one machine the tasks run on the driver's threads (they wait on the disk or the object store:
`curate.engine.local_threads`), with a scheduler on its Dask workers.
The driver holds only the work left (folders, key ranges) and counts, not the files.
"""
from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import xxhash

from curate.config import Config
from curate.engine import dask_client, local_threads, run_tasks
from curate.listing import Pending, SourceFile, ignored, list_some
from curate.schema import SCAN_LISTING
from curate.source import Source
from curate.workspace import Workspace

WORK = "scan.work"
LISTING = f"{WORK}/listing"
FIRST_BUDGET = 20_000  # files listed in the driver's process before the rest goes to tasks
TASK_BUDGET = 200_000  # files a listing task lists before it hands back the rest
CHUNK_ROWS = 100_000  # rows per listing part (a task writes one part per chunk)
ROW_GROUP = 8192  # rows per row group: a group's keys are read from each part without the rest
TASKS_PER_ROUND = 256  # the most listing tasks a round shares the work left out to


def path_key(path: str) -> int:
    """The path's 64-bit key (xxh3): its group in the scan's plan, and its place in a listing part."""
    return xxhash.xxh3_64_intdigest(path.encode())


@dataclass(frozen=True)
class ListTask:
    """One listing task: pieces of SRC to list, and where to write what it finds."""

    src: str
    out: str
    name: str  # its parts are `LISTING/part-<name>-<n>.parquet`
    todo: tuple[Pending, ...]
    budget: int | None
    follow_symlinks: bool
    ignore: tuple[str, ...]

    @property
    def part(self) -> str:
        """Its name in messages."""
        return f"listing task {self.name}"


@dataclass(frozen=True)
class Listed:
    """What a listing task did: files written (in how many parts) and the work it left."""

    files: int
    parts: int
    left: tuple[Pending, ...]


class _PartWriter:
    """Collects listed files and writes them, sorted by key, a chunk at a time."""

    def __init__(self, task: ListTask) -> None:
        self.task = task
        self.ws = Workspace(task.out)
        self.rows: list[SourceFile] = []
        self.parts = self.files = 0

    def add(self, f: SourceFile) -> None:
        if ignored(f.path, self.task.ignore):
            return
        self.rows.append(f)
        if len(self.rows) >= CHUNK_ROWS:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        keyed = sorted(((path_key(f.path), f) for f in self.rows), key=lambda kf: kf[0])
        table = pa.table({"key": pa.array([k for k, _ in keyed], pa.uint64()),
                          "path": [f.path for _, f in keyed], "size": [f.size for _, f in keyed],
                          "mtime": [f.mtime for _, f in keyed], "error": [f.error for _, f in keyed],
                          "error_code": [f.error_code if f.error else None for _, f in keyed]})
        self.ws.write_table(f"{LISTING}/part-{self.task.name}-{self.parts:04d}.parquet", table, SCAN_LISTING,
                            row_group_size=ROW_GROUP)
        self.files += len(self.rows)
        self.parts += 1
        self.rows = []


def list_part(task: ListTask) -> Listed:
    """List `task.todo` up to its budget into listing parts; return the counts and the work left."""
    writer = _PartWriter(task)
    left = list_some(Source(task.src), task.todo, task.budget, task.follow_symlinks, writer.add)
    writer.flush()
    return Listed(writer.files, writer.parts, tuple(left))


@dataclass
class Listing:
    """The whole listing in OUT: how many files, in how many parts, after how many rounds."""

    files: int = 0
    parts: int = 0
    rounds: int = 0


def list_source_into(src: str, out: str, cfg: Config) -> Listing:
    """List SRC into `OUT/scan.work/listing/` (see module doc). With `[scan] follow_symlinks`, one
    process lists the whole tree: a folder reached by several links is entered once only if one
    walker sees every folder."""
    s = cfg.scan
    first = ListTask(src, out, "r000-00000", (Pending(""),), None if s.follow_symlinks else FIRST_BUDGET,
                     s.follow_symlinks, tuple(s.ignore))
    done = list_part(first)
    listing = Listing(done.files, done.parts, 1)
    left = list(done.left)
    if not left:
        return listing
    threads = local_threads(cfg.engine)
    with contextlib.nullcontext() if threads else dask_client(cfg.engine, TASKS_PER_ROUND, (src, out)) as client:
        while left:
            tasks = _share_out(first, left, listing.rounds)
            results: list[Any] = run_tasks(client, list_part, tasks, label=f"list (round {listing.rounds + 1})",
                                           retries=cfg.engine.retries, threads=threads)
            listing.rounds += 1
            listing.files += sum(r.files for r in results)
            listing.parts += sum(r.parts for r in results)
            left = [p for r in results for p in r.left]
    return listing


def _share_out(first: ListTask, left: list[Pending], round_: int) -> list[ListTask]:
    """The work left, dealt round-robin to at most `TASKS_PER_ROUND` listing tasks."""
    n = min(len(left), TASKS_PER_ROUND)
    return [dataclasses.replace(first, name=f"r{round_:03d}-{i:05d}", todo=tuple(left[i::n]), budget=TASK_BUDGET)
            for i in range(n)]
