"""The scan's per-image CPU on the Dask worker, outside the decoder child, part by part.

    .venv/bin/python benchmarks/scan_worker.py [--images 8000] [--passes 7]
    PYTHONPATH=/path/to/other/checkout .venv/bin/python benchmarks/scan_worker.py   # the same for another tree

What `scan_partition` does with what the decoder children send back, on real thumbnails:
`--images` JPEGs of benchmarks/data/photos-small-20000 (500x375) are probed once, untimed, in
this process (`curate.imaging.probe.probe`, each result kept as (facts, 16 KiB thumbnail)); then,
in partitions of `--partition` images (the scan's `partition_size`), each part is timed alone:
`quality_stats`, `phash_d8`, `dhash` (on the arrays `fingerprint` makes), the whole `fingerprint`
(the three, the arrays and setting the rows' keys), `_new_row`, `pa.Table.from_pylist` with
`MANIFEST` and the Parquet write (zstd, to memory, as `Workspace.write_table`). Figures are CPU
ms per image (`time.process_time`, this process's threads), best of `--passes` passes. The worker
runs with glibc's default malloc settings, and so does this script. Prints a table; writes nothing.
"""
from __future__ import annotations

import argparse
import io
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curate.imaging.hashes import THUMB, dhash, phash_d8
from curate.imaging.probe import fingerprint, probe
from curate.imaging.quality import quality_stats
from curate.listing import SourceFile
from curate.scan.stage import _new_row
from curate.schema import MANIFEST

PHOTOS = Path(__file__).resolve().parent / "data" / "photos-small-20000"


def probed(count: int) -> list[tuple[SourceFile, dict[str, Any], bytes | None]]:
    """(file, facts, thumbnail) of the first `count` photos, as the decoder children return them."""
    out = []
    for path in sorted(PHOTOS.glob("*.jpg"))[:count]:
        data = path.read_bytes()
        facts, thumb = probe(data)
        out.append((SourceFile(f"photos/{path.name}", len(data), path.stat().st_mtime, "photos", None), facts, thumb))
    return out


def best_ms(fn: Callable[[], object], images: int, passes: int) -> float:
    """Best CPU time of `passes` calls of `fn`, in ms per image."""
    times = []
    for _ in range(passes):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times) / images * 1000


def parquet_bytes(table: pa.Table) -> bytes:
    """`table` written as `Workspace.write_table` writes a manifest part, to memory."""
    sink = io.BytesIO()
    with pq.ParquetWriter(sink, MANIFEST, compression="zstd") as writer:
        writer.write_table(table.select(MANIFEST.names).cast(MANIFEST))
    return sink.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=8000)
    ap.add_argument("--partition", type=int, default=2000)
    ap.add_argument("--passes", type=int, default=7)
    args = ap.parse_args()
    results = probed(args.images)
    parts = [results[i:i + args.partition] for i in range(0, len(results), args.partition)]
    thumbs = [[t for _, _, t in part] for part in parts]
    arrays = []
    for part in thumbs:
        both = np.frombuffer(b"".join(t for t in part if t is not None), dtype=np.uint8).reshape(-1, THUMB * THUMB * 4)
        gray = both[:, THUMB * THUMB * 3:].reshape(-1, THUMB, THUMB)
        arrays.append((both[:, :THUMB * THUMB * 3].reshape(-1, THUMB, THUMB, 3), gray, gray.astype(np.float32)))

    def rows() -> list[list[dict[str, Any]]]:
        return [[_new_row(f, None, facts) for f, facts, _ in part] for part in parts]

    built = rows()  # fingerprint only sets keys, so it can be timed on the same rows again and again
    for part_rows, part_thumbs in zip(built, thumbs):
        fingerprint(part_rows, part_thumbs)
    tables = [pa.Table.from_pylist(r, schema=MANIFEST) for r in built]
    n, passes = len(results), args.passes
    timed: dict[str, Callable[[], object]] = {
        "quality_stats": lambda: [quality_stats(rgb, gray) for rgb, gray, _ in arrays],
        "phash_d8": lambda: [phash_d8(luma) for _, _, luma in arrays],
        "dhash": lambda: [dhash(luma) for _, _, luma in arrays],
        "fingerprint": lambda: [fingerprint(r, t) for r, t in zip(built, thumbs)],
        "_new_row": rows,
        "Table.from_pylist": lambda: [pa.Table.from_pylist(r, schema=MANIFEST) for r in built],
        "Parquet write": lambda: [parquet_bytes(t) for t in tables],
    }
    ms = {name: best_ms(fn, n, passes) for name, fn in timed.items()}
    print(f"{n} images of {PHOTOS.name}, partitions of {args.partition}, CPU ms per image (best of {passes})")
    for name, value in ms.items():
        print(f"  {name:<20} {value:.4f}")


if __name__ == "__main__":
    main()
