"""Work items of the partitioned passes over row-ordered scratch files (the hash search's map, the
out-of-core semantic search's assign), and the runner that core code uses when its caller gives
none: every task in this process, in order. A stage or a benchmark gives
`functools.partial(curate.engine.run_tasks, client)` instead, to run them on a Dask cluster.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

Runner = Callable[..., list[Any]]  # runner(fn, items, label=..., **kwargs) -> [fn(item, **kwargs) for item in items]


@dataclass(frozen=True)
class RowRange:
    """A task over rows lo:hi of a row-ordered scratch file (the `index`-th such range)."""

    index: int
    lo: int
    hi: int

    @property
    def rel(self) -> str:  # its name in `run_tasks` messages
        return f"rows {self.lo}:{self.hi}"


def row_ranges(n: int, size: int) -> list[RowRange]:
    """Rows 0:n in ranges of `size`, in order."""
    return [RowRange(k, lo, min(n, lo + size)) for k, lo in enumerate(range(0, n, size))]


def in_process(fn: Callable[..., Any], items: Sequence[Any], *, label: str, **kwargs: Any) -> list[Any]:
    """`fn(item, **kwargs)` for every item, here and in order (`label` names the pass elsewhere)."""
    return [fn(item, **kwargs) for item in items]
