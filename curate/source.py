"""SRC, the collection's folder: a local path or an fsspec URL, only ever read.

`Source` is the one place that turns SRC plus a path relative to it into bytes. Local folders
are read with plain `open`, so a decoder child process that reads them never imports fsspec;
anything else goes through fsspec, and `read_many` fetches a remote source's files many at a
time (fsspec's concurrent `cat`) one batch ahead of the consumer, so a scan from an object store
is not bound by the latency of one request. Importing this module does no work and imports
nothing heavy.
"""
from __future__ import annotations

import functools
import os
import threading
from typing import TYPE_CHECKING, BinaryIO, Iterator, Sequence

from curate.codes import ErrorCode
from curate.errors import CurateError

if TYPE_CHECKING:
    import fsspec


class OutsideSource(OSError):
    """A path under SRC that leads, through a symbolic link, to a file outside SRC."""

    code: str = ErrorCode.OUTSIDE_SOURCE.value


class ChangedSinceScan(OSError):
    """A file whose bytes are no longer those the scan hashed."""

    code: str = "changed_since_scan"


def unusable_reason(exc: OSError) -> str:
    """The reason code of a source file that could not be used as scanned: changed_since_scan,
    outside_source, vanished (gone) or unreadable."""
    if isinstance(exc, (OutsideSource, ChangedSinceScan)):
        return exc.code
    code: str = (ErrorCode.VANISHED if isinstance(exc, FileNotFoundError) else ErrorCode.UNREADABLE).value
    return code


class Source:
    """SRC given as a local path, `file://` URL or any fsspec URL. Picklable (for worker processes)."""

    def __init__(self, url: str) -> None:
        self.url = str(url)

    def __repr__(self) -> str:
        return f"Source({self.url!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Source) and other.url == self.url

    def __hash__(self) -> int:
        return hash(self.url)

    def __getstate__(self) -> dict[str, str]:
        return {"url": self.url}  # the filesystem is made again where it is used

    def __setstate__(self, state: dict[str, str]) -> None:
        self.url = state["url"]

    @property
    def local_root(self) -> str | None:
        """The folder on this machine's file system, or None for a remote URL."""
        if "://" not in self.url:
            return self.url.rstrip("/") or "/"
        if self.url.startswith("file://"):
            return self.url.removeprefix("file://").rstrip("/") or "/"
        return None

    @functools.cached_property
    def _fs_root(self) -> tuple[fsspec.AbstractFileSystem, str]:
        import fsspec

        fs, root = fsspec.core.url_to_fs(self.url)
        return fs, root.rstrip("/") or "/"

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        return self._fs_root[0]

    @property
    def root(self) -> str:
        """SRC's root path as its file system names it (no trailing slash)."""
        return self._fs_root[1]

    def path(self, rel: str) -> str:
        """The file system path of `rel` (a path relative to SRC, POSIX)."""
        local = self.local_root
        return os.path.join(local, rel) if local is not None else f"{self.root}/{rel}"

    def open(self, rel: str) -> BinaryIO:
        """`rel` opened for reading (binary)."""
        if self.local_root is not None:
            return open(self.path(rel), "rb")
        opened: BinaryIO = self.fs.open(self.path(rel), "rb")
        return opened

    def read(self, rel: str) -> bytes:
        with self.open(rel) as f:
            return f.read()

    @functools.cached_property
    def _real_root(self) -> str | None:
        local = self.local_root
        return os.path.realpath(local) if local is not None else None

    def leads_outside(self, rel: str) -> bool:
        """Whether `rel` (on this machine's disk) resolves, through a symbolic link anywhere on its
        way, to a file outside SRC. Object stores have no links."""
        return self._real_root is not None and not within(os.path.realpath(self.path(rel)), self._real_root)

    def refuse_outside(self, rel: str) -> None:
        """Raise `OutsideSource` when `rel` leads out of SRC (`leads_outside`)."""
        if self.leads_outside(rel):
            raise OutsideSource(f"{rel} leads to {os.path.realpath(self.path(rel))}, outside the source")

    def read_scanned(self, rel: str, sample_id: str) -> bytes:
        """The bytes of `rel` exactly as the scan saw them: `OutsideSource` when it now leads out of
        SRC through a link, `ChangedSinceScan` when its bytes differ from those the scan hashed (a
        sample's id hashes its path and bytes), the OSError of a file gone or unreadable."""
        from curate.imaging.formats import bytes_digest
        from curate.imaging.formats import sample_id as scanned_id

        self.refuse_outside(rel)
        data = self.read(rel)
        if scanned_id(rel, bytes_digest(data)) != sample_id:
            raise ChangedSinceScan(f"{rel} changed since the scan: rescan to use its new bytes")
        return data

    def read_many(self, rels: Sequence[str], batch: int = 32) -> Iterator[tuple[str, bytes | OSError]]:
        """(rel, its bytes or the OSError that reading it raised) for every rel, in order. A
        remote source is fetched `batch` files at a time, concurrently, with the next batch
        fetched while the current one is consumed; a local one is read file by file."""
        if self.local_root is not None:
            for rel in rels:
                try:
                    yield rel, self.read(rel)
                except OSError as exc:
                    yield rel, exc
            return
        batches = [list(rels[i:i + batch]) for i in range(0, len(rels), batch)]
        ahead: list[dict[str, bytes | OSError] | BaseException] = [{}]
        fetcher: threading.Thread | None = None

        def fetch(i: int) -> None:
            try:
                ahead[0] = self._cat(batches[i])
            except BaseException as exc:  # noqa: BLE001  (raised in the consumer: e.g. no credentials)
                ahead[0] = exc

        for i, names in enumerate(batches):
            if fetcher is None:
                fetch(i)
            else:
                fetcher.join()
            got = ahead[0]
            if isinstance(got, BaseException):
                raise got
            fetcher = None
            if i + 1 < len(batches):
                fetcher = threading.Thread(target=fetch, args=(i + 1,), daemon=True)
                fetcher.start()
            for rel in names:
                yield rel, got[rel]

    def _cat(self, rels: list[str]) -> dict[str, bytes | OSError]:
        """The bytes of `rels` (a remote source), fetched concurrently on an async file system (s3fs,
        gcsfs, adlfs), else one after the other; a failed file's OSError. Each path is fetched as
        it is named (fsspec's `cat` would take `[`, `*` or `?` in a file name for a glob)."""
        import asyncio

        from fsspec.asyn import AsyncFileSystem, sync

        fs = self.fs

        async def one(rel: str) -> bytes | OSError:
            try:
                data: bytes = await fs._cat_file(self.path(rel))
                return data
            except OSError as exc:
                return exc

        async def every() -> list[bytes | OSError]:
            return list(await asyncio.gather(*(one(rel) for rel in rels)))

        if isinstance(fs, AsyncFileSystem):
            return dict(zip(rels, sync(fs.loop, every)))
        out: dict[str, bytes | OSError] = {}
        for rel in rels:
            try:
                out[rel] = fs.cat_file(self.path(rel))
            except OSError as exc:
                out[rel] = exc
        return out

    def check(self) -> None:
        """Fail with one line when SRC is missing or not a folder."""
        if not self.fs.exists(self.root):
            raise CurateError(f"source {self.url} does not exist")
        if not self.fs.isdir(self.root):
            raise CurateError(f"source {self.url} is not a folder")


