"""Where the parallel work runs: a Dask cluster (local processes or an existing scheduler).

A task is a partition of thousands of files, never one image. A job of one partition runs
in-process: there is nothing to parallelise and no cluster is worth starting for it. Sources
or outputs on `memory://` also run in-process, since worker processes cannot see the
driver's memory. Tasks whose work happens in child processes of their own (the scan's
sandboxed decoders) or that wait on I/O (its listing) can run in-process on threads instead of
a local cluster (`run_tasks`'s `threads`; the scan chooses it with `local_threads`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import queue
import threading
from typing import Any, Callable, Iterator, Sequence

from curate import progress, storage
from curate.config import EngineConfig
from curate.errors import CurateError, PartitionFailed

log = logging.getLogger(__name__)


@contextlib.contextmanager
def dask_client(cfg: EngineConfig, n_tasks: int, urls: Sequence[str] = (), worth_a_cluster: bool = True
                ) -> Iterator[Any]:
    """A `distributed.Client` for `n_tasks` tasks, or None to run them in-process.

    Uses `cfg.scheduler` (or DASK_SCHEDULER_ADDRESS) when set, else the `shared_cluster` of the
    run when there is one, else a local cluster of `cfg.workers` processes (0 = one per core),
    closed on exit; with no scheduler, a single task or work too small to repay a cluster's
    start-up (`worth_a_cluster`) runs in-process.
    """
    address = scheduler_address(cfg)
    in_memory = any(str(u).startswith("memory://") for u in urls)
    if in_memory or (not address and (n_tasks <= 1 or not worth_a_cluster)):
        yield None
        return
    from distributed import Client

    quiet_distributed()
    if not address and _shared is not None:
        address = _shared.address()
    if address:
        try:
            client = Client(address, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise CurateError(f"cannot reach the Dask scheduler at {address}: {exc}") from exc
        try:
            scrub_worker_logs(client)
            yield client
        finally:
            client.close()
        return
    local = _LazyCluster(dataclasses.replace(cfg, workers=min(cfg.workers or os.cpu_count() or 1, max(n_tasks, 1))))
    try:
        with Client(local.address()) as client:
            scrub_worker_logs(client)
            yield client
    finally:
        local.close()


def scheduler_address(cfg: EngineConfig) -> str:
    """The existing Dask scheduler to run on: `cfg.scheduler`, else DASK_SCHEDULER_ADDRESS; '' for none."""
    return cfg.scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS", "")


LOCAL_THREADS_MAX = 8  # the most threads `local_threads` gives: beyond, the driver's own share saturates a core


def local_threads(cfg: EngineConfig) -> int:
    """Threads for tasks that wait on child processes of their own (the scan's decoders) or on
    I/O (its listing) to run in-process rather than on a local cluster, or 0 for the cluster (a
    scheduler is configured, or more than LOCAL_THREADS_MAX workers are asked for).

    A local cluster then only adds a process between the driver and each decoder: at 20,000 small
    photos on 2 cores its worker processes cost ~0.3 ms of CPU per image and ~3 s to start, against
    ~0.1 ms per image in the driver's threads (benchmarks/RESULTS.md, "## Scan", notes of
    2026-12-07). At 0.1 ms per image against the decoders' ~1.9 ms, 8 threads keep the driver
    under half of one core (one interpreter lock); more workers go to the local cluster's processes.
    """
    workers = cfg.workers or os.cpu_count() or 1
    return 0 if scheduler_address(cfg) or workers > LOCAL_THREADS_MAX else workers


def close_local_cluster() -> None:
    """Close the run's shared local cluster if an earlier job started it, before work on the
    driver's threads would leave its processes idle; the next job that needs one starts it again."""
    if _shared is not None:
        _shared.close()


def scrub_worker_logs(client: Any) -> None:
    """Make the log records of every worker of `client`'s cluster lose the credentials of the URLs
    in them (`curate.storage.scrub_log_records`), as the driver's do. A worker that joins later
    (an adaptive cluster) logs as its own environment says."""
    client.run(storage.scrub_log_records)


@contextlib.contextmanager
def shared_cluster(cfg: EngineConfig) -> Iterator[EngineConfig]:
    """One Dask cluster for a whole multi-stage run. An existing scheduler (config or
    DASK_SCHEDULER_ADDRESS) is used as it is: the `EngineConfig` yielded points at it. Otherwise
    a local cluster of worker processes is started when the first job in the block is worth one
    (`dask_client`), reused by every later job, and closed on exit; a run whose jobs are all
    small (sample_data) starts none and runs in-process, as `curate run` does. Inside another
    such block (a stage's jobs in a flow run), the enclosing block's cluster is the one used."""
    global _shared
    address = scheduler_address(cfg)
    if address:
        yield dataclasses.replace(cfg, scheduler=address)
        return
    if _shared is not None:
        yield cfg
        return
    _shared = _LazyCluster(cfg)
    try:
        yield cfg
    finally:
        lazy, _shared = _shared, None
        lazy.close()


class _LazyCluster:
    """A local cluster started on first use (`address()`), closed by `close()`. A module global,
    not a context variable: Prefect may run a flow's tasks in another thread."""

    def __init__(self, cfg: EngineConfig) -> None:
        self.cfg = cfg
        self.cluster: Any = None

    def address(self) -> str:
        if self.cluster is None:
            from distributed import LocalCluster

            quiet_distributed()
            self.cluster = LocalCluster(n_workers=self.cfg.workers or os.cpu_count() or 1, threads_per_worker=1,
                                        processes=True, host="127.0.0.1", dashboard_address=None,
                                        silence_logs=logging.ERROR)
        return str(self.cluster.scheduler_address)

    def close(self) -> None:
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None


