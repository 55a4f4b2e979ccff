"""The output folder (`OUT`): where each stage reads and writes, with atomic writes.

Layout (ARCHITECTURE.md, "The workspace"): `manifest/`, `issues/`, `duplicates/`, `plan/`,
`shards/<split>/`, `index.parquet`, `dataset.json`, `report/`, `runs/`. A file is written under a
temporary name and renamed into place, so a reader never sees a half-written file and a killed
run leaves only temporaries that the next run removes.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import uuid
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, Iterable

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from curate.errors import CurateError, MissingInput

if TYPE_CHECKING:
    import pyarrow.dataset as ds

log = logging.getLogger(__name__)

TMP_MARK = ".tmp-"


@dataclass(frozen=True)
class Workspace:
    """An output folder given as a local path or an fsspec URL."""

    url: str

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        return fsspec.core.url_to_fs(self.url)[0]

    @property
    def root(self) -> str:
        return str(fsspec.core.url_to_fs(self.url)[1])

    def path(self, *parts: str) -> str:
        """The filesystem path of `parts` under the workspace root."""
        return str(PurePosixPath(self.root, *parts))

    def exists(self, *parts: str) -> bool:
        return bool(self.fs.exists(self.path(*parts)))

    def makedirs(self, *parts: str) -> str:
        p = self.path(*parts)
        self.fs.makedirs(p, exist_ok=True)
        return p

    # -- atomic writes -------------------------------------------------------------------
    def _tmp_name(self, final: str) -> str:
        head, _, tail = final.rpartition("/")
        return f"{head}/{TMP_MARK}{uuid.uuid4().hex[:8]}-{tail}"

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Write `data` to `rel` atomically (temporary name, then rename)."""
        final = self.path(rel)
        self.fs.makedirs(final.rpartition("/")[0], exist_ok=True)
        tmp = self._tmp_name(final)
        try:
            with self.fs.open(tmp, "wb") as f:
                f.write(data)
            self.fs.mv(tmp, final)
        except OSError as exc:
            _cleanup(self.fs, tmp)
            raise _disk_error(exc, final) from exc

    def write_json(self, rel: str, obj: Any) -> None:
        self.write_bytes(rel, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())

    def read_json(self, rel: str) -> Any:
        with self.fs.open(self.path(rel), "rb") as f:
            return json.loads(f.read())

    def write_table(self, rel: str, table: pa.Table, schema: pa.Schema, row_group_size: int | None = None,
                    uncompressed: Iterable[str] = ()) -> str:
        """Write `table` as one Parquet file at `rel`, cast to `schema`, atomically; zstd for every
        column but `uncompressed` (e.g. already-compressed image bytes). An empty table is a file
        with the schema and no row group (readers such as Hugging Face `datasets` fail on a row
        group of 0 rows). Returns the file's sha256, computed while writing."""
        final = self.path(rel)
        self.fs.makedirs(final.rpartition("/")[0], exist_ok=True)
        tmp = self._tmp_name(final)
        codecs: Any = "zstd"
        if uncompressed:
            codecs = {name: "zstd" for name in _leaf_paths(schema)} | {name: "none" for name in uncompressed}
        try:
            with self.fs.open(tmp, "wb") as f:
                hashing = _HashingWriter(f)
                with pq.ParquetWriter(hashing, schema, compression=codecs) as writer:
                    if table.num_rows:
                        writer.write_table(table.select(schema.names).cast(schema), row_group_size=row_group_size)
            self.fs.mv(tmp, final)
            return hashing.hexdigest()
        except OSError as exc:
            _cleanup(self.fs, tmp)
            raise _disk_error(exc, final) from exc

    def write_dataset(self, name: str, table: pa.Table, schema: pa.Schema, rows_per_file: int = 1_000_000) -> None:
        """Replace the Parquet dataset `name/` with `table` (part files written atomically)."""
        staging = f"{name}.new"
        self.remove(staging)
        n = max(1, -(-table.num_rows // rows_per_file))
        for i in range(n):
            self.write_table(f"{staging}/part-{i:05d}.parquet", table.slice(i * rows_per_file, rows_per_file), schema)
        self.swap_in(staging, name)

    def swap_in(self, staging: str, name: str) -> None:
        """Make the folder `staging` the new `name`, replacing the old one."""
        old = f"{name}.old"
        self.remove(old)
        if self.exists(name):
            self.fs.mv(self.path(name), self.path(old), recursive=True)
        self.fs.mv(self.path(staging), self.path(name), recursive=True)
        self.remove(old)

    def remove(self, rel: str) -> None:
        if self.exists(rel):
            self.fs.rm(self.path(rel), recursive=True)

    def clean_temporaries(self, rel: str) -> None:
        """Delete temporaries a killed run left under `rel`."""
        if not self.exists(rel):
            return
        for p in self.fs.find(self.path(rel)):
            if p.rpartition("/")[2].startswith(TMP_MARK):
                _cleanup(self.fs, p)

    # -- reads ---------------------------------------------------------------------------
    def files(self, rel: str) -> dict[str, dict[str, Any]]:
        """Every finished file of the entry `rel` (a file, or a folder searched recursively):
        its path relative to OUT -> the file system's info (size, mtime or ETag, ...)."""
        if not self.exists(rel):
            return {}
        found = self.fs.find(self.path(rel), detail=True)
        prefix = len(self.root.rstrip("/")) + 1
        return {p[prefix:]: info for p, info in sorted(found.items())
                if info.get("type") == "file" and not p.rpartition("/")[2].startswith(TMP_MARK)}

    def fingerprint(self, rel: str) -> str | None:
        """A version of the entry `rel` that changes whenever a file in it is rewritten (names,
        sizes and modification times or ETags); None when it does not exist."""
        files = self.files(rel)
        if not files and not self.exists(rel):
            return None
        h = hashlib.sha256()
        for name, info in files.items():
            version = next((info[k] for k in ("mtime", "LastModified", "ETag", "created") if info.get(k)), "")
            h.update(f"{name}\0{info.get('size')}\0{version}\n".encode())
        return h.hexdigest()[:16]

    def parts(self, name: str) -> list[str]:
        """The finished Parquet files of the dataset `name/`, in order."""
        if not self.exists(name):
            from curate.stages import producer, shown

            raise MissingInput(f"{self.url}/{shown(name)} is missing: run `{producer(name).command(self.url)}` first")
        return sorted(p for p in self.fs.find(self.path(name)) if p.endswith(".parquet")
                      and not p.rpartition("/")[2].startswith(TMP_MARK))

    def dataset(self, name: str, schema: pa.Schema) -> ds.Dataset:
        """The Parquet dataset `name/`, read with its declared `schema`."""
        import pyarrow.dataset as ds  # here, not at the top: it imports pandas (~0.3 s per command)

        return ds.dataset(self.parts(name), schema=schema, format="parquet", filesystem=self.fs)

    def read(self, name: str, schema: pa.Schema, columns: Iterable[str] | None = None,
             filter: Any = None) -> pa.Table:
        """`columns` of the dataset `name/` as `schema` declares them, rows passing `filter`. Without a
        filter, the parts are read one by one with pyarrow.parquet (no pyarrow.dataset import)."""
        names = list(columns) if columns else schema.names
        if filter is None:
            target = pa.schema([schema.field(n) for n in names])
            tables = []
            for path in self.parts(name):
                with self.fs.open(path, "rb") as f:
                    part = pq.ParquetFile(f)
                    if not set(names) <= set(part.schema_arrow.names):
                        break  # an older part without a column: the dataset fills it with nulls
                    tables.append(part.read(columns=names).cast(target))
            else:
                return pa.concat_tables(tables) if tables else target.empty_table()
        return self.dataset(name, schema).to_table(columns=names, filter=filter)


class _HashingWriter(io.RawIOBase):
    """A write-only file that hashes (sha256) what passes through it."""

    def __init__(self, inner: Any) -> None:
        self._inner, self._sha, self._pos = inner, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._sha.update(view)
        self._inner.write(view)
        self._pos += len(view)
        return len(view)

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        self._inner.flush()

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


def _leaf_paths(schema: pa.Schema) -> list[str]:
    """Dotted paths of every leaf column (Parquet's names for per-column settings)."""
    out: list[str] = []

    def walk(field: pa.Field, prefix: str) -> None:
        name = f"{prefix}{field.name}"
        if pa.types.is_struct(field.type):
            for child in field.type:
                walk(child, name + ".")
        elif pa.types.is_list(field.type) or pa.types.is_fixed_size_list(field.type):
            walk(field.type.value_field, name + ".list.")
        else:
            out.append(name)

    for f in schema:
        walk(f, "")
    return out


def _cleanup(fs: fsspec.AbstractFileSystem, path: str) -> None:
    try:
        if fs.exists(path):
            fs.rm(path)
    except OSError:  # best effort: the next run cleans temporaries too
        log.debug("could not remove %s", path)


def _disk_error(exc: OSError, path: str) -> Exception:
    if getattr(exc, "errno", None) == 28:  # ENOSPC
        return CurateError(f"out of disk space while writing {path}: free space and rerun; finished parts are kept")
    return exc


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    """Whether `fs` is the local filesystem."""
    return "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


def local_path(url: str) -> str | None:
    """The local filesystem path of `url`, or None for a remote URL."""
    fs, p = fsspec.core.url_to_fs(url)
    return p if is_local(fs) else None
