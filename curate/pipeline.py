"""The pipeline's stages in order; `curate run`, the single-stage commands and the flows call
`run_stage` so that every stage is checked up front and recorded beside its output."""
from __future__ import annotations

import importlib
import logging
from typing import Any, Callable

from curate import lineage
from curate.config import Config
from curate.errors import ConfigError
from curate.lock import workspace_lock
from curate.sources import open_source, read_labels
from curate.workspace import Workspace

log = logging.getLogger(__name__)

# name -> "module:function(src, out, cfg) -> summary", in the order `curate run` runs them. A
# stage's module is imported when it runs, so a command pays only for the stages it uses
# (pandas, scipy, torch, FiftyOne and matplotlib are heavy to import).
STAGES: dict[str, str] = {
    "scan": "curate.scan:scan",
    "validate": "curate.validate.stage:validate",
    "dedup": "curate.dedup.stage:dedup",
    "rebalance": "curate.rebalance.stage:rebalance",
    "shard": "curate.shards.stage:shard",
    "augment": "curate.augment.stage:augment",
    "publish": "curate.publish.stage:publish",
    "report": "curate.report.stage:report",
}

# Checks of each stage's settings (function(cfg) -> None), run before any work.
RESOLVERS: dict[str, str] = {
    "validate": "curate.validate.stage:resolve", "dedup": "curate.dedup.stage:resolve",
    "rebalance": "curate.rebalance.stage:resolve", "shard": "curate.shards.stage:resolve",
    "augment": "curate.augment.settings:resolve", "publish": "curate.publish.stage:resolve",
}


def load(ref: str) -> Callable[..., Any]:
    """The function a "module:function" reference names."""
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


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
        if name in RESOLVERS:
            load(RESOLVERS[name])(cfg)
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
        summary = load(STAGES[name])(src, out, cfg)
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