_shared: _LazyCluster | None = None


def quiet_distributed() -> None:
    """Distributed logs at INFO by default, in this process and in every worker process; keep
    it to warnings unless the user asked for debug output."""
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("distributed").setLevel(logging.WARNING)
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")  # read by worker processes


def describe(item: Any) -> str:
    """A partition's name for messages: its output file, or its index."""
    for attr in ("rel", "part"):
        if hasattr(item, attr):
            return str(getattr(item, attr))
    return f"partition {getattr(item, 'index', '?')}"


@dataclasses.dataclass(frozen=True)
class _Refused:
    """A partition's `CurateError` (bad input, a full disk), returned rather than raised so that
    Dask does not retry it: no retry can mend it."""

    error: CurateError


def _refusals_returned(fn: Callable[..., Any], item: Any, **kwargs: Any) -> Any:
    try:
        return fn(item, **kwargs)
    except CurateError as exc:
        return _Refused(exc)


def _call_with_retries(fn: Callable[..., Any], item: Any, retries: int, **kwargs: Any) -> Any:
    for attempt in range(retries + 1):
        try:
            return fn(item, **kwargs)
        except CurateError:
            raise  # a mistake or a full disk: retrying cannot help
        except Exception as exc:  # retried, then reported with the partition's name
            if attempt == retries:
                raise PartitionFailed(f"{describe(item)} failed after {retries + 1} attempts: "
                                      f"{type(exc).__name__}: {exc}") from exc
            log.warning("%s failed (%s), retrying", describe(item), exc)


def run_tasks(client: Any, fn: Callable[..., Any], items: Sequence[Any], *, label: str, retries: int = 2,
              threads: int = 1, **kwargs: Any) -> list[Any]:
    """Call `fn(item, **kwargs)` for every item, on `client` or in-process (on `threads` threads,
    for tasks whose work is in child processes of their own); results in order.

    Reports progress (`curate.progress`). A partition that raises is retried `retries` times (a
    transient failure); one that keeps failing fails the job with `PartitionFailed`, naming
    the partition. A `CurateError` (bad input, a full disk) is raised as it is, without retries.
    `fn` itself turns bad images into rows, so retries are for real failures. On a cluster, each
    of `kwargs` is sent to every worker once and shared by its tasks (passed in each task, a large
    one, such as a table of every duplicate cluster's members, was held once per task until the
    job ended: 4 GB in one worker at 1M rows).
    """
    results: list[Any] = [None] * len(items)
    with progress.task(label, len(items)) as advance:
        if client is None and threads > 1 and len(items) > 1:
            _run_on_threads(fn, items, results, retries, threads, advance, kwargs)
            return results
        if client is None:
            for i, item in enumerate(items):
                results[i] = _call_with_retries(fn, item, retries, **kwargs)
                advance(1)
            return results
        from distributed import as_completed

        shared = {name: client.scatter(value, broadcast=True, hash=False) for name, value in kwargs.items()}
        futures = client.map(functools.partial(_refusals_returned, fn), items, pure=False, retries=retries, **shared)
        index = {f.key: i for i, f in enumerate(futures)}
        for future in as_completed(futures):
            i = index[future.key]
            try:
                results[i] = future.result()
            except Exception as exc:
                for f in futures:
                    f.cancel()
                raise PartitionFailed(f"{label}: {describe(items[i])} failed after {retries + 1} attempts: "
                                      f"{type(exc).__name__}: {exc}") from exc
            if isinstance(results[i], _Refused):
                for f in futures:
                    f.cancel()
                raise results[i].error
            advance(1)
    return results


def _run_on_threads(fn: Callable[..., Any], items: Sequence[Any], results: list[Any], retries: int, threads: int,
                    advance: Callable[[int], None], kwargs: dict[str, Any]) -> None:
    """`run_tasks` in-process on `threads` daemon threads. The first task to fail for good stops
    the tasks not yet started, waits for the running ones (no task writes to OUT after the job
    has failed), and is raised. Ctrl-C (or any BaseException in the caller) waits for nothing:
    the running tasks end with the process, and their decoder children with their pipes."""
    todo: queue.SimpleQueue[int] = queue.SimpleQueue()
    done: queue.SimpleQueue[tuple[int, Any, BaseException | None]] = queue.SimpleQueue()
    for i in range(len(items)):
        todo.put(i)
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            try:
                i = todo.get_nowait()
            except queue.Empty:
                return
            try:
                done.put((i, _call_with_retries(fn, items[i], retries, **kwargs), None))
            except BaseException as exc:  # noqa: BLE001  (handed to the caller, which raises it)
                done.put((i, None, exc))

    workers = [threading.Thread(target=work, name=f"curate-task-{n}", daemon=True)
               for n in range(min(threads, len(items)))]
    for worker in workers:
        worker.start()
    try:
        for _ in items:
            while True:
                try:  # a timeout keeps the wait open to Ctrl-C
                    i, result, failure = done.get(timeout=0.5)
                    break
                except queue.Empty:
                    continue
            if failure is not None:
                raise failure
            results[i] = result
            advance(1)
    except Exception:
        stop.set()
        for worker in workers:
            worker.join()
        raise
    finally:
        stop.set()
