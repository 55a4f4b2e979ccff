"""The keep policy: which member of a duplicate cluster is kept, as ordered criteria.

Each criterion is a registered sort key (lower is better). The configured order decides; the
first criterion that separates the winner from the runner-up is recorded as the reason.
"""
from __future__ import annotations

from typing import Any, Callable, Protocol

import numpy as np
import pandas as pd

from curate.imaging.formats import extension_matches
from curate.registry import Registry


class Row(Protocol):
    """A row's values by column name (a dict, or one row of a frame's columns)."""

    def __getitem__(self, name: str) -> Any: ...

CRITERIA: Registry[tuple[str, Callable[[Row], Any]]] = Registry("keep criterion")

SPLIT_RANK = {"test": 0, "val": 1, "train": 2}
LOSSLESS = {"PNG", "TIFF", "BMP", "PPM", "GIF"}


def _criterion(name: str, reason: str):
    def wrap(fn: Callable[[Row], Any]) -> Callable[[Row], Any]:
        CRITERIA.add(name, (reason, fn))
        return fn

    return wrap


@_criterion("split", "held-out split: a test/val member is never dropped for a train copy")
def _split(row: Row) -> int:
    return SPLIT_RANK.get(row["split"], 3)


@_criterion("resolution", "highest resolution")
def _resolution(row: Row) -> int:
    return -int(row["width"] or 0) * int(row["height"] or 0)


@_criterion("file_size", "least compressed (largest file)")
def _file_size(row: Row) -> int:
    return -int(row["size_bytes"] or 0)


@_criterion("format", "original format (extension matches the bytes, lossless over lossy)")
def _format(row: Row) -> tuple[int, int]:
    fmt = row["format"]
    mismatch = int(not extension_matches(str(fmt), row["extension"]))
    return mismatch, int(fmt not in LOSSLESS)


@_criterion("path", "stable tie-break (path)")
def _path(row: Row) -> str:
    return row["path"]


class _Column:
    """Row `i` of a frame's columns, read by name as a row dict would be (no dict per row)."""

    __slots__ = ("columns", "i")

    def __init__(self, columns: dict[str, np.ndarray], i: int) -> None:
        self.columns, self.i = columns, i

    def __getitem__(self, name: str) -> Any:
        return self.columns[name][self.i]


def policy_rank(rows: pd.DataFrame, order: list[str]) -> np.ndarray:
    """Each row's position when all `rows` (sorted by path, so that the row order is the path
    tie-break) are sorted best-first under `order` (0 = best). Each criterion becomes one array of
    codes in its own order, and the rows are sorted by those arrays (memory: 8 bytes per row and
    criterion, not a row dict or key tuple per row)."""
    columns = {c: rows[c].to_numpy() for c in rows.columns}
    codes = []
    for name in order:
        fn = CRITERIA.get(name)[1]
        values = [fn(_Column(columns, i)) for i in range(len(rows))]
        code = {v: n for n, v in enumerate(sorted(set(values)))}
        codes.append(np.fromiter((code[v] for v in values), dtype=np.int64, count=len(values)))
    position = np.arange(len(rows))
    ranks = np.empty(len(rows), dtype=np.int64)
    ranks[np.lexsort([position, *reversed(codes)])] = position
    return ranks


def reason(winner: Row, runner_up: Row | None, order: list[str]) -> str:
    """Why the keep policy prefers `winner` to `runner_up`: the first criterion that separates them."""
    if runner_up is None:
        return "only member"
    names = [*order, "path"]
    for name in names:
        why, fn = CRITERIA.get(name)
        if fn(winner) != fn(runner_up):
            return why
    return "stable tie-break (path)"
