"""What produced an output: the resolved config, package versions and source, per stage.

Writes `OUT/runs/<stage>.json`; later stages read the source location from the scan's record.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import platform
from importlib import metadata
from typing import Any

from curate.config import Config
from curate.errors import CurateError
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
    if dataclasses.is_dataclass(summary):
        return {k: plain(v) for k, v in dataclasses.asdict(summary).items()}
    if isinstance(summary, dict):
        return {str(k): plain(v) for k, v in summary.items()}
    if isinstance(summary, (list, tuple)):
        return [plain(v) for v in summary]
    return summary


def record(ws: Workspace, stage: str, src: str | None, cfg: Config, summary: Any) -> None:
    """Write OUT/runs/<stage>.json."""
    ws.write_json(f"runs/{stage}.json", {
        "stage": stage, "source": src, "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "config": cfg.to_dict(), "versions": versions(), "summary": plain(summary)})


def source_of(ws: Workspace) -> str:
    """The SRC that OUT was scanned from."""
    if not ws.exists("runs/scan.json"):
        raise CurateError(f"{ws.url} has no scan record: run `curate scan SRC -o {ws.url}` first")
    return ws.read_json("runs/scan.json")["source"]
