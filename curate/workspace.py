"""The output folder (`OUT`): where each stage reads and writes, with atomic writes.

Layout (ARCHITECTURE.md, "The workspace"): `manifest/`, `issues/`, `duplicates/`, `plan/`,
`shards/<split>/`, `index.parquet`, `dataset.json`, `report/`, `runs/`. A file is written under a
temporary name and renamed into place, so a reader never sees a half-written file and a killed
run leaves only temporaries that the next run removes.

On an object store (`curate.storage.is_object_store`: s3://, gs://, az://) there is no rename, but
an object is written whole by one PUT (or one multipart upload, visible only once complete): each
file is put straight under its final name, and a folder is replaced by a journalled swap (the
`<name>.swap` object, written once the staging folder is complete, is the commit point; whoever
next takes OUT's lock finishes the copy; readers read the staging folder meanwhile).
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, Iterable

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from curate import storage
from curate.errors import CurateError, MissingInput

if TYPE_CHECKING:
    import pyarrow.dataset as ds

log = logging.getLogger(__name__)

TMP_MARK = ".tmp-"
WORKSPACE_MARK = ".curate"  # in OUT: curate made this folder its workspace (`Workspace.claim`)
EARLIER_WORKSPACE = "runs/scan.json"  # what an OUT that an earlier curate wrote (without the marker) holds
SWAP_MARK = ".swap"  # `<name>.swap` on an object store: `<name>.new/` is complete and replaces `<name>/`


@dataclass(frozen=True)
class Workspace:
    """An output folder given as a local path or an fsspec URL."""

    url: str

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        return _fs_root(self.url)[0]

    @property
    def root(self) -> str:
        return _fs_root(self.url)[1]

    @property
    def object_store(self) -> bool:
        """Whether OUT is on an object store (whole-object writes, no rename)."""
        return storage.is_object_store(self.fs)

    def path(self, *parts: str) -> str:
        """The filesystem path of `parts` under the workspace root."""
        return str(PurePosixPath(self.root, *parts))

    def location(self, *parts: str) -> str:
        """Where `parts` is, for people: a local path, or a URL with its protocol (s3://...)."""
        p = self.path(*parts)
        return p if is_local(self.fs) else str(self.fs.unstrip_protocol(p))

    def exists(self, *parts: str) -> bool:
        """Whether `parts` (OUT itself when empty) exists."""
        return bool(self.fs.exists(self.path(*parts)))

    def makedirs(self, *parts: str) -> str:
        """Create the folder `parts` (OUT itself when empty). An object store has no folders: there
        OUT's bucket must exist (curate never creates one)."""
        p = self.path(*parts)
        if self.object_store:
            if not parts:
                bucket = self.root.partition("/")[0]
                if not self.fs.exists(bucket):
                    raise CurateError(f"the bucket of {self.url} does not exist: create it first "
                                      "(curate never creates buckets)")
            return p
        self.fs.makedirs(p, exist_ok=True)
        return p

    def claim(self, ignore: Iterable[str] = ()) -> None:
        """Make OUT curate's workspace: write the `.curate` marker into a new or empty OUT, or one an
        earlier curate wrote (it holds the scan's run record). An OUT that holds anything else (besides
        the names in `ignore`, e.g. the lock just taken) is refused with one line: curate replaces and
        removes folders in its workspace, and a folder of someone else's must never be one of them."""
        if self.exists(WORKSPACE_MARK):
            return
        self.makedirs()
        if not self.exists(EARLIER_WORKSPACE):
            skip = {*ignore, WORKSPACE_MARK}
            foreign = sorted(name for p in (self.fs.ls(self.root, detail=False) if self.exists() else [])
                             if (name := str(p).rstrip("/").rpartition("/")[2]) not in skip
                             and not name.startswith(TMP_MARK))
            if foreign:
                raise CurateError(f"{self.url} already holds files that curate did not write ({foreign[0]!r}, "
                                  f"{len(foreign)} entries): give OUT an empty or new folder")
        self.write_json(WORKSPACE_MARK, {"workspace": "curate", "layout": "ARCHITECTURE.md, The workspace"})

    def _refuse_unclaimed(self, rel: str) -> None:
        """Fail before replacing or deleting `rel` when OUT is not curate's (`claim` never ran on it)."""
        if not self.exists(WORKSPACE_MARK):
            raise CurateError(f"refusing to replace or delete {self.location(rel)}: {self.url} is not a curate "
                              f"workspace (it has no {WORKSPACE_MARK} marker)")

    # -- atomic writes -------------------------------------------------------------------
    def _tmp_name(self, final: str) -> str:
        head, _, tail = final.rpartition("/")
        return f"{head}/{TMP_MARK}{uuid.uuid4().hex[:8]}-{tail}"

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Write `data` to `rel` atomically (temporary name, then rename; on an object store, one PUT)."""
        final = self.path(rel)
        if self.object_store:
            self.fs.pipe_file(final, data)  # one PUT: the object appears whole or not at all
            return
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

    def write_table(self, rel: str, table: pa.Table | Iterable[pa.Table], schema: pa.Schema,
                    row_group_size: int | None = None, uncompressed: Iterable[str] = ()) -> str:
        """Write `table` as one Parquet file at `rel`, cast to `schema`, atomically; zstd for every
        column but `uncompressed` (e.g. already-compressed image bytes). `table` may be an iterable
        of tables, written as they come (only one is held at a time: a shard of image bytes is
        never whole in memory). Empty tables write no row group, so no rows at all is a file with
        the schema and no row group (readers such as Hugging Face `datasets` fail on a row group of
        0 rows). Returns the file's sha256, computed while writing."""
        final = self.path(rel)
        codecs: Any = "zstd"
        if uncompressed:
            codecs = {name: "zstd" for name in _leaf_paths(schema)} | {name: "none" for name in uncompressed}

        def write(f: Any) -> str:
            hashing = _HashingWriter(f)
            with pq.ParquetWriter(hashing, schema, compression=codecs) as writer:
                for chunk in [table] if isinstance(table, pa.Table) else table:
                    if chunk.num_rows:
                        writer.write_table(chunk.select(schema.names).cast(schema), row_group_size=row_group_size)
            return hashing.hexdigest()

        if self.object_store:  # written in full on local disk first, then uploaded whole
            with tempfile.TemporaryDirectory(prefix="curate-put-") as folder:
                local = os.path.join(folder, "part")
                with open(local, "wb") as f:
                    digest = write(f)
                self.fs.put_file(local, final)
            return digest
        self.fs.makedirs(final.rpartition("/")[0], exist_ok=True)
        tmp = self._tmp_name(final)
        try:
            with self.fs.open(tmp, "wb") as f:
                digest = write(f)
            self.fs.mv(tmp, final)
            return digest
        except OSError as exc:
            _cleanup(self.fs, tmp)
            raise _disk_error(exc, final) from exc
        except BaseException:  # raised by an iterable of tables while it was written: no part stays
            _cleanup(self.fs, tmp)
            raise

    def write_dataset(self, name: str, table: pa.Table, schema: pa.Schema, rows_per_file: int = 1_000_000) -> None:
        """Replace the Parquet dataset `name/` with `table` (part files written atomically)."""
        staging = f"{name}.new"
        self.remove(staging)
        n = max(1, -(-table.num_rows // rows_per_file))
        for i in range(n):
            self.write_table(f"{staging}/part-{i:05d}.parquet", table.slice(i * rows_per_file, rows_per_file), schema)
        self.swap_in(staging, name)

    def swap_in(self, staging: str, name: str) -> None:
        """Make the folder `staging` the new `name`, replacing the old one. On an object store:
        write the `<name>.swap` journal (the commit point), then `finish_swap`."""
        if self.exists(name):
            self._refuse_unclaimed(name)
        if self.object_store:
            self.write_json(f"{name}{SWAP_MARK}", {"staging": staging})
            self.finish_swap(name)
            return
        old = f"{name}.old"
        self.remove(old)
        if self.exists(name):
            self.fs.mv(self.path(name), self.path(old), recursive=True)
        self.fs.mv(self.path(staging), self.path(name), recursive=True)
        self.remove(old)

    def pending_swap(self, name: str) -> str | None:
        """The complete staging folder that replaces `name/` (object stores: a swap journalled and
        not finished yet, e.g. by a killed run), or None."""
        if not self.object_store or not self.exists(f"{name}{SWAP_MARK}"):
            return None
        return str(self.read_json(f"{name}{SWAP_MARK}")["staging"])

    def finish_swap(self, name: str) -> None:
        """Finish replacing `name/` by its journalled staging folder (object stores; idempotent, so a
        run killed halfway through is finished by the next): drop the objects of `name/` that the
        staging folder lacks, copy each staged object over (a server-side copy, atomic per object),
        then remove the staging folder and, last, the journal."""
        staging = self.pending_swap(name)
        if staging is None:
            return
        new = self.files(staging)
        wanted = {rel[len(staging):] for rel in new}
        for rel in self.files(name):
            if rel[len(name):] not in wanted:
                self.fs.rm_file(self.path(rel))
        for rel in new:
            self.fs.copy(self.path(rel), self.path(name + rel[len(staging):]))
        self.remove(staging)
        self.fs.rm_file(self.path(f"{name}{SWAP_MARK}"))

    def finish_swaps(self) -> None:
        """Finish every swap a killed run left journalled (object stores; call holding OUT's lock)."""
        if not self.object_store:
            return
        for p in self.fs.glob(self.path(f"*{SWAP_MARK}")):
            self.finish_swap(p.rpartition("/")[2].removesuffix(SWAP_MARK))

    def remove(self, rel: str) -> None:
        """Delete the entry `rel` (a file or a folder) of a claimed workspace, if it exists."""
        if self.exists(rel):
            self._refuse_unclaimed(rel)
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
        """The finished Parquet files of the dataset `name/`, in order (on an object store, those of
        the staging folder replacing it while a swap is pending)."""
        name = self.pending_swap(name) or name
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


def _fs_root(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """OUT's file system and root path. On an object store, listings are not cached: other
    processes (workers, a concurrent reader) write objects that a cached listing would hide."""
    if storage.is_object_url(url):
        fs, root = fsspec.core.url_to_fs(url, use_listings_cache=False)
    else:
        fs, root = fsspec.core.url_to_fs(url)
    return fs, str(root)


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    """Whether `fs` is the local filesystem."""
    return "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


def local_path(url: str) -> str | None:
    """The local filesystem path of `url`, or None for a remote URL."""
    fs, p = fsspec.core.url_to_fs(url)
    return p if is_local(fs) else None
