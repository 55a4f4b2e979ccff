"""Decode in a child process with a time and memory limit per image.

The parent sends one partition's file paths; the child reads and probes them in order and
streams back one result per file. If a result does not arrive within `timeout_s` (a decoder
stuck in a loop) the child is killed, that file gets the error code `timeout`, and a new child
carries on with the next file. The child's address space is capped (`max_memory_mb`), so an
allocation bomb fails inside it as a MemoryError row (or kills it: the file then gets
`decoder_crashed`). The scan worker itself is never at risk.

Run as `python -m curate.imaging.sandbox`; the protocol is length-prefixed pickles on stdin/stdout.
"""
from __future__ import annotations

import dataclasses
import os
import pickle
import select
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Iterator

_HEADER = struct.Struct("!Q")
STARTUP_S = 10.0  # extra time for the first result: the child imports numpy and Pillow


def _child_env() -> dict[str, str]:
    """One BLAS thread: the child needs none, and idle BLAS threads reserve address space."""
    return {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@dataclass(frozen=True)
class DecodeJob:
    src: str
    paths: tuple[str, ...]
    decode_size: int
    max_pixels: int
    background: str
    max_memory_mb: int
    structure_checks: bool = True


def _widen_pipe(fd: int) -> None:
    """Let the child run ahead of the reader (Linux: pipe buffer up to 1 MiB)."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except OSError:
        pass


def _send(stream: BinaryIO, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes | None:
    """n bytes from fd, or None at EOF or when the deadline passes first."""
    chunks, got = [], 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
        chunk = os.read(fd, n - got)
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _receive(fd: int, deadline: float | None) -> Any:
    head = _read_exact(fd, _HEADER.size, deadline)
    if head is None:
        return None
    body = _read_exact(fd, _HEADER.unpack(head)[0], deadline)
    return None if body is None else pickle.loads(body)


def opener(src: str) -> tuple[Callable[[str], BinaryIO], str]:
    """A function opening a file under SRC for reading, and SRC's root path (plain `open` for
    local folders, so the decoder child need not import fsspec)."""
    if "://" not in src or src.startswith("file://"):
        return (lambda p: open(p, "rb")), src.removeprefix("file://").rstrip("/")
    import fsspec

    fs, root = fsspec.core.url_to_fs(src)
    return (lambda p: fs.open(p, "rb")), root.rstrip("/")


def decode_file(open_file: Callable[[str], BinaryIO], root: str, path: str, job: DecodeJob
                ) -> tuple[dict[str, Any], bytes | None, int | None]:
    """(facts, thumbnail, size in bytes) of one source file; read errors become facts."""
    from curate.imaging.probe import probe
    from curate.codes import ErrorCode, Status

    try:
        with open_file(f"{root}/{path}") as f:
            data = f.read()
    except FileNotFoundError as exc:
        return ({"status": Status.ERROR.value, "error_code": ErrorCode.VANISHED.value,
                 "error_message": f"file vanished during the scan: {exc}"}, None, None)
    except OSError as exc:
        return ({"status": Status.ERROR.value, "error_code": ErrorCode.UNREADABLE.value,
                 "error_message": f"{type(exc).__name__}: {exc}"}, None, None)
    facts, thumb = probe(data, decode_size=job.decode_size, max_pixels=job.max_pixels, background=job.background,
                         structure_checks=job.structure_checks)
    return facts, thumb, len(data)


def _child() -> None:
    """The child's loop: one job in, one result per path out."""
    import resource

    import curate.imaging.probe  # noqa: F401  (imported before the memory cap applies)
    from curate.codes import ErrorCode, Status

    job: DecodeJob = _receive(sys.stdin.fileno(), None)
    limit = job.max_memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    open_file, root = opener(job.src)
    for path in job.paths:
        try:
            result = decode_file(open_file, root, path, job)
        except MemoryError:
            result = ({"status": Status.ERROR.value, "error_code": ErrorCode.MEMORY_LIMIT.value,
                       "error_message": f"decoding needed more than {job.max_memory_mb} MB"}, None, None)
        _send(sys.stdout.buffer, result)


def sandboxed(job: DecodeJob, timeout_s: float) -> Iterator[tuple[dict[str, Any], bytes | None, int | None]]:
    """Results for job.paths, in order, each decoded within `timeout_s` in a child process."""
    from curate.codes import ErrorCode, Status

    remaining = list(job.paths)
    while remaining:
        child = subprocess.Popen([sys.executable, "-m", "curate.imaging.sandbox"], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, env=_child_env())
        try:
            assert child.stdin is not None and child.stdout is not None
            _widen_pipe(child.stdout.fileno())
            _send(child.stdin, dataclasses.replace(job, paths=tuple(remaining)))
            grace = STARTUP_S
            while remaining:
                result = _receive(child.stdout.fileno(), time.monotonic() + timeout_s + grace)
                grace = 0.0
                if result is None:
                    crashed = child.poll() is not None
                    code = (ErrorCode.DECODER_CRASHED if crashed else ErrorCode.TIMEOUT).value
                    message = (f"the decoder process died (exit {child.returncode})" if crashed
                               else f"decoding took longer than {timeout_s:g}s")
                    yield {"status": Status.ERROR.value, "error_code": code, "error_message": message}, None, None
                    remaining.pop(0)
                    break
                yield result
                remaining.pop(0)
        finally:
            if child.poll() is None:
                child.kill()
            child.wait()
            for stream in (child.stdin, child.stdout):
                if stream:
                    stream.close()


if __name__ == "__main__":
    _child()
