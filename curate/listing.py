"""Listing SRC: its files a piece at a time (`list_some`: a local folder tree, S3 key ranges, any
other fsspec store's folders), the labels its folder layout gives, and the labels file.

Reads the source tree (through `curate.source.Source`) and the labels file; writes nothing (the
scan writes what it lists: `curate.scan.listed`).
"""
from __future__ import annotations

import fnmatch
import os
import posixpath
import stat
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Callable, Iterator, Sequence

import fsspec
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from curate.errors import CurateError
from curate.schema import SPLITS, ErrorCode
from curate.source import Source, within


@dataclass(frozen=True)
class SourceFile:
    """One file found under SRC: path relative to SRC (POSIX), stat facts, label and split."""

    path: str
    size: int
    mtime: float
    label: str | None = None
    split: str | None = None
    error: str | None = None  # why it could not even be listed (e.g. permission denied)
    error_code: str = ErrorCode.UNREADABLE.value  # the manifest's error code when `error` is set


@dataclass(frozen=True)
class Pending:
    """A piece of SRC still to list: a folder (relative to SRC, POSIX; "" is SRC itself) and, on
    S3, the range of its names to list (from `start`, inclusive, to `before`, exclusive), so that
    a flat prefix of millions of keys is split into ranges listed in parallel."""

    folder: str
    start: str | None = None
    before: str | None = None


def list_some(source: Source, todo: Sequence[Pending], budget: int | None, follow_symlinks: bool,
              emit: Callable[[SourceFile], None]) -> list[Pending]:
    """List the files of `todo` (recursively), calling `emit` for each, until `budget` files were
    emitted (None: no limit); returns the work left (folders not entered, key ranges not listed).
    A local folder is always read whole (a directory cannot be listed from the middle)."""
    local = source.local_root
    if local is not None:
        return _walk_local(local, [p.folder for p in todo], follow_symlinks, budget, emit)
    if _is_s3(source.fs):
        return _list_s3(source, list(todo), budget, emit)
    return _walk_fsspec(source, [p.folder for p in todo], budget, emit)


def _walk_local(root: str, folders: list[str], follow_symlinks: bool, budget: int | None,
                emit: Callable[[SourceFile], None]) -> list[Pending]:
    """Files under the local `folders` of `root`. Symbolic links (to files or folders, inside or
    outside the tree) are skipped unless `follow_symlinks`; followed, a link whose target is outside
    the root becomes an entry with the error `outside_source` (SRC's bytes only ever come from
    SRC); a folder is entered once however many links reach it in one call (so link loops end: the
    scan lists a tree it follows links in with one call); a folder or file that cannot be read, or
    whose name is not UTF-8, becomes an entry with an error (`unreadable`, the name's bytes
    escaped)."""
    real_root = os.path.realpath(root)
    seen_dirs: set[str] = {os.path.realpath(os.path.join(root, f)) for f in folders}
    stack = [os.path.join(root, f) if f else root for f in reversed(folders)]
    emitted = 0
    while stack:
        if budget is not None and emitted >= budget:
            return [Pending(os.path.relpath(f, root).replace(os.sep, "/")) for f in reversed(stack)]
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            rel = os.path.relpath(folder, root).replace(os.sep, "/")
            emit(SourceFile(rel, 0, 0.0, error=f"{type(exc).__name__}: {exc.strerror or exc}"))
            emitted += 1
            continue
        for entry in entries:
            found = _local_entry(root, real_root, entry, follow_symlinks)
            if isinstance(found, SourceFile):
                emit(found)
                emitted += 1
            elif found is not None:
                key = os.path.realpath(found)
                if key not in seen_dirs:
                    seen_dirs.add(key)
                    stack.append(found)
    return []


def _local_entry(root: str, real_root: str, entry: os.DirEntry[str], follow_symlinks: bool
                 ) -> SourceFile | str | None:
    """One directory entry: a file (or an entry with an error) as a SourceFile, a folder to enter
    as its path, or None (a link not followed, anything but a file or folder)."""
    rel = os.path.relpath(entry.path, root).replace(os.sep, "/")
    if not _is_utf8(rel):
        return SourceFile(rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"),
                          0, 0.0, error="its name is not UTF-8: rename it to read it")
    try:
        if entry.is_symlink():
            if not follow_symlinks:
                return None
            target = os.path.realpath(entry.path)
            if not within(target, real_root):
                return SourceFile(rel, 0, 0.0, error=f"a symbolic link to {target}, outside the source",
                                  error_code=ErrorCode.OUTSIDE_SOURCE.value)
        st = entry.stat(follow_symlinks=True)
    except OSError as exc:
        return SourceFile(rel, 0, 0.0, error=f"{type(exc).__name__}: {exc.strerror or exc}")
    if stat.S_ISDIR(st.st_mode):
        return entry.path
    if stat.S_ISREG(st.st_mode):
        return SourceFile(rel, st.st_size, st.st_mtime)
    return None


