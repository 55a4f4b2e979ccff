"""The keep policy: which member of a duplicate cluster is kept, as ordered criteria.

Each criterion is a registered sort key (lower is better). The configured order decides; the
first criterion that separates the winner from the runner-up is recorded as the reason.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from curate.imaging.formats import extension_matches
from curate.registry import Registry

Row = dict[str, Any]

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


def sort_key(order: list[str]) -> Callable[[Row], tuple[Any, ...]]:
    """The key that sorts rows best-first under `order` (the path breaks every tie)."""
    keys = [CRITERIA.get(name)[1] for name in order] + [CRITERIA.get("path")[1]]
    return lambda row: tuple(fn(row) for fn in keys)


def policy_rank(rows: list[Row], order: list[str]) -> np.ndarray:
    """Each row's position when all `rows` are sorted best-first under `order` (0 = best)."""
    key = sort_key(order)
    ranks = np.empty(len(rows), dtype=np.int64)
    ranks[sorted(range(len(rows)), key=lambda i: key(rows[i]))] = np.arange(len(rows))
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
