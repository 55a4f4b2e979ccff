"""The engine: partition retries and a named failure."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from curate.engine import run_tasks
from curate.errors import PartitionFailed


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


def test_transient_failures_are_retried(tmp_path):
    tasks = [Flaky(i, str(tmp_path / f"m{i}"), failures=i) for i in range(3)]
    assert run_tasks(None, flaky, tasks, label="test", retries=2) == [0, 1, 2]


def test_a_partition_that_keeps_failing_fails_the_run_by_name(tmp_path):
    tasks = [Flaky(0, str(tmp_path / "a"), 0), Flaky(7, str(tmp_path / "b"), failures=10)]
    with pytest.raises(PartitionFailed, match=r"partition 7 failed after 3 attempts: OSError: transient failure 3"):
        run_tasks(None, flaky, tasks, label="test", retries=2)
