"""Listing SRC: every file under it, labelled from the folder layout or a labels file.

Reads the source tree (through `curate.source.Source`) and the labels file; writes nothing.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import logging
import os
import posixpath
import stat
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Sequence

import fsspec
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from curate.errors import CurateError
from curate.schema import SPLITS, ErrorCode
from curate.source import Source, within

log = logging.getLogger(__name__)


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


def _walk_local(root: str, follow_symlinks: bool) -> list[SourceFile]:
    """Files under a local root. Symbolic links (to files or folders, inside or outside the
    tree) are skipped unless `follow_symlinks`; followed, a link whose target is outside the root
    becomes an entry with the error `outside_source` (SRC's bytes only ever come from SRC); a folder
    is entered once however many links reach it, so link loops end; a folder or file that cannot
    be read, or whose name is not UTF-8, becomes an entry with an error (`unreadable`, the name's
    bytes escaped)."""
    found: list[SourceFile] = []
    real_root = os.path.realpath(root)
    seen_dirs: set[str] = {real_root}
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            rel = os.path.relpath(folder, root).replace(os.sep, "/")
            found.append(SourceFile(rel, 0, 0.0, error=f"{type(exc).__name__}: {exc.strerror or exc}"))
            continue
        for entry in entries:
            rel = os.path.relpath(entry.path, root).replace(os.sep, "/")
            if not _is_utf8(rel):
                found.append(SourceFile(rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"),
                                        0, 0.0, error="its name is not UTF-8: rename it to read it"))
                continue
            try:
                if entry.is_symlink():
                    if not follow_symlinks:
                        continue
                    target = os.path.realpath(entry.path)
                    if not within(target, real_root):
                        found.append(SourceFile(rel, 0, 0.0, error=f"a symbolic link to {target}, outside the source",
                                                error_code=ErrorCode.OUTSIDE_SOURCE.value))
                        continue
                st = entry.stat(follow_symlinks=True)
            except OSError as exc:
                found.append(SourceFile(rel, 0, 0.0, error=f"{type(exc).__name__}: {exc.strerror or exc}"))
                continue
            if stat.S_ISDIR(st.st_mode):
                key = os.path.realpath(entry.path)
                if key not in seen_dirs:
                    seen_dirs.add(key)
                    stack.append(entry.path)
            elif stat.S_ISREG(st.st_mode):
                found.append(SourceFile(rel, st.st_size, st.st_mtime))
    return found


def _is_utf8(name: str) -> bool:
    """Whether a name from the file system decodes as UTF-8 (else Python carries its bytes as
    surrogate escapes, which no Parquet string or manifest path can hold)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _walk_fsspec(fs: fsspec.AbstractFileSystem, root: str) -> list[SourceFile]:
    found = []
    for path, info in fs.find(root, detail=True).items():
        if info.get("type") != "file":
            continue
        rel = posixpath.relpath(path, root)
        mtime = info.get("mtime") or info.get("LastModified") or info.get("created") or 0.0
        seconds = mtime.timestamp() if hasattr(mtime, "timestamp") else float(mtime)
        found.append(SourceFile(rel, int(info.get("size") or 0), seconds))
    return found


def layout_label(rel: str) -> tuple[str | None, str | None]:
    """(label, split) from `<class>/…` or `<split>/<class>/…`; None where the layout says nothing."""
    parts = rel.split("/")
    if parts[0] in SPLITS:
        return (parts[1] if len(parts) >= 3 else None), parts[0]
    return (parts[0] if len(parts) >= 2 else None), None


def read_labels(path: str) -> dict[str, tuple[str | None, str | None]]:
    """path -> (label, split) from a CSV or Parquet labels file with columns path,label[,split]: a
    local file or an fsspec URL (e.g. s3://bucket/labels.csv)."""
    fs, p = fsspec.core.url_to_fs(path)
    if not fs.isfile(p):
        raise CurateError(f"labels file {path} not found")
    try:
        with fs.open(p, "rb") as f:
            data = pa.BufferReader(f.read())
        table = pq.read_table(data) if PurePosixPath(p).suffix.lower() in (".parquet", ".pq") else pacsv.read_csv(
            data, convert_options=pacsv.ConvertOptions(column_types={"path": pa.string(), "label": pa.string(),
                                                                  "split": pa.string()}))
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
        raise CurateError(f"labels file {path} cannot be read: {str(exc).splitlines()[0]}") from exc
    columns = set(table.column_names)
    unknown = columns - {"path", "label", "split"}
    if unknown or not {"path", "label"} <= columns:
        raise CurateError(f"labels file {path} must have columns path,label[,split]; "
                          f"found {','.join(table.column_names)}")
    rows = table.to_pylist()
    labels: dict[str, tuple[str | None, str | None]] = {}
    for row in rows:
        rel = posixpath.normpath(str(row["path"]).replace("\\", "/"))
        if rel.startswith("/") or rel == ".." or rel.startswith("../"):
            raise CurateError(f"labels file {path}: path {row['path']!r} escapes the source folder")
        split = row.get("split")
        if split is not None and split not in SPLITS:
            raise CurateError(f"labels file {path}: split {split!r} for {row['path']!r} is not one of "
                              f"{', '.join(SPLITS)}")
        labels[rel] = (row["label"], split)
    return labels


def list_source(src: str, labels_file: str = "", follow_symlinks: bool = False,
                ignore: Sequence[str] = ()) -> list[SourceFile]:
    """Every file under SRC whose name matches no `ignore` pattern, sorted by path, labelled
    from `labels_file` or the folder layout."""
    labels = read_labels(labels_file) if labels_file else None
    source = Source(src)
    source.check()
    local = source.local_root
    found = _walk_local(local, follow_symlinks) if local is not None else _walk_fsspec(source.fs, source.root)
    files = [f for f in found if not any(fnmatch.fnmatchcase(f.path.rpartition("/")[2], p) for p in ignore)]
    if not files:
        raise CurateError(f"source {src} contains no files")
    labelled = []
    for f in files:
        label, split = labels.get(f.path, (None, None)) if labels is not None else layout_label(f.path)
        labelled.append(dataclasses.replace(f, label=label, split=split))
    if labels is not None:
        missing = len(set(labels) - {f.path for f in files})
        if missing:
            log.warning("%d paths in %s are not in the source", missing, labels_file)
    return sorted(labelled, key=lambda f: f.path)
