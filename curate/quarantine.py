"""Quarantine: list (and optionally copy, never move) the files validation excludes.

Reads `OUT/issues/` and the scan record; writes `DIR/quarantine.csv` (path, checks, reasons)
and, with `copy=True`, copies of the files under `DIR/files/<path>`. Sources stay untouched.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from curate import lineage
from curate.config import Config
from curate.schema import ISSUES
from curate.source import Source
from curate.workspace import Workspace


def quarantine(out: str, to: str, cfg: Config, copy: bool = False) -> int:
    """Write the quarantine list for OUT into `to`; return the number of files listed."""
    ws = Workspace(out)
    issues = ws.read("issues", ISSUES)
    mask = pc.and_(pc.is_in(issues["severity"], pa.array(cfg.validate.exclude, pa.string())),
                   pc.is_valid(issues["path"]))
    rows = issues.filter(mask).sort_by([("path", "ascending"), ("check", "ascending")]).to_pylist()
    by_path: dict[str, list[dict]] = {}
    for r in rows:
        by_path.setdefault(r["path"], []).append(r)
    dest = Path(to)
    dest.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["path", "checks", "reasons"])
    for path, hits in by_path.items():
        writer.writerow([path, ";".join(h["check"] for h in hits), "; ".join(h["message"] for h in hits)])
    (dest / "quarantine.csv").write_text(buf.getvalue())
    if copy:
        source = Source(lineage.source_of(ws))
        for path in by_path:
            target = dest / "files" / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read(path))
    return len(by_path)
