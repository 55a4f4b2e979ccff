"""The pipeline's stages in order; `curate run`, the single-stage commands and the flows call
`run_stage` so that every stage is checked up front and recorded beside its output."""
from __future__ import annotations

import logging
from typing import Any, Callable

from curate import lineage
from curate.augment.settings import resolve as resolve_augment
from curate.config import Config
from curate.errors import ConfigError
from curate.lock import workspace_lock
from curate.dedup.stage import dedup
from curate.dedup.stage import resolve as resolve_dedup
from curate.rebalance.stage import rebalance
from curate.rebalance.stage import resolve as resolve_rebalance
from curate.scan import scan
from curate.shards.stage import resolve as resolve_shard
from curate.shards.stage import shard
from curate.sources import open_source, read_labels
from curate.validate.stage import resolve as resolve_validate
from curate.validate.stage import validate
from curate.workspace import Workspace

log = logging.getLogger(__name__)

def augment(src: str, out: str, cfg: Config) -> Any:
    """The augment stage (torch and Kornia are imported only when it runs)."""
    from curate.augment.stage import augment as run_augment

    return run_augment(src, out, cfg)


# name -> function(src, out, cfg) -> summary, in the order `curate run` runs them.
STAGES: dict[str, Callable[[str, str, Config], Any]] = {
    "scan": scan,
    "validate": validate,
    "dedup": dedup,
    "rebalance": rebalance,
    "shard": shard,
    "augment": augment,
}


def selected_stages(cfg: Config) -> list[str]:
    """The stages to run, in pipeline order: `[run] stages`, or all of them."""
    unknown = sorted(set(cfg.run.stages) - set(STAGES))
    if unknown:
        raise ConfigError(f"run.stages: unknown stage {unknown[0]!r}; valid stages: {', '.join(STAGES)}")
    return [name for name in STAGES if not cfg.run.stages or name in cfg.run.stages]


def preflight(cfg: Config, src: str | None = None) -> None:
    """Reject a bad source, labels file or stage setting (unknown check names, …) before any
    work starts, so that a mistake leaves nothing behind."""
    selected_stages(cfg)
    if src is not None:
        open_source(src)
        if cfg.scan.labels:
            read_labels(cfg.scan.labels)
    resolve_validate(cfg)
    resolve_dedup(cfg)
    resolve_rebalance(cfg)
    resolve_shard(cfg)
    resolve_augment(cfg)


def run_stage(name: str, src: str | None, out: str, cfg: Config) -> Any:
    """Run one stage (SRC defaults to the one OUT was scanned from) under OUT's lock, and
    record it."""
    ws = Workspace(out)
    with workspace_lock(out):
        src = src if src is not None else lineage.source_of(ws)
        summary = STAGES[name](src, out, cfg)
        lineage.record(ws, name, src, cfg, summary)
    return summary


def run_pipeline(src: str, out: str, cfg: Config,
                 on_stage: Callable[[str, Any], None] | None = None) -> dict[str, Any]:
    """Run every stage on SRC into OUT; `on_stage(name, summary)` is called after each."""
    preflight(cfg, src)
    summaries = {}
    with workspace_lock(out):
        for name in selected_stages(cfg):
            log.info("stage %s", name)
            summaries[name] = run_stage(name, src, out, cfg)
            if on_stage:
                on_stage(name, summaries[name])
    return summaries