# Protocols that name the same store (one bucket namespace each).
_SAME_STORE = {"s3a": "s3", "gcs": "gs", "abfs": "az", "abfss": "az"}


def place(url: str) -> tuple[str, str]:
    """Where `url` is, for comparing locations: (store, path) with symbolic links resolved on this
    machine's disk ("file", its real path) and, on an object store, (protocol, "bucket/prefix"),
    aliases of one protocol made one (s3a = s3)."""
    protocol, sep, rest = url.partition("://")
    if not sep or protocol == "file":
        return "file", os.path.realpath(os.path.expanduser(rest if sep else url))
    protocol = protocol.lower()
    path = rest.split("?", 1)[0].split("#", 1)[0]
    return _SAME_STORE.get(protocol, protocol), "/".join(part for part in path.split("/") if part)


def within(inner: str, outer: str) -> bool:
    """Whether the path `inner` is `outer` or lies under it."""
    return inner == outer or inner.startswith(outer.rstrip("/") + "/") or outer in ("", "/")


def refuse_overlap(src: str, other: str, role: str = "OUT") -> None:
    """Fail with one line (exit 2) when the folder `other` (OUT, or quarantine's `--to`) is SRC,
    lies inside SRC or contains it, before any work: curate writes and replaces folders there, and
    SRC is only ever read."""
    (store_a, a), (store_b, b) = place(src), place(other)
    if store_a != store_b:
        return
    if a == b:
        how = "is"
    elif within(b, a):
        how = "lies inside"
    elif within(a, b):
        how = "contains"
    else:
        return
    raise CurateError(f"{role} {other} {how} the source {src}: curate never writes into its source; "
                      "choose one outside it")
