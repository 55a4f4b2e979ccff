"""curate: scan, validate, deduplicate, rebalance and shard image collections for training.

The library is the product; the `curate` CLI and the Prefect flows in `flows/` only parse,
call these functions and report. Importing `curate` does no work.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Config": "curate.config",
    "load_config": "curate.config",
    "scan": "curate.scan",
    "run_pipeline": "curate.pipeline",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'curate' has no attribute {name!r}")
