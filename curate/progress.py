"""Progress of long work, reported to whatever displays it.

The library wraps each loop over partitions or batches in `task(label, total)` and calls the
`advance` it yields; what the user sees depends on the reporter in use: by default a transient
bar on stderr when stderr is a terminal (nothing otherwise), and inside `curate run` the run's own
display (`reporting_to`). Importing this module does no work.
"""
from __future__ import annotations

import contextlib
import sys
from contextvars import ContextVar
from typing import Callable, Iterator, Protocol

Advance = Callable[[int], None]  # called with how many items were done


class Reporter(Protocol):
    def task(self, label: str, total: int) -> contextlib.AbstractContextManager[Advance]: ...


class TerminalBar:
    """A transient rich progress bar on stderr, shown only when stderr is a terminal."""

    @contextlib.contextmanager
    def task(self, label: str, total: int) -> Iterator[Advance]:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        progress = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            disable=not sys.stderr.isatty(), transient=True)
        with progress:
            bar = progress.add_task(label, total=total)
            yield lambda n: progress.advance(bar, n)


_reporter: ContextVar[Reporter | None] = ContextVar("curate_progress_reporter", default=None)


def task(label: str, total: int) -> contextlib.AbstractContextManager[Advance]:
    """Report the progress of `total` items of work named `label` (see module doc)."""
    return (_reporter.get() or TerminalBar()).task(label, total)


@contextlib.contextmanager
def reporting_to(reporter: Reporter) -> Iterator[None]:
    """Send every `task` in this block (in this thread) to `reporter`."""
    token = _reporter.set(reporter)
    try:
        yield
    finally:
        _reporter.reset(token)
