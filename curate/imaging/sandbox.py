"""Decode in a child process with a time and memory limit per image.

The parent sends one partition's file paths; the child reads and probes them in order (or, for
a job with `pixels`, decodes each to a square of RGB pixels of that side, as a model wants it)
and streams back one result per file. A child that finished its job waits for the next one: this
process keeps it (`_IDLE`) and hands it the next job with the same settings, so a worker running
partition after partition starts its decoders once (a start costs ~0.17 s of CPU: Python, NumPy,
Pillow, OpenCV). An idle child exits after `IDLE_EXIT_S`, or when this process ends.

If a result does not arrive within `timeout_s` while the child lives on (a decoder stuck in a
loop) the child is killed, that file gets the error code `timeout`, and a new child carries on
with the next file. The child's address space is capped (`max_memory_mb`), so an allocation bomb
fails inside it as a MemoryError row (or kills it: a child whose output ends, or that has exited,
gives its file `decoder_crashed`). The scan worker itself is never at risk.

Run as `python -m curate.imaging.sandbox`; the protocol is length-prefixed pickles on stdin/stdout.
"""
from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing.util
import os
import pickle
import queue
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Iterator

from curate.source import Source

if TYPE_CHECKING:
    from curate.config import ScanConfig

_HEADER = struct.Struct("!Q")
STARTUP_S = 10.0  # extra time for the first result: the child imports numpy and Pillow
MIN_PATHS_PER_DECODER = 64  # fewer files than this are not worth another decoder process
# A dying process's pipes close a moment before its exit can be waited for: a child whose output
# ended is given this long to exit (it is killed after that) before its file's error is written.
EXIT_WAIT_S = 5.0
IDLE_EXIT_S = 20.0  # a child with no job for this long exits...
IDLE_REUSE_S = 10.0  # ...so this process hands jobs only to children idle for less than this


# glibc's malloc in the decoder child. By default it maps each large NumPy temporary afresh and
# hands freed memory straight back to the kernel, so every image's arrays (a 500x375 photo's blur
# score allocates a few MB) fault their pages in again: ~650 page faults per image, ~20% of the
# child's CPU time on small JPEGs (benchmarks/probe_parts.py, "decoder child" rows). Served from
# the heap and kept up to the trim threshold, the pages are reused; the scan's peak memory moves
# a few percent (benchmarks/scan.py --memory). Other C libraries (musl, macOS) ignore these variables.
DECODER_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(128 << 20)}


