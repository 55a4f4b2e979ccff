"""The engine: partition retries, a named failure, and no retry of a user-facing error."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from curate.engine import run_tasks
from curate.errors import CurateError, PartitionFailed


@dataclass(frozen=True)
class Flaky:
    index: int
    marker: str
    failures: int  # fail this many times, then succeed


def flaky(task: Flaky) -> int:
    counter = Path(task.marker)
    seen = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(seen + 1))
    if seen < task.failures:
        raise OSError(f"transient failure {seen + 1}")
    return task.index


@pytest.mark.parametrize("threads", [1, 3])
def test_transient_failures_are_retried(tmp_path, threads):
    tasks = [Flaky(i, str(tmp_path / f"m{i}"), failures=i % 3) for i in range(7)]
    assert run_tasks(None, flaky, tasks, label="test", retries=2, threads=threads) == list(range(7))


@pytest.mark.parametrize("threads", [1, 3])
def test_a_partition_that_keeps_failing_fails_the_run_by_name(tmp_path, threads):
    tasks = [Flaky(0, str(tmp_path / "a"), 0), Flaky(7, str(tmp_path / "b"), failures=10)]
    with pytest.raises(PartitionFailed, match=r"partition 7 failed after 3 attempts: OSError: transient failure 3"):
        run_tasks(None, flaky, tasks, label="test", retries=2, threads=threads)


@dataclass(frozen=True)
class Slow:
    index: int
    marker: str


def slow_or_refusing(task: Slow) -> int:
    if task.index == 0:
        raise CurateError("out of disk space while writing part-00000.parquet")
    time.sleep(0.2)
    Path(task.marker).write_text("ran")
    return task.index


def test_on_threads_a_refused_task_stops_the_tasks_not_started(tmp_path):
    tasks = [Slow(i, str(tmp_path / f"m{i}")) for i in range(20)]
    with pytest.raises(CurateError, match="out of disk space"):
        run_tasks(None, slow_or_refusing, tasks, label="test", retries=2, threads=2)
    assert len(list(tmp_path.glob("m*"))) <= 2  # at most the one running beside it, and the next it took


@dataclass(frozen=True)
class Refusing:
    index: int
    marker: str


def refusing(task: Refusing) -> int:
    counter = Path(task.marker)
    counter.write_text(str(int(counter.read_text()) + 1) if counter.exists() else "1")
    raise CurateError("out of disk space while writing part-00000.parquet")


def test_a_curate_error_is_raised_as_it_is_without_retries(tmp_path):
    with pytest.raises(CurateError, match="out of disk space") as caught:
        run_tasks(None, refusing, [Refusing(0, str(tmp_path / "n"))], label="test", retries=2)
    assert not isinstance(caught.value, PartitionFailed)
    assert (tmp_path / "n").read_text() == "1"


@pytest.mark.slow
def test_on_a_cluster_too_a_curate_error_is_not_retried(tmp_path):
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        with pytest.raises(CurateError, match="out of disk space") as caught:
            run_tasks(client, refusing, [Refusing(0, str(tmp_path / "n"))], label="test", retries=2)
    assert not isinstance(caught.value, PartitionFailed)
    assert (tmp_path / "n").read_text() == "1"


def worker_log_message(text: str) -> str:
    """`text` as a log record made on this worker shows it."""
    import logging

    return logging.getLogger("curate.test").makeRecord("curate.test", logging.INFO, __file__, 1, text, None,
                                                      None).getMessage()


def test_a_worker_logs_urls_without_their_credentials():
    from curate.config import EngineConfig
    from curate.engine import dask_client

    with dask_client(EngineConfig(workers=1), n_tasks=2) as client:
        shown = client.submit(worker_log_message, "reading http://user:pw-9d1e@host/x?sig=tok-55", pure=False).result()
    assert "pw-9d1e" not in shown and "tok-55" not in shown and "http://***@host/x?sig=***" in shown
