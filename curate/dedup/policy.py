"""The keep policy: which member of a duplicate cluster is kept, as ordered criteria.

Each criterion is a registered sort key (lower is better). The configured order decides; the
first criterion that separates the winner from the runner-up is recorded as the reason.
"""
from __future__ import annotations

from typing import Any, Callable

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


def rank(members: list[Row], order: list[str]) -> tuple[list[Row], str]:
    """Members best-first under `order`, and the reason the first one wins."""
    keys = [CRITERIA.get(name) for name in order] + [CRITERIA.get("path")]

    def key(row: Row) -> tuple:
        return tuple(fn(row) for _reason, fn in keys)

    ranked = sorted(members, key=key)
    if len(ranked) < 2:
        return ranked, "only member"
    best, second = key(ranked[0]), key(ranked[1])
    for (reason, _fn), a, b in zip(keys, best, second):
        if a != b:
            return ranked, reason
    return ranked, "stable tie-break (path)"
