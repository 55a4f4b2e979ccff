"""Checks of the `[augment]` settings, run before any work (no torch needed to run them)."""
from __future__ import annotations

import re

from curate.augment.ops import resolve_ops
from curate.augment.variants import check_classes
from curate.config import Config, parse_size
from curate.errors import ConfigError

_DEVICE = re.compile(r"auto|cpu|cuda(?::(\d+))?")


def device_index(name: str) -> int | None:
    """The N of `cuda:N` (0 for `cuda`), None for `auto`/`cpu`; ConfigError for anything else."""
    match = _DEVICE.fullmatch(name)
    if not match:
        raise ConfigError(f"augment.device={name!r} is not allowed; use auto, cpu, cuda or cuda:N")
    return int(match.group(1) or 0) if name.startswith("cuda") else None


def resolve(cfg: Config) -> None:
    """Fail on a bad op, parameter, device name, class choice or shard size, naming what is allowed.
    Whether the device is present is checked when the stage starts (`stage.resolve_device`)."""
    resolve_ops(cfg.augment.ops, cfg.augment.size)
    device_index(cfg.augment.device)
    check_classes(cfg)
    parse_size(cfg.shard.shard_size)