def _is_utf8(name: str) -> bool:
    """Whether a name from the file system decodes as UTF-8 (else Python carries its bytes as
    surrogate escapes, which no Parquet string or manifest path can hold)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _seconds(info: dict[str, Any]) -> float:
    mtime = info.get("mtime") or info.get("LastModified") or info.get("created") or 0.0
    return mtime.timestamp() if hasattr(mtime, "timestamp") else float(mtime)


def _walk_fsspec(source: Source, folders: list[str], budget: int | None,
                 emit: Callable[[SourceFile], None]) -> list[Pending]:
    """Files under `folders` of a store that is neither local nor S3, one `ls` per folder."""
    fs, root = source.fs, source.root
    stack = list(reversed(folders))
    emitted = 0
    while stack:
        if budget is not None and emitted >= budget:
            return [Pending(f) for f in reversed(stack)]
        folder = stack.pop()
        for info in fs.ls(f"{root}/{folder}" if folder else root, detail=True):
            rel = posixpath.relpath(info["name"], root)
            if info.get("type") == "directory":
                stack.append(rel)
            elif info.get("type") == "file":
                emit(SourceFile(rel, int(info.get("size") or 0), _seconds(info)))
                emitted += 1
    return []


def _is_s3(fs: fsspec.AbstractFileSystem) -> bool:
    return "s3" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


# Characters a range of S3 keys is split at (a split only has to cover the keys in order, so a key
# with other characters still falls in exactly one range; these make the ranges even for the
# names collections have). No "/": a range never splits a sub-folder, which is listed on its own.
SPLIT_AT = "-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
SPLIT_DEPTH = 3  # positions of the key split at (the last ones where the listed keys vary)
PAGE_KEYS = 1000  # the most S3 returns per request


def _list_s3(source: Source, todo: list[Pending], budget: int | None,
             emit: Callable[[SourceFile], None]) -> list[Pending]:
    """Keys under the folders (name ranges) of `todo`, one ListObjectsV2 page after another with
    "/" as delimiter: a sub-folder becomes work of its own; when `budget` keys were emitted, the
    rest of the range being listed is split where the listed names vary (`split_range`) and
    returned with the work not started."""
    fs = source.fs
    bucket, root, _ = fs.split_path(source.root)
    left: list[Pending] = []
    emitted = 0
    for n, piece in enumerate(todo):
        if budget is not None and emitted >= budget:
            return left + todo[n:]
        prefix = "/".join(p for p in (root, piece.folder) if p)
        prefix = prefix + "/" if prefix else ""
        first = last = None
        token: str | None = None
        while True:
            args: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "Delimiter": "/", "MaxKeys": PAGE_KEYS}
            if token:
                args["ContinuationToken"] = token
            elif piece.start:
                args["StartAfter"] = prefix + _just_before(piece.start)
            page = fs.call_s3("list_objects_v2", **args)
            entries = sorted([(c["Prefix"][len(prefix):], None) for c in page.get("CommonPrefixes", [])]
                             + [(o["Key"][len(prefix):], o) for o in page.get("Contents", [])], key=lambda e: e[0])
            more = bool(page.get("IsTruncated"))
            for name, obj in entries:
                if piece.start is not None and name < piece.start:
                    continue
                if piece.before is not None and name >= piece.before:
                    more = False
                    break
                first, last = first if first is not None else name, name
                if obj is None:
                    left.append(Pending(posixpath.join(piece.folder, name.rstrip("/"))))
                elif name and not name.endswith("/"):
                    emit(SourceFile(posixpath.join(piece.folder, name), int(obj.get("Size") or 0), _seconds(obj)))
                    emitted += 1
            if not more:
                break
            if budget is not None and emitted >= budget and first is not None and last is not None:
                left.extend(Pending(piece.folder, a, b) for a, b in split_range(first, last, piece.before))
                break
            token = page.get("NextContinuationToken")
    return left


def _just_before(name: str) -> str:
    """A StartAfter for listing from `name` on: `name` itself is after it (a name that sorts
    between them would end in U+10FFFF; the range's `start` filter drops it)."""
    if name.endswith("\0"):
        return name[:-1]
    return name[:-1] + chr(ord(name[-1]) - 1) + "\U0010ffff"


def split_range(first: str, last: str, before: str | None) -> list[tuple[str, str | None]]:
    """The names after `last` (and before `before`) as consecutive ranges [start, before), split at
    the characters of the `SPLIT_DEPTH` positions where the names listed so far (`first` to `last`)
    begin to differ: the names still to list most likely vary there too."""
    vary = len(posixpath.commonprefix([first, last]))
    bounds: set[str] = set()
    for at in range(min(vary, len(last) - 1), max(vary - SPLIT_DEPTH, 0) - 1, -1):
        bounds.update(last[:at] + c for c in SPLIT_AT if c > last[at])
    inner = sorted(b for b in bounds if before is None or b < before)
    starts = [last + "\0", *inner]
    return list(zip(starts, [*inner, before]))


def layout_label(rel: str) -> tuple[str | None, str | None]:
    """(label, split) from `<class>/…` or `<split>/<class>/…`; None where the layout says nothing."""
    parts = rel.split("/")
    if parts[0] in SPLITS:
        return (parts[1] if len(parts) >= 3 else None), parts[0]
    return (parts[0] if len(parts) >= 2 else None), None


LABEL_CHUNK_ROWS = 1_000_000  # rows of a labels file read at a time (~100 bytes each in memory)


def labels_chunks(path: str, rows: int = LABEL_CHUNK_ROWS) -> Iterator[pa.Table]:
    """The labels file `path` (CSV or Parquet with columns path,label[,split]; a local file or an
    fsspec URL such as s3://bucket/labels.csv) read about `rows` rows at a time, each chunk a
    table path, label, split with its paths normalised (POSIX, relative to SRC), so that a labels
    file of any size costs one chunk of memory; fails with one line when it is missing,
    unreadable or wrong (a chunk's problem when that chunk is read)."""
    fs, p = fsspec.core.url_to_fs(path)
    if not fs.isfile(p):
        raise CurateError(f"labels file {path} not found")
    try:
        with fs.open(p, "rb") as f:
            batches, names = _label_batches(f, PurePosixPath(p).suffix.lower() in (".parquet", ".pq"), rows)
            unknown = set(names) - {"path", "label", "split"}
            if unknown or not {"path", "label"} <= set(names):
                raise CurateError(f"labels file {path} must have columns path,label[,split]; found {','.join(names)}")
            chunk: list[pa.RecordBatch] = []
            held = 0
            for batch in batches:
                chunk.append(batch)
                held += batch.num_rows
                if held >= rows:
                    yield _normalised(path, pa.Table.from_batches(chunk))
                    chunk, held = [], 0
            if chunk:
                yield _normalised(path, pa.Table.from_batches(chunk))
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
        raise CurateError(f"labels file {path} cannot be read: {str(exc).splitlines()[0]}") from exc


def check_labels(path: str) -> None:
    """Fail with one line when the labels file `path` is missing, unreadable or wrong (read a chunk
    at a time: its size costs no memory)."""
    for _chunk in labels_chunks(path):
        pass


def _label_schema(names: Sequence[str]) -> pa.Schema:
    return pa.schema([pa.field(n, pa.string()) for n in names])


def _label_batches(f: Any, parquet: bool, rows: int) -> tuple[Iterator[pa.RecordBatch], list[str]]:
    """The file's record batches (text columns as strings) and its column names."""
    if parquet:
        file = pq.ParquetFile(f)
        names = file.schema_arrow.names
        schema = _label_schema(names)
        return (b.cast(schema) for b in file.iter_batches(batch_size=rows)), names
    reader = pacsv.open_csv(f, convert_options=pacsv.ConvertOptions(  # an empty cell: no label, no split
        column_types={"path": pa.string(), "label": pa.string(), "split": pa.string()}, strings_can_be_null=True))
    return iter(reader), reader.schema.names


def _normalised(path: str, table: pa.Table) -> pa.Table:
    """A chunk of the labels file `path` as path, label, split, its paths relative to SRC (checked)."""
    splits = table.column("split") if "split" in table.column_names else pa.nulls(len(table), pa.string())
    paths = []
    for raw, split in zip(table.column("path").to_pylist(), splits.to_pylist()):
        rel = posixpath.normpath(str(raw).replace("\\", "/"))
        if rel.startswith("/") or rel == ".." or rel.startswith("../"):
            raise CurateError(f"labels file {path}: path {raw!r} escapes the source folder")
        if split is not None and split not in SPLITS:
            raise CurateError(f"labels file {path}: split {split!r} for {raw!r} is not one of {', '.join(SPLITS)}")
        paths.append(rel)
    return pa.table({"path": pa.array(paths, pa.string()), "label": table.column("label"), "split": splits})


def ignored(path: str, patterns: Sequence[str]) -> bool:
    """Whether the file name of `path` matches one of the `[scan] ignore` patterns."""
    name = path.rpartition("/")[2]
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)
