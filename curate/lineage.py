"""What produced an output: per stage, the resolved config, package versions, source, summary,
and the versions (`Workspace.fingerprint`) of the entries it read and wrote.

Writes `OUT/runs/<stage>.json` when a stage finishes (with its view's `next`: what to open), and
removes it when the stage starts, so a stage killed halfway has no record. Later stages read the
source location from the scan's record; `curate status` and `curate run`'s skipping read all of them.

A stage's last run is *current* when its record exists, everything it wrote is still there, no entry
it read was rewritten since and none it would have used was absent then and is there now (else it is
*stale*), and it ran with the same source, curate version and settings (the config sections its
`StageSpec.sections` names: another section's setting, or `engine`, `run` and `storage`, which
decide how the work runs, leave it current). Storage options are recorded with their secrets masked,
and every URL in a record (SRC's, OUT's, an endpoint's) without its credentials (`curate.storage`).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import platform
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from curate import storage
from curate.config import Config
from curate.errors import CurateError
from curate.stages import StageSpec, shown
from curate.workspace import Workspace

PACKAGES = ("curate", "pillow", "pillow-simd", "numpy", "pyarrow", "dask", "distributed", "imagehash", "torch",
            "kornia", "prefect", "fiftyone")


def versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    found["python"] = platform.python_version()
    return found


def plain(summary: Any) -> Any:
    if dataclasses.is_dataclass(summary) and not isinstance(summary, type):
        return {k: plain(v) for k, v in dataclasses.asdict(summary).items()}
    if isinstance(summary, dict):
        return {str(k): plain(v) for k, v in summary.items()}
    if isinstance(summary, (list, tuple)):
        return [plain(v) for v in summary]
    return summary


def settings(config: dict[str, Any], spec: StageSpec) -> dict[str, Any]:
    """The sections of a config that decide what `spec` produces (`StageSpec.sections`)."""
    return {k: v for k, v in config.items() if k in spec.sections}


def settings_digest(config: dict[str, Any], spec: StageSpec) -> str:
    return hashlib.sha256(json.dumps(settings(config, spec), sort_keys=True, default=str).encode()).hexdigest()[:12]


def _path(stage: str) -> str:
    return f"runs/{stage}.json"


def started(ws: Workspace, spec: StageSpec) -> dict[str, str | None]:
    """Call as a stage starts: removes its record, returns the versions of what it is about to read,
    None for an entry it uses where present that is absent (so that its appearing makes the stage
    stale); what it also writes, like the scan's previous manifest, cannot make it stale."""
    ws.remove(_path(spec.name))
    inputs = [entry for entry in (*spec.requires, *spec.uses) if entry not in spec.writes]
    return {entry: ws.fingerprint(entry) for entry in inputs}


def record(ws: Workspace, spec: StageSpec, src: str | None, cfg: Config, summary: Any,
           read: dict[str, str | None]) -> None:
    """Write OUT/runs/<stage>.json."""
    written = {entry: fp for entry in spec.writes if (fp := ws.fingerprint(entry)) is not None}
    ws.write_json(_path(spec.name), storage.scrubbed({
        "stage": spec.name, "source": src, "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "config": cfg.to_record(), "settings": settings_digest(cfg.to_dict(), spec), "versions": versions(),
        "read": read, "wrote": written, "summary": plain(summary), "next": summary.view(ws.url).next}))


def last_run(ws: Workspace, stage: str) -> dict[str, Any] | None:
    """The record of `stage`'s last finished run, or None."""
    return ws.read_json(_path(stage)) if ws.exists(_path(stage)) else None


def recorded_source(ws: Workspace) -> str:
    """The SRC that OUT was scanned from, as its record keeps it (a URL without its credentials)."""
    run = last_run(ws, "scan")
    if run is None:
        raise CurateError(f"{ws.url} has no scan record: run `curate scan SRC -o {ws.url}` first")
    return str(run["source"])


def source_of(ws: Workspace) -> str:
    """The SRC that OUT was scanned from, to read it again. A SRC whose URL carried credentials
    cannot be read from the record (it keeps none): the stage must be given SRC, as `curate run` does."""
    src = recorded_source(ws)
    if storage.REDACTED in src:
        raise CurateError(f"OUT was scanned from {src}, whose credentials curate does not record: run this stage "
                          "with `curate run SRC -o OUT`, or give the store its credentials through its environment")
    return src


@dataclass
class StageState:
    """Where one stage stands in OUT: `state` is "done", "stale" or "not run"; `why` says what made it stale."""

    name: str
    state: str
    finished: str | None = None
    settings: str | None = None
    why: list[str] = field(default_factory=list)
    run: dict[str, Any] | None = None


def state(ws: Workspace, spec: StageSpec) -> StageState:
    """Done, stale or not run (see module doc)."""
    run = last_run(ws, spec.name)
    if run is None:
        return StageState(spec.name, "not run")
    why = [f"{shown(entry)} {'appeared' if fp is None else 'rewritten'} since"
           for entry, fp in run.get("read", {}).items() if ws.fingerprint(entry) != fp]
    why += [f"{shown(entry)} is gone" for entry in spec.writes
            if entry in run.get("wrote", {}) and not ws.exists(entry)]
    return StageState(spec.name, "stale" if why else "done", run["finished"], run.get("settings"), why, run)


def is_current(ws: Workspace, spec: StageSpec, src: str, cfg: Config) -> bool:
    """Whether rerunning `spec` on SRC with `cfg` would produce what OUT already holds."""
    if spec.always_runs:
        return False
    s = state(ws, spec)
    return (s.state == "done" and s.run is not None and s.run["source"] == storage.safe_url(src)
            and s.run["settings"] == settings_digest(cfg.to_dict(), spec)
            and s.run["versions"].get("curate") == versions().get("curate"))
