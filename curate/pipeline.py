"""Running stages: `curate run`, the single-stage commands and the flows call `run_stage`, so
that every stage is checked up front, finds its inputs or names the command that makes them,
runs under OUT's lock and is recorded beside its output (`curate.lineage`)."""
from __future__ import annotations

import importlib
import logging
from typing import Any, Callable, Collection

from curate import lineage, storage
from curate.config import Config
from curate.errors import ConfigError, MissingInput
from curate.listing import check_labels
from curate.lock import workspace_lock
from curate.source import Source, refuse_overlap
from curate.stages import STAGES, StageSpec, producer, shown
from curate.workspace import Workspace

log = logging.getLogger(__name__)


def load(ref: str) -> Callable[..., Any]:
    """The function a "module:function" reference names."""
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def selected_stages(cfg: Config) -> list[StageSpec]:
    """The stages to run, in pipeline order: `[run] stages`; or else the default ones, with any
    other whose output a default stage requires under the settings (`dedup.semantic` brings embed)."""
    unknown = sorted(set(cfg.run.stages) - set(STAGES.names()))
    if unknown:
        raise ConfigError(f"run.stages: unknown stage {unknown[0]!r}; valid stages: {', '.join(STAGES.names())}")
    if cfg.run.stages:
        return [spec for spec in STAGES if spec.name in cfg.run.stages]
    needed = {entry for spec in STAGES if spec.default for entry in spec.required(cfg)}
    return [spec for spec in STAGES if spec.default or needed & set(spec.writes)]


def preflight(cfg: Config, src: str | None = None, stages: list[StageSpec] | None = None,
              out: str | None = None) -> None:
    """Reject a bad source, labels file or setting of the stages about to run (default: those
    `[run] stages` selects), and, given OUT, an input that neither OUT holds nor an earlier of
    these stages writes, and an OUT that overlaps SRC, before any work starts, so that a mistake
    leaves nothing behind."""
    storage.apply(cfg.storage.options)
    specs = stages if stages is not None else selected_stages(cfg)
    for spec in specs:
        if spec.check:
            load(spec.check)(cfg)
    if src is not None and out is not None:
        refuse_overlap(src, out)
    if src is not None:
        Source(src).check()
        if cfg.scan.labels:
            check_labels(cfg.scan.labels)
    if out is not None:
        made: set[str] = set()
        for spec in specs:
            require_inputs(Workspace(out), spec, cfg, made)
            made.update(spec.writes)


def require_inputs(ws: Workspace, spec: StageSpec, cfg: Config, made: Collection[str] = ()) -> None:
    """Fail with the command to run when an entry `spec` requires is neither in OUT nor in `made`
    (of several, the one made earliest in the pipeline: the command to run next)."""
    missing = [entry for entry in spec.required(cfg) if entry not in made and not ws.exists(entry)]
    if missing:
        order = STAGES.names()
        entry = min(missing, key=lambda e: order.index(producer(e).name))
        raise MissingInput(f"{ws.url}/{shown(entry)} is missing: run `{producer(entry).command(ws.url)}` first")


def run_stage(name: str, src: str | None, out: str, cfg: Config) -> Any:
    """Run one stage (SRC defaults to the one OUT was scanned from) under OUT's lock, record it,
    and return its summary."""
    storage.apply(cfg.storage.options)
    spec = STAGES.get(name)
    ws = Workspace(out)
    require_inputs(ws, spec, cfg)  # before the lock: a wrong OUT leaves nothing
    src = src if src is not None else lineage.source_of(ws)
    refuse_overlap(src, out)
    with workspace_lock(out):
        read = lineage.started(ws, spec)
        summary = load(spec.run)(src, out, cfg)
        lineage.record(ws, spec, src, cfg, summary, read)
    return summary


def run_pipeline(src: str, out: str, cfg: Config, on_stage: Callable[[str, Any], None] | None = None,
                 on_skip: Callable[[str, list[str]], None] | None = None, force: bool = True,
                 on_start: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the selected stages on SRC into OUT, in order; `on_start(name)` is called before each
    and `on_stage(name, summary)` after. Unless `force`, a stage whose last run is current
    (`lineage.is_current`: same settings and source, no input rewritten since) is skipped and
    `on_skip(name, next)` called with what its last run said to open next."""
    preflight(cfg, src, out=out)
    summaries = {}
    ws = Workspace(out)
    with workspace_lock(out):
        for spec in selected_stages(cfg):
            if not force and lineage.is_current(ws, spec, src, cfg):
                log.info("stage %s is current: skipped", spec.name)
                if on_skip:
                    on_skip(spec.name, (lineage.last_run(ws, spec.name) or {}).get("next", []))
                continue
            log.info("stage %s", spec.name)
            if on_start:
                on_start(spec.name)
            summaries[spec.name] = run_stage(spec.name, src, out, cfg)
            if on_stage:
                on_stage(spec.name, summaries[spec.name])
    return summaries
