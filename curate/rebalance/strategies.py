"""Rebalancing strategies: each turns per-class counts into per-class target counts.

A strategy is one registered function `(counts, settings) -> targets`, with the check of the
settings it needs (run before any work); the planner then undersamples (targets below the
count) or oversamples (targets above it) each class.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from curate.config import RebalanceConfig
from curate.errors import ConfigError, CurateError
from curate.registry import Registry


@dataclass(frozen=True)
class StrategySettings:
    cap: int
    floor: int
    target: str  # uniform | sqrt | power:ALPHA | path to a CSV of class,count

    @classmethod
    def of(cls, settings: RebalanceConfig) -> StrategySettings:
        """The strategy parameters of a `[rebalance]` section (`RebalanceConfig`), by name."""
        return cls(**{f.name: getattr(settings, f.name) for f in dataclasses.fields(cls)})


Targets = Callable[[dict[str, int], StrategySettings], dict[str, int]]
Check = Callable[[StrategySettings], None]


@dataclass(frozen=True)
class Strategy:
    targets: Targets
    check: Check


STRATEGIES: Registry[Strategy] = Registry("strategy")


def _no_settings(s: StrategySettings) -> None:
    """Needs no setting."""


def strategy(name: str, check: Check = _no_settings) -> Callable[[Targets], Targets]:
    def wrap(fn: Targets) -> Targets:
        STRATEGIES.add(name, Strategy(fn, check))
        return fn

    return wrap


def needs(*keys: str) -> Check:
    """A check that each of `keys` (cap, floor) is set to at least 1, and a cap is not below the floor."""
    def check(s: StrategySettings) -> None:
        for key in keys:
            if getattr(s, key) < 1:
                raise ConfigError(f"rebalance.{key} must be at least 1 with this strategy (e.g. --{key} 100)")
        if {"cap", "floor"} <= set(keys) and s.cap < s.floor:
            raise ConfigError(f"rebalance.cap ({s.cap}) is below rebalance.floor ({s.floor})")

    return check


@strategy("none")
def _none(counts: dict[str, int], s: StrategySettings) -> dict[str, int]:
    """Keep everything that validation and dedup keep."""
    return dict(counts)


@strategy("cap", needs("cap"))
def _cap(counts: dict[str, int], s: StrategySettings) -> dict[str, int]:
    """At most `cap` images per class."""
    return {c: min(n, s.cap) for c, n in counts.items()}


@strategy("floor", needs("floor"))
def _floor(counts: dict[str, int], s: StrategySettings) -> dict[str, int]:
    """At least `floor` per class, by repeats or augmented variants."""
    return {c: max(n, s.floor) if n else 0 for c, n in counts.items()}


@strategy("clamp", needs("floor", "cap"))
def _clamp(counts: dict[str, int], s: StrategySettings) -> dict[str, int]:
    """Between `floor` and `cap` per class: the largest classes capped, the smallest raised (by
    repeats or augmented variants)."""
    return {c: min(max(n, s.floor), s.cap) if n else 0 for c, n in counts.items()}


def largest_remainder(shares: dict[str, float], total: int) -> dict[str, int]:
    """Integer counts proportional to `shares` that add up to `total` exactly."""
    norm = sum(shares.values())
    exact = {c: total * v / norm for c, v in shares.items()}
    out = {c: math.floor(v) for c, v in exact.items()}
    for c in sorted(exact, key=lambda c: (-(exact[c] - out[c]), c))[: total - sum(out.values())]:
        out[c] += 1
    return out


def parse_target(spec: str) -> Callable[[dict[str, int]], dict[str, int]]:
    """A target distribution from `uniform`, `sqrt`, `power:ALPHA` or a CSV of class,count."""
    if spec in ("uniform", "sqrt") or spec.startswith("power:"):
        if spec == "uniform":
            alpha = 0.0
        elif spec == "sqrt":
            alpha = 0.5
        else:
            try:
                alpha = float(spec.split(":", 1)[1])
            except ValueError as exc:
                raise ConfigError(f"rebalance.target {spec!r}: power needs a number, e.g. power:0.3") from exc
            if not math.isfinite(alpha):
                raise ConfigError(f"rebalance.target {spec!r}: power needs a finite number, e.g. power:0.3")
        return lambda counts: largest_remainder({c: n**alpha for c, n in counts.items() if n},
                                                 sum(counts.values())) | {c: 0 for c, n in counts.items() if not n}
    path = Path(spec)
    if not path.is_file():
        raise ConfigError(f"rebalance.target {spec!r}: use uniform, sqrt, power:ALPHA or a CSV file of class,count")
    explicit: dict[str, int] = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("class,"):
            continue
        name, _, value = line.partition(",")
        try:
            explicit[name.strip()] = int(value)
        except ValueError as exc:
            raise CurateError(f"{spec}: bad line {line!r}; expected class,count") from exc
    return lambda counts: {c: explicit.get(c, n) for c, n in counts.items()}


def _check_target(s: StrategySettings) -> None:
    parse_target(s.target)


@strategy("target", _check_target)
def _target(counts: dict[str, int], s: StrategySettings) -> dict[str, int]:
    """A target distribution with the same total: uniform, sqrt, power:ALPHA, or explicit counts."""
    return parse_target(s.target)(counts)
