"""A float16 matrix in a scratch file, read and written through a memory map, so that a matrix
larger than RAM (10M embeddings of 1280 float16 are 25.6 GB) is never in memory whole.

Pages the map has read or written stay resident in the process (and count in its RSS) until the
kernel needs them back; `release()` writes them out and lets them go at once, so a caller that
releases after each unit of work (a class, a block of rows) holds only that unit's pages. The file
is deleted when the matrix is closed.
"""
from __future__ import annotations

import contextlib
import errno
import mmap
import os
import tempfile
from pathlib import Path
from types import TracebackType

import numpy as np

from curate.errors import CurateError

GATHER_ROWS = 8_192  # rows a reader takes from the map between releases: at most 64 MB of pages at 1280-d


class MappedMatrix:
    """A (rows, dim) float16 matrix of zeros in a new file under `scratch` (a local folder; None:
    the system's temporary folder), as `array`. Use as a context manager: leaving it deletes the
    file (the array must not be used after)."""

    def __init__(self, rows: int, dim: int, scratch: str | None = None) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="curate-matrix-", dir=scratch)
        self._map: mmap.mmap | None = None
        size = rows * dim * 2
        if size:
            path = Path(self._folder.name) / "matrix.f16"
            fd = os.open(path, os.O_RDWR | os.O_CREAT)
            try:
                _allocate(fd, size, path.parent.parent)
                self._map = mmap.mmap(fd, size)
            except BaseException:
                self._folder.cleanup()
                raise
            finally:
                os.close(fd)
        self.array: np.ndarray = (np.frombuffer(self._map, np.float16).reshape(rows, dim) if self._map is not None
                                  else np.zeros((rows, dim), np.float16))

    def release(self) -> None:
        """Write the pages touched so far to the file and drop them from this process's memory (the
        next read of them comes from the file, or from the page cache)."""
        if self._map is not None:
            self._map.flush()
            self._map.madvise(mmap.MADV_DONTNEED)

    def __enter__(self) -> MappedMatrix:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.array = np.zeros((0, 0), np.float16)  # the map's last reference from here
        if self._map is not None:
            with contextlib.suppress(BufferError):  # a caller still holds a view: unmapped when it goes
                self._map.close()
        self._folder.cleanup()  # the file's name goes now, its pages with the last view


def _allocate(fd: int, size: int, where: Path) -> None:
    """Reserve the file's blocks now: a full disk is one clear error here, not a SIGBUS when a
    page of the map is first written."""
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise CurateError(f"no room for a {size / 1e9:.1f} GB scratch file in {where}: free space there, or "
                              "set TMPDIR to a folder with room, and rerun") from None
        raise
