"""Quarantine: list (and optionally copy, never move) the files validation excludes.

Reads `OUT/issues/` and the scan record; writes `DIR/quarantine.csv` (path, checks, reasons,
copied, not_copied_because) and, with `copy=True`, copies of the files under `DIR/files/<path>`.
Sources stay untouched.

A file that cannot be copied is a row, not a failure: `copied` says "no" and
`not_copied_because` why ("unreadable: Permission denied", "vanished: no longer in SRC",
"outside_source: ..." for a path that now leads out of SRC through a link, a path too long under
DIR), and a warning line names it; the other files are copied and the command succeeds.
Quarantine exists to set bad files aside, and a file that cannot be read is one of them: leaving
it where it is, recorded, is the expected outcome, so it does not make the command fail. A fault
of DIR itself (full, read-only, not a folder) stops the command with one line (exit 2): no copy
can be trusted then. Every file (the copies and the CSV) is written under a short temporary name
in its folder and renamed, so DIR never holds a partial file.
"""
from __future__ import annotations

import contextlib
import csv
import errno
import io
import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from curate import lineage
from curate.codes import ErrorCode
from curate.config import Config
from curate.errors import CurateError
from curate.schema import ISSUES
from curate.source import Source, refuse_overlap, unusable_reason
from curate.workspace import Workspace

log = logging.getLogger(__name__)

CHUNK = 1 << 20
COLUMNS = ["path", "checks", "reasons", "copied", "not_copied_because"]


class NotCopied(Exception):
    """Why one file was not copied; the text goes into its row."""


def excluded_issues(ws: Workspace, cfg: Config) -> dict[str, list[dict]]:
    """path -> its findings whose severity `validate.exclude` names, paths and checks in order."""
    issues = ws.read("issues", ISSUES)
    mask = pc.and_(pc.is_in(issues["severity"], pa.array(cfg.validate.exclude, pa.string())),
                   pc.is_valid(issues["path"]))
    rows = issues.filter(mask).sort_by([("path", "ascending"), ("check", "ascending")]).to_pylist()
    by_path: dict[str, list[dict]] = {}
    for r in rows:
        by_path.setdefault(r["path"], []).append(r)
    return by_path


@dataclass(frozen=True)
class Quarantined:
    """What `quarantine` did: files listed, and of them not copied (with `copy`)."""

    listed: int
    not_copied: int


def quarantine(out: str, to: str, cfg: Config, copy: bool = False) -> Quarantined:
    """Write the quarantine list for OUT into `to` (and, with `copy`, the copies). `to` may not
    overlap SRC (one line, exit 2, before anything is written). See the module doc for what a
    file that cannot be copied becomes."""
    ws = Workspace(out)
    refuse_overlap(lineage.recorded_source(ws), to, "--to")
    by_path = excluded_issues(ws, cfg)
    dest = Path(to)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _unwritable(dest, exc) from exc
    source = Source(lineage.source_of(ws)) if copy else None
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(COLUMNS)
    missed = 0
    for path, hits in by_path.items():
        why = _copy(source, path, dest / "files" / path) if source is not None else None
        if why:
            missed += 1
            log.warning("not copied: %r: %s", path, why)
        copied = "" if source is None else "no" if why else "yes"
        writer.writerow([path, ";".join(h["check"] for h in hits), "; ".join(h["message"] for h in hits), copied,
                         why or ""])
    try:
        _write(dest / "quarantine.csv", [buf.getvalue().encode()])
    except OSError as exc:
        raise _unwritable(dest / "quarantine.csv", exc) from exc
    if missed:
        log.warning("%d of %d listed files were not copied: quarantine.csv says why", missed, len(by_path))
    return Quarantined(len(by_path), missed)


def _copy(source: Source, rel: str, target: Path) -> str | None:
    """Copy SRC's `rel` to `target` (atomically); None when copied, else why not. A path too long
    under DIR is a reason too; any other fault of DIR is a CurateError."""
    try:
        with _open(source, rel) as reader:
            _write(target, _chunks(reader))
    except NotCopied as exc:
        return str(exc)
    except OSError as exc:  # the source's faults are NotCopied by now: this one is DIR's
        if exc.errno == errno.ENAMETOOLONG:
            return "its path is too long under the quarantine folder"
        raise _unwritable(target, exc) from exc
    return None


def _open(source: Source, rel: str) -> BinaryIO:
    """SRC's `rel`, open for reading; NotCopied when it is gone or cannot be opened."""
    try:
        source.refuse_outside(rel)
        return source.open(rel)
    except OSError as exc:
        raise _not_copied(exc) from exc


def _not_copied(exc: OSError) -> NotCopied:
    """Why SRC's file could not be copied: its reason (`curate.source.unusable_reason`) and detail."""
    reason = unusable_reason(exc)
    return NotCopied(f"{reason}: {'no longer in SRC' if reason == ErrorCode.VANISHED.value else exc.strerror or exc}")


def _chunks(reader: BinaryIO) -> Iterator[bytes]:
    """`reader`'s bytes, CHUNK at a time; a read error is NotCopied."""
    while True:
        try:
            chunk = reader.read(CHUNK)
        except OSError as exc:
            raise _not_copied(exc) from exc
        if not chunk:
            return
        yield chunk


def _write(target: Path, chunks: Iterable[bytes]) -> None:
    """Write `chunks` to `target` under a short temporary name in its folder (a 255-byte name leaves
    no room for a prefix), then rename it; nothing is left behind when a chunk or a write fails."""
    tmp = target.parent / f".tmp-{uuid.uuid4().hex[:12]}"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "xb") as f:
            for chunk in chunks:
                f.write(chunk)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


def _unwritable(target: Path, exc: OSError) -> CurateError:
    return CurateError(f"cannot write {target}: {exc.strerror or exc}")
