"""curate: scan, validate, deduplicate, rebalance and shard image collections for training.

The library is the product; the `curate` CLI and the Prefect flows in `flows/` only parse,
call these functions and report. Importing `curate` does no work.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# Names only, no submodule's name: `curate.scan` is the scan stage's module, so the stage
# functions are reached through `run_stage(name, src, out, cfg)`.
_EXPORTS = {
    "Config": "curate.config",
    "load_config": "curate.config",
    "run_stage": "curate.pipeline",
    "run_pipeline": "curate.pipeline",
    "STAGES": "curate.stages",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'curate' has no attribute {name!r}")
