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


def publish(src: str, out: str, cfg: Config) -> Any:
    """The publish stage (FiftyOne is imported only when it runs)."""
    from curate.publish.stage import publish as run_publish

    return run_publish(src, out, cfg)


def report(src: str, out: str, cfg: Config) -> Any:
    """The report stage (matplotlib is imported only when it runs)."""
    from curate.report.stage import report as run_report

    return run_report(src, out, cfg)


def resolve_publish(cfg: Config) -> None:
    from curate.publish.stage import resolve

    resolve(cfg)


# name -> function(src, out, cfg) -> summary, in the order `curate run` runs them.
STAGES: dict[str, Callable[[str, str, Config], Any]] = {
    "scan": scan,
    "validate": validate,
    "dedup": dedup,
    "rebalance": rebalance,
    "shard": shard,
    "augment": augment,
    "publish": publish,
    "report": report,
}

# Checks of each stage's settings, run before any work.
RESOLVERS: dict[str, Callable[[Config], None]] = {
    "validate": resolve_validate, "dedup": resolve_dedup, "rebalance": resolve_rebalance, "shard": resolve_shard,
    "augment": resolve_augment, "publish": resolve_publish,
}


def selected_stages(cfg: Config) -> list[str]:
    """The stages to run, in pipeline order: `[run] stages`, or all of them."""
    unknown = sorted(set(cfg.run.stages) - set(STAGES))
    if unknown:
        raise ConfigError(f"run.stages: unknown stage {unknown[0]!r}; valid stages: {', '.join(STAGES)}")
    return [name for name in STAGES if not cfg.run.stages or name in cfg.run.stages]


def preflight(cfg: Config, src: str | None = None, stages: list[str] | None = None) -> None:
    """Reject a bad source, labels file or setting of the stages about to run (default: those
    `[run] stages` selects) before any work starts, so that a mistake leaves nothing behind."""
    for name in stages if stages is not None else selected_stages(cfg):
        RESOLVERS.get(name, lambda _cfg: None)(cfg)
    if src is not None:
        open_source(src)
        if cfg.scan.labels:
            read_labels(cfg.scan.labels)


def run_stage(name: str, src: str | None, out: str, cfg: Config) -> Any:
    """Run one stage (SRC defaults to the one OUT was scanned from) under OUT's lock, and
    record it."""
    ws = Workspace(out)
    src = src if src is not None else lineage.source_of(ws)  # before the lock: a wrong OUT leaves nothing
    with workspace_lock(out):
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
