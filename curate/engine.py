"""Where the parallel work runs: a Dask cluster (local processes or an existing scheduler).

A task is a partition of thousands of files, never one image. A job of one partition runs
in-process: there is nothing to parallelise and no cluster is worth starting for it. Sources
or outputs on `memory://` also run in-process, since worker processes cannot see the
driver's memory.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Any, Callable, Iterator, Sequence

from curate.config import EngineConfig
from curate.errors import CurateError

log = logging.getLogger(__name__)


@contextlib.contextmanager
def dask_client(cfg: EngineConfig, n_tasks: int, urls: Sequence[str] = ()) -> Iterator[Any]:
    """A `distributed.Client` for `n_tasks` tasks, or None to run them in-process.

    Uses `cfg.scheduler` (or DASK_SCHEDULER_ADDRESS) when set, else a local cluster of
    `cfg.workers` processes (0 = one per core). The local cluster is closed on exit.
    """
    address = cfg.scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS", "")
    in_memory = any(str(u).startswith("memory://") for u in urls)
    if in_memory or (n_tasks <= 1 and not address):
        yield None
        return
    from distributed import Client, LocalCluster

    if address:
        try:
            client = Client(address, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise CurateError(f"cannot reach the Dask scheduler at {address}: {exc}") from exc
        try:
            yield client
        finally:
            client.close()
        return
    workers = min(cfg.workers or os.cpu_count() or 1, max(n_tasks, 1))
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        yield client


def run_tasks(client: Any, fn: Callable[..., Any], items: Sequence[Any], *, label: str, **kwargs: Any) -> list[Any]:
    """Call `fn(item, **kwargs)` for every item, on `client` or in-process; results in order.

    Shows a progress bar on a terminal. A task that raises fails the whole job, naming the
    task; `fn` itself turns bad input into rows, so this only happens for real failures.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    results: list[Any] = [None] * len(items)
    progress = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        disable=not sys.stderr.isatty(), transient=True)
    with progress:
        bar = progress.add_task(label, total=len(items))
        if client is None:
            for i, item in enumerate(items):
                results[i] = fn(item, **kwargs)
                progress.advance(bar)
            return results
        from distributed import as_completed

        futures = client.map(fn, items, pure=False, **kwargs)
        index = {f.key: i for i, f in enumerate(futures)}
        for future in as_completed(futures):
            i = index[future.key]
            try:
                results[i] = future.result()
            except Exception as exc:
                for f in futures:
                    f.cancel()
                raise RuntimeError(f"{label}: task {i} failed: {type(exc).__name__}: {exc}") from exc
            progress.advance(bar)
    return results
