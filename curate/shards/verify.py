"""Verify: every shard in OUT/index.parquet matches its checksum, decodes, and agrees with the
index's counts and class histograms, and no sample the plan kept was left out of its shard (a file
changed since the scan, ...). Reads only; returns the failures and the left-out samples."""
from __future__ import annotations

import hashlib
import io
from collections import Counter
from dataclasses import dataclass, field

import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image

from curate.errors import CurateError
from curate.schema import INDEX
from curate.shards.index import read_shard_stats
from curate.shards.writer import left_out, sidecar
from curate.workspace import Workspace


@dataclass
class VerifyReport:
    shards: int = 0
    samples: int = 0
    failures: dict[str, str] = field(default_factory=dict)  # shard -> first problem
    left_out: list[dict] = field(default_factory=list)  # samples the plan kept that no shard holds, with why

    @property
    def ok(self) -> bool:
        return not self.failures and not self.left_out


def _check_shard(ws: Workspace, st: dict, index_rows: int) -> str | None:
    rel = st["shard"]
    if not ws.exists(rel):
        return "missing"
    with ws.fs.open(ws.path(rel), "rb") as f:
        data = f.read()
    if hashlib.sha256(data).hexdigest() != st["sha256"]:
        return "sha256 mismatch"
    table = pq.read_table(io.BytesIO(data), columns=["image", "label_name"])
    if table.num_rows != st["count"] or table.num_rows != index_rows:
        return f"{table.num_rows} rows; index says {st['count']} (sample rows: {index_rows})"
    if dict(Counter(table["label_name"].to_pylist())) != st["histogram"]:
        return "class histogram differs from the index"
    for row, image in enumerate(table["image"].to_pylist()):
        try:
            with Image.open(io.BytesIO(image["bytes"])) as im:
                im.load()
        except Exception as exc:  # noqa: BLE001  (any decoder failure is a verification failure, reported per shard)
            return f"row {row} ({image['path']}) does not decode: {type(exc).__name__}: {exc}"
    return None


def verify(out: str) -> VerifyReport:
    ws = Workspace(out)
    if not ws.exists("index.parquet"):
        raise CurateError(f"{out}/index.parquet not found: run `curate shard {out}` first")
    with ws.fs.open(ws.path("index.parquet"), "rb") as f:
        index = pq.read_table(f, schema=INDEX.with_metadata(None))
    report = VerifyReport()
    for st in read_shard_stats(ws):
        rows = int(pc.sum(pc.equal(index["shard"], st["shard"])).as_py() or 0)
        problem = _check_shard(ws, st, rows)
        if not problem and st.get("left_out_by_reason") and not ws.exists(sidecar(st["shard"])):
            problem = "its stats sidecar is gone (it lists the samples left out of the shard)"
        report.shards += 1
        report.samples += st["count"]
        report.left_out += [{**sample, "shard": st["shard"]} for sample in left_out(ws, st)]
        if problem:
            report.failures[st["shard"]] = problem
    return report
