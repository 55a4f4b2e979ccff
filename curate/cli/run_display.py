"""What `curate run` shows: one line per stage, numbered against the stage count.

On a terminal, the running stage has a live bar (its partitions or batches, and how long it has
run) under the lines of the stages before it; when it finishes, the bar gives way to its line
(its headline, which says how long it took).
Elsewhere (CI logs, a pipe) the same lines are printed as they come, with no bar. Lines are
never wrapped: a terminal folds them, a log keeps them whole. After the last
stage, what to open next (the report, the FiftyOne app).
"""
from __future__ import annotations

import contextlib
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from curate.console import shown
from curate.progress import Advance
from curate.view import View


class RunDisplay:
    """A `curate.progress.Reporter` for a run of `stages`, and the run's lines."""

    def __init__(self, stages: list[str], console: Console) -> None:
        self.stages = stages
        self.console = console
        self.live = console.is_terminal
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=console, transient=True, disable=not self.live)
        self.current = ""
        self.row: TaskID | None = None  # the running stage's own row (a pulse and its elapsed time)
        self.next: list[str] = []

    def __enter__(self) -> RunDisplay:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()
        for line in self.next:
            self.console.print(shown(line), soft_wrap=True)

    def _number(self, name: str) -> str:
        return f"[{self.stages.index(name) + 1}/{len(self.stages)}]"

    def start(self, name: str) -> None:
        self.current = name
        self.row = self.progress.add_task(f"{self._number(name)} {name}", total=None)

    def finish(self, view: View) -> None:
        if self.row is not None:
            self.progress.remove_task(self.row)
            self.row = None
        self.progress.console.print(f"{self._number(view.stage)} [bold]{view.stage}[/bold]: {shown(view.headline)}",
                                    soft_wrap=True)
        self.next += view.next

    def skip(self, name: str, next_lines: list[str]) -> None:
        """A stage that is current: its line, and what to open from its last run."""
        self.progress.console.print(f"{self._number(name)} [bold]{name}[/bold]: current, skipped (--force reruns it)",
                                    soft_wrap=True)
        self.next += next_lines

    @contextlib.contextmanager
    def task(self, label: str, total: int) -> Iterator[Advance]:
        bar = self.progress.add_task(shown(f"{self._number(self.current)} {label}"), total=total)
        try:
            yield lambda n: self.progress.advance(bar, n)
        finally:
            self.progress.remove_task(bar)
