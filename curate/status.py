"""`curate status OUT`: where every stage stands in OUT, as a view.

Reads the stage records (`OUT/runs/<stage>.json`, see `curate.lineage`) and the footers and
names of what each stage wrote; writes nothing. Per stage: done / stale / not run, when it
finished, the settings of its config sections that differ from the defaults (and, given a config,
which of them would make `curate run` rerun it), and how many rows (or files) each of its outputs holds.
"""
from __future__ import annotations

from typing import Any

import pyarrow.parquet as pq

from curate import lineage
from curate.config import Config
from curate.stages import STAGES, StageSpec, shown
from curate.view import Block, Table, View
from curate.workspace import Workspace


def flatten(config: dict[str, Any]) -> dict[str, Any]:
    """{"dedup": {"threshold": 8}} -> {"dedup.threshold": 8}."""
    return {f"{section}.{key}": value for section, keys in config.items() for key, value in keys.items()}


def changed_keys(ran: dict[str, Any], now: dict[str, Any], spec: StageSpec) -> list[str]:
    """The settings of `spec`'s config sections whose values differ between two configs."""
    a, b = flatten(lineage.settings(ran, spec)), flatten(lineage.settings(now, spec))
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def entry_size(ws: Workspace, entry: str) -> str:
    """How much an output holds: Parquet rows (from the footers), else its file count."""
    files = ws.files(entry)
    parquet = [name for name in files if name.endswith(".parquet")]
    if not parquet:
        return f"{len(files)} files"
    rows = 0
    for name in parquet:
        with ws.fs.open(ws.path(name), "rb") as f:
            rows += pq.ParquetFile(f).metadata.num_rows
    return f"{rows} rows"


def status(out: str, cfg: Config | None = None) -> View:
    """Every stage's state in OUT (see module doc); with `cfg`, also which settings it would change."""
    ws = Workspace(out)
    defaults = Config().to_dict()
    rows, notes = [], []
    for spec in STAGES:
        s = lineage.state(ws, spec)
        if s.run is None:
            rows.append([spec.name, s.state, "-", "-", "-"])
            continue
        ran = s.run["config"]
        custom = changed_keys(defaults, ran, spec)
        wrote = ", ".join(f"{shown(e)} {entry_size(ws, e)}" for e in spec.writes if ws.exists(e)) or "-"
        finished = (s.finished or "-").replace("T", " ").removesuffix("+00:00")
        rows.append([spec.name, s.state, finished, ", ".join(custom) or "defaults", wrote])
        notes += [f"{spec.name} is stale: {why}" for why in s.why]
        if cfg is not None and not spec.always_runs and (now := changed_keys(ran, cfg.to_record(), spec)):
            notes.append(f"{spec.name} is not current for the given config (`curate run` reruns it): it ran with "
                         f"other {', '.join(now)}")
    done = sum(r[1] == "done" for r in rows)
    blocks: list[Block] = [Table.of("stages", ["stage", "state", "finished (UTC)", "settings", "wrote"], rows), *notes]
    return View("status", f"{ws.url}: {done} of {len(rows)} stages done, "
                          f"{sum(r[1] == 'stale' for r in rows)} stale", blocks)
