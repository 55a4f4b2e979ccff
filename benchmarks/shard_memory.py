"""Peak memory of `curate shard` writing real image bytes, against the shard size and the size of
the collection: what bounds the stage's memory when it copies, which the 10M runs of
benchmarks/scale.py (every file absent: planning, tasks and index only) do not show.

    .venv/bin/python benchmarks/shard_memory.py [--photos 5000 20000] [--shard-sizes 64MB 128MB 256MB]
        [--work /tmp/shard-memory] [--no-write]

Data: benchmarks/scan.py's real 500x375 JPEG sets (benchmarks/data/photos-small-N, made where
missing), hard-linked into four class folders (photo i to class i mod 4) under WORK, and prepared
once per set with `curate scan`, `validate`, `dedup` and `rebalance` (the defaults: these sets hold
planted near-duplicates, so dedup keeps fewer images than the set has). Each row is
`curate shard OUT --workers 2 --shard-size S` from no shards, in a child process sampled every
0.1 s (`scale.run_sampled`): wall and CPU seconds of the whole tree, and the peak RSS of the
driver and of the largest other process (a Dask worker; a split of one shard is written in the
driver). Samples, shards and MiB written are the stage's own summary (`OUT/runs/shard.json`).

Rewrites the "## Shards: memory per task" section of RESULTS.md (its "### Notes" kept).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from results import write_table  # noqa: E402
from scale import CURATE, run_sampled  # noqa: E402
from scan import ensure_data  # noqa: E402

SECTION = "## Shards: memory per task"
PREPARE = (["scan", "{src}", "-o", "{out}", "--workers", "2"], ["validate", "{out}", "--workers", "2"],
           ["dedup", "{out}"], ["rebalance", "{out}", "--workers", "2"])


def prepared(photos: int, work: Path) -> Path:
    """OUT of a labelled tree of `photos` real photos, scanned, validated, deduplicated and planned
    (made once per size)."""
    out = work / f"out-{photos}"
    if (out / ".complete").exists():
        return out
    src = work / f"src-{photos}"
    shutil.rmtree(src, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    for i, photo in enumerate(sorted(ensure_data("small", photos, os.cpu_count() or 2).glob("*.jpg"))):
        folder = src / f"class{i % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        os.link(photo, folder / photo.name)
    for step in PREPARE:
        subprocess.run([str(CURATE), *[a.format(src=src, out=out) for a in step]], check=True, capture_output=True)
    (out / ".complete").touch()
    return out


def sharded(out: Path, shard_size: str) -> str:
    """One table row: `curate shard` of OUT at `shard_size`, from no shards."""
    shutil.rmtree(out / "shards", ignore_errors=True)
    r = run_sampled([str(CURATE), "shard", str(out), "--workers", "2", "--shard-size", shard_size], interval=0.1)
    summary = json.loads((out / "runs" / "shard.json").read_text())["summary"]
    return (f"| {out.name.split('-')[1]} | {sum(summary['samples'].values()):,} | {shard_size} | "
            f"{sum(summary['shards'].values())} | {summary['bytes'] / 2**20:,.0f} | {r['seconds']:.1f} | {r['cpu']:.1f} | "
            f"{r['driver'] / 2**20:,.0f} | {r['other'] / 2**20:,.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, nargs="+", default=[5000, 20000])
    parser.add_argument("--shard-sizes", nargs="+", default=["64MB", "128MB", "256MB"])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "shard-memory")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rows = []
    for photos in args.photos:
        out = prepared(photos, args.work)
        for size in args.shard_sizes:
            rows.append(sharded(out, size))
            print(rows[-1], flush=True)
    write_table(SECTION, f"benchmarks/shard_memory.py --photos {' '.join(map(str, args.photos))} --shard-sizes "
                f"{' '.join(args.shard_sizes)}",
                "| photos in the set | samples kept | shard size | shards | MiB written | wall s | CPU s "
                "| driver peak RSS MiB | largest other process MiB |",
                "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |", rows, not args.no_write)


if __name__ == "__main__":
    main()
