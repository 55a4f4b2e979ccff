"""SRC, the collection's folder: a local path or an fsspec URL, only ever read.

`Source` is the one place that turns SRC plus a path relative to it into bytes. Local folders
are read with plain `open`, so a decoder child process that reads them never imports fsspec;
anything else goes through fsspec. Importing this module does no work and imports nothing heavy.
"""
from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, BinaryIO

from curate.errors import CurateError

if TYPE_CHECKING:
    import fsspec


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

    def check(self) -> None:
        """Fail with one line when SRC is missing or not a folder."""
        if not self.fs.exists(self.root):
            raise CurateError(f"source {self.url} does not exist")
        if not self.fs.isdir(self.root):
            raise CurateError(f"source {self.url} is not a folder")