def _child_env() -> dict[str, str]:
    """The decoder child's environment: `DECODER_MALLOC`, and one BLAS thread (the child needs
    none, and idle BLAS threads reserve address space)."""
    return {**os.environ, **DECODER_MALLOC, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@dataclass(frozen=True)
class DecodeSettings:
    """How the decoders treat a file: the `[scan]` settings that the scan's and embed's tasks carry
    (`of`, by name), once."""

    decode_size: int
    max_pixels: int
    background: str
    isolate: bool  # in a child process, within `timeout_s` and `max_memory_mb`
    timeout_s: float
    max_memory_mb: int
    structure_checks: bool
    fetch_batch: int  # files of a remote source fetched at once (`Source.read_many`)

    @classmethod
    def of(cls, scan: ScanConfig, src: str) -> DecodeSettings:
        """`scan`'s settings for decoding SRC's files (never isolated from memory://, which a child
        process cannot see)."""
        settings = cls(**{f.name: getattr(scan, f.name) for f in dataclasses.fields(cls)})
        return dataclasses.replace(settings, isolate=scan.isolate and not src.startswith("memory://"))


@dataclass(frozen=True)
class DecodeJob:
    src: str
    paths: tuple[str, ...]
    settings: DecodeSettings
    pixels: int = 0  # > 0: decode to (pixels, pixels, 3) uint8 RGB instead of probing


def _widen_pipe(fd: int) -> None:
    """Let the child run ahead of the reader (Linux: pipe buffer up to 1 MiB)."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except OSError:
        pass


def _send(stream: IO[bytes], obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes | None:
    """n bytes from fd, or None when the deadline passes first; EOFError when the pipe ends first."""
    chunks, got = [], 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
        chunk = os.read(fd, n - got)
        if not chunk:
            raise EOFError(f"the pipe ended after {got} of {n} bytes")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _receive(fd: int, deadline: float | None) -> Any:
    """The next message on fd, or None when the deadline passes first; EOFError when the pipe ends."""
    head = _read_exact(fd, _HEADER.size, deadline)
    if head is None:
        return None
    body = _read_exact(fd, _HEADER.unpack(head)[0], deadline)
    return None if body is None else pickle.loads(body)


def decode_file(data: bytes | OSError, job: DecodeJob) -> tuple[dict[str, Any], bytes | None, int | None]:
    """(facts, thumbnail or pixels, size in bytes) of one source file's bytes (`Source.read_many`);
    a read error becomes facts."""
    from curate.codes import ErrorCode, Status
    from curate.imaging.probe import probe

    if isinstance(data, FileNotFoundError):
        return ({"status": Status.ERROR.value, "error_code": ErrorCode.VANISHED.value,
                 "error_message": f"file vanished during the scan: {data}"}, None, None)
    if isinstance(data, OSError):
        return ({"status": Status.ERROR.value, "error_code": ErrorCode.UNREADABLE.value,
                 "error_message": f"{type(data).__name__}: {data}"}, None, None)
    if job.pixels:
        return (*_pixels(data, job), len(data))
    s = job.settings
    facts, thumb = probe(data, decode_size=s.decode_size, max_pixels=s.max_pixels, background=s.background,
                         structure_checks=s.structure_checks)
    return facts, thumb, len(data)


def _pixels(data: bytes, job: DecodeJob) -> tuple[dict[str, Any], bytes | None]:
    """({"status": "ok"}, the RGB bytes of a job.pixels square), or the error facts."""
    from curate.codes import ErrorCode, Status
    from curate.imaging.pixels import square_rgb

    try:
        return {"status": Status.OK.value}, square_rgb(data, job.pixels, job.settings.background).tobytes()
    except Exception as exc:  # noqa: BLE001  (a file that changed since the scan is reported, not raised)
        return {"status": Status.ERROR.value, "error_code": ErrorCode.CORRUPT.value,
                "error_message": f"{type(exc).__name__}: {exc}"[:500]}, None


def _child() -> None:
    """The child's loop: one job in, one result per path out."""
    import resource

    import cv2

    import curate.imaging.pixels  # noqa: F401  (imported before the memory cap applies)
    import curate.imaging.probe  # noqa: F401
    from curate.codes import ErrorCode, Status

    # The scan runs one child per core: OpenCV's own worker threads (the blur score's passes) only
    # contend with the other children, and their waits cost CPU (benchmarks/probe_parts.py).
    cv2.setNumThreads(1)
    # Ctrl-C reaches the whole terminal's process group: stopping is the parent's to decide, and
    # this child ends when the parent's end of its pipes closes (below)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    job: DecodeJob | None = _receive(sys.stdin.fileno(), None)
    assert job is not None
    limit = job.settings.max_memory_mb * 2**20  # every later job has the same settings (`_IDLE`'s key)
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    if hard != resource.RLIM_INFINITY:  # the machine's own cap is stricter: the child cannot raise it
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    while job is not None:
        for _path, data in Source(job.src).read_many(job.paths, job.settings.fetch_batch):
            try:
                result = decode_file(data, job)
            except MemoryError:
                result = ({"status": Status.ERROR.value, "error_code": ErrorCode.MEMORY_LIMIT.value,
                           "error_message": f"decoding needed more than {job.settings.max_memory_mb} MB"}, None, None)
            try:
                _send(sys.stdout.buffer, result)
            except BrokenPipeError:  # the parent has gone (interrupted, killed): nobody reads the rest
                os._exit(0)
        try:  # the next job, unless none comes within IDLE_EXIT_S or the parent has gone
            job = _receive(sys.stdin.fileno(), time.monotonic() + IDLE_EXIT_S)
        except EOFError:
            job = None


Result = tuple[dict[str, Any], bytes | None, int | None]  # facts, thumbnail or pixels, size in bytes


def _no_result(child: subprocess.Popen[bytes], ended: bool, timeout_s: float) -> dict[str, Any]:
    """The error facts of the file `child` gave no result for: `decoder_crashed` when its output
    `ended` (waited on for up to EXIT_WAIT_S, then killed) or it has exited, else `timeout` (the
    deadline passed while it was alive)."""
    from curate.codes import ErrorCode, Status

    if ended:
        try:
            child.wait(EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    if child.poll() is None:
        code, message = ErrorCode.TIMEOUT, f"decoding took longer than {timeout_s:g}s"
    else:
        code, message = ErrorCode.DECODER_CRASHED, f"the decoder process died (exit {child.returncode})"
    return {"status": Status.ERROR.value, "error_code": code.value, "error_message": message}


ChildKey = tuple[DecodeSettings, tuple[tuple[str, str], ...]]  # a job's settings, the child's environment


class _IdleChildren:
    """Decoder children of this process that finished their job and wait for another, by what they
    were started with (settings and environment); each with the time it went idle. At most
    `limit` are kept (the oldest is closed first); the rest are closed when this process exits."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.lock = threading.Lock()
        self.waiting: list[tuple[ChildKey, float, subprocess.Popen[bytes]]] = []

    def take(self, key: ChildKey) -> subprocess.Popen[bytes] | None:
        """A live child started with `key`, idle for less than IDLE_REUSE_S, or None."""
        with self.lock:
            for i, (k, since, child) in enumerate(self.waiting):
                if k == key and time.monotonic() - since < IDLE_REUSE_S and child.poll() is None:
                    del self.waiting[i]
                    return child
        return None

    def give(self, key: ChildKey, child: subprocess.Popen[bytes]) -> None:
        with self.lock:
            now = time.monotonic()
            self.waiting.append((key, now, child))
            keep = [w for w in self.waiting if now - w[1] < IDLE_REUSE_S][-self.limit:]
            closing = [w[2] for w in self.waiting if w not in keep]
            self.waiting = keep
        for old in closing:
            _end(old, gently=True)

    def close_all(self) -> None:
        with self.lock:
            children, self.waiting = [c for _k, _s, c in self.waiting], []
        for child in children:
            _end(child, gently=True)


def _end(child: subprocess.Popen[bytes], *, gently: bool) -> None:
    """End a child and wait for it: `gently`, an idle one, by ending its input (it exits; killed if
    it has not within 0.5 s); otherwise killed at once."""
    if gently:
        with contextlib.suppress(BrokenPipeError):  # a dead child's unsent bytes
            if child.stdin:
                child.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(0.5)
    if child.poll() is None:
        child.kill()
    child.wait()
    for stream in (child.stdin, child.stdout):
        if stream:
            with contextlib.suppress(BrokenPipeError):  # unsent bytes for a dead child
                stream.close()


_IDLE = _IdleChildren(limit=max(2, os.cpu_count() or 1))
# at exit, as multiprocessing's own exit runs it: also in a Dask worker process, which ends with
# os._exit (atexit's handlers do not run there); a closed child is waited for, so its CPU time counts
multiprocessing.util.Finalize(None, _IDLE.close_all, exitpriority=0)


def close_idle() -> None:
    """End this process's idle decoder children now (and wait for them)."""
    _IDLE.close_all()


def sandboxed(job: DecodeJob) -> Iterator[Result]:
    """Results for job.paths, in order, each decoded within the job's `timeout_s` in a child process
    (an idle one of this process started with the same settings, or a new one)."""
    timeout_s = job.settings.timeout_s
    env = _child_env()
    key: ChildKey = (job.settings, tuple(sorted(env.items())))
    remaining = list(job.paths)
    while remaining:
        child = _IDLE.take(key)
        if child is None:
            child = subprocess.Popen([sys.executable, "-m", "curate.imaging.sandbox"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env)
            assert child.stdout is not None
            _widen_pipe(child.stdout.fileno())
        done = False
        try:
            assert child.stdin is not None and child.stdout is not None
            with contextlib.suppress(BrokenPipeError):  # a child already dead: its output has ended too
                _send(child.stdin, dataclasses.replace(job, paths=tuple(remaining)))
            grace = STARTUP_S
            while remaining:
                ended = False
                try:
                    result = _receive(child.stdout.fileno(), time.monotonic() + timeout_s + grace)
                except EOFError:
                    result, ended = None, True
                grace = 0.0
                if result is None:
                    yield _no_result(child, ended, timeout_s), None, None
                    remaining.pop(0)
                    break
                remaining.pop(0)
                done = not remaining  # every result of the job read: the child waits for the next
                yield result
        finally:
            if done and child.poll() is None:
                _IDLE.give(key, child)
            else:  # timed out, died, or its results were left unread (the consumer stopped)
                _end(child, gently=False)


def decode_all(job: DecodeJob, decoders: int, ahead: int = 256) -> Iterator[tuple[str, Result]]:
    """(path, result) for every path of `job`, as the results come: from `decoders` sandboxed
    children side by side, each on a contiguous run of the paths (a run is at least
    MIN_PATHS_PER_DECODER paths), or in this process when the job's settings do not `isolate`. At most `ahead` results
    wait to be taken, so a slow consumer bounds the memory; leaving the loop early stops the
    children."""
    if not job.settings.isolate:
        for path, data in Source(job.src).read_many(job.paths, job.settings.fetch_batch):
            yield path, decode_file(data, job)
        return
    runs = max(1, min(decoders, len(job.paths) // MIN_PATHS_PER_DECODER))
    step = -(-len(job.paths) // runs) if job.paths else 1
    jobs = [dataclasses.replace(job, paths=job.paths[i:i + step]) for i in range(0, len(job.paths), step)]
    if len(jobs) <= 1:
        for one in jobs:
            yield from zip(one.paths, sandboxed(one))
        return
    results: queue.Queue[Any] = queue.Queue(maxsize=ahead)
    stop = threading.Event()

    def feed(one: DecodeJob) -> None:  # the threads only wait on the children's pipes
        try:
            for item in zip(one.paths, sandboxed(one)):
                while not stop.is_set():
                    try:
                        results.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return  # closing the generator kills its child
        except BaseException as exc:  # noqa: BLE001  (handed to the consumer, which raises it)
            results.put(exc)
        finally:
            results.put(None)

    threads = [threading.Thread(target=feed, args=(one,), daemon=True) for one in jobs]
    for t in threads:
        t.start()
    finished = 0
    try:
        while finished < len(jobs):
            item = results.get()
            if item is None:
                finished += 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        stop.set()
        while any(t.is_alive() for t in threads):
            with contextlib.suppress(queue.Empty):
                results.get(timeout=0.1)


if __name__ == "__main__":
    _child()
