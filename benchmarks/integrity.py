"""Integrity vs strict decoders: does `curate scan` flag what libpng/libjpeg/giflib/libtiff/libwebp reject?

    apt-get install pngcheck libjpeg-turbo-progs libtiff-tools webp giflib-tools   # once
    .venv/bin/python benchmarks/integrity.py            # agreement + scan cost; writes RESULTS.md
    .venv/bin/python benchmarks/integrity.py --no-cost  # agreement only, printed

Agreement. Every ordinary photo of sample_data/ is turned into the malformed corpus of
tests/integrity_corpus.py (clean and broken PNG, JPEG, GIF, TIFF and WebP files). Each file is
run through the strict reference decoder of its format:
  PNG  `pngcheck -q FILE`                       rejected: exit status != 0
  JPEG `djpeg -strict -outfile /dev/null FILE`  rejected: exit status != 0 (warnings are fatal)
  GIF  `gif2rgb -1 -o /dev/null FILE`           rejected: exit status != 0 (giflib's DGifSlurp)
  TIFF `tiffinfo -D FILE`                       rejected: exit status != 0, or an Error/Warning line
  WebP `dwebp FILE -o /dev/null`                rejected: exit status != 0
through Pillow (`Image.open(...)`, every frame loaded, a full decode: rejected if it raises), and through
`curate scan CORPUS -o OUT --workers 2`. Per format:
  * strict-rejected files that curate flags (status error, or structure_warnings), target >= 0.95;
  * of those, the ones Pillow decodes without complaint (only the strict decoder rejects them:
    what curate's structure checks and strict JPEG decode exist for), flagged, >= 0.95;
  * files both the strict decoder and Pillow accept that curate scans without an error, >= 0.98;
  * Pillow-rejected files that curate marks as an error, >= 0.98.

Cost. The same run times `curate scan` over clean photos of every format (500x375, upscaled from
sample_data/), with `[scan] structure_checks = true` and `= false`, interleaved, `--repeats` times
each; medians and the ratio are reported, with the CPU seconds of the whole process tree.
"""
from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import pyarrow.parquet as pq  # noqa: E402
from hostinfo import cpu_model, ram_gib  # noqa: E402
from integrity_corpus import EXTENSIONS, variants  # noqa: E402
from PIL import Image, ImageSequence  # noqa: E402
from results import write_section  # noqa: E402
from scan import ForeignCpu, wait_idle  # noqa: E402

RESULTS = HERE / "RESULTS.md"
SECTION = "## Integrity vs strict decoders"
CURATE = Path(os.environ.get("CURATE_BIN", ROOT / ".venv" / "bin" / "curate"))  # another checkout's venv
TARGETS = {"strict_flagged": 0.95, "strict_only_flagged": 0.95, "both_ok": 0.98, "pillow_error": 0.98}
REFERENCE = {
    "PNG": ["pngcheck", "-q", "{}"],
    "JPEG": ["djpeg", "-strict", "-outfile", "/dev/null", "{}"],
    "GIF": ["gif2rgb", "-1", "-o", "/dev/null", "{}"],
    "TIFF": ["tiffinfo", "-D", "{}"],
    "WEBP": ["dwebp", "{}", "-o", "/dev/null"],
}


def photos() -> list[Path]:
    """The ordinary photos of sample_data/ (the planted cases are left out)."""
    expected = json.loads((ROOT / "sample_data" / "expected.json").read_text())
    return [ROOT / "sample_data" / f["path"] for f in expected["files"] if f["case"] == "ordinary"]


def build_corpus(folder: Path) -> list[dict]:
    """Write every variant of every photo under folder/FORMAT/KIND/; returns one record per file."""
    records = []
    for seed, path in enumerate(photos()):
        with Image.open(path) as im:
            img = im.convert("RGB")
        for fmt, kind, expected, data in variants(img, seed):
            rel = f"{fmt}/{kind}/{path.stem}.{EXTENSIONS[fmt]}"
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(data)
            records.append({"path": rel, "format": fmt, "kind": kind, "expected": expected})
    return records


def strict_verdict(fmt: str, path: Path) -> tuple[bool, str]:
    """(rejected, first line of its complaint) from the format's strict reference decoder."""
    proc = subprocess.run([a.format(path) for a in REFERENCE[fmt]], capture_output=True, text=True,
                          errors="replace", timeout=60)
    complaint = (proc.stderr + proc.stdout) if fmt == "PNG" else proc.stderr
    rejected = proc.returncode != 0 or (fmt == "TIFF" and bool(re.search(r"Error|Warning", proc.stderr)))
    lines = [x.replace(str(path), "FILE").strip() for x in complaint.splitlines() if x.strip()]
    return rejected, (lines[0] if rejected and lines else "")


def pillow_rejects(path: Path) -> bool:
    """Whether Pillow fails to decode the file: every frame, as giflib's DGifSlurp and libtiff's
    `tiffinfo -D` read every frame or directory."""
    try:
        with Image.open(path) as im:
            for frame in ImageSequence.Iterator(im):
                frame.load()
        return False
    except Exception:  # noqa: BLE001 (whatever Pillow raises, it rejected the file)
        return True


def scan(folder: Path, out: Path, workers: int, checks: bool = True) -> float:
    """Run `curate scan` as a user would; returns its wall seconds."""
    config = out.parent / f"structure-{checks}.toml"
    config.write_text(f"[scan]\nstructure_checks = {'true' if checks else 'false'}\n")
    if out.exists():
        shutil.rmtree(out)
    t0 = time.perf_counter()
    subprocess.run([str(CURATE), "scan", str(folder), "-o", str(out), "--workers", str(workers),
                    "--config", str(config)], check=True, capture_output=True)
    return time.perf_counter() - t0


def agreement(records: list[dict]) -> dict[str, dict]:
    """Per format: the ratios of the doc, with their counts."""
    by_format: dict[str, dict] = {}
    for fmt in REFERENCE:
        rows = [r for r in records if r["format"] == fmt]
        strict = [r for r in rows if r["strict"]]
        both = [r for r in rows if not r["strict"] and not r["pillow"]]
        pillow = [r for r in rows if r["pillow"]]
        by_format[fmt] = {
            "files": len(rows),
            "strict_flagged": (sum(r["curate"] != "ok" for r in strict), len(strict)),
            "strict_only_flagged": (sum(r["curate"] != "ok" for r in strict if not r["pillow"]),
                                    sum(not r["pillow"] for r in strict)),
            "both_ok": (sum(r["curate"] != "error" for r in both), len(both)),
            "pillow_error": (sum(r["curate"] == "error" for r in pillow), len(pillow)),
        }
    return by_format


def _ratio(pair: tuple[int, int]) -> str:
    hit, n = pair
    return f"{hit / n:.3f} ({hit}/{n})" if n else "n/a (0 files)"


def _met(pair: tuple[int, int], target: float) -> bool:
    return not pair[1] or pair[0] / pair[1] >= target


def cost(tmp: Path, workers: int, repeats: int, count: int, idle_wait: float) -> dict:
    """Scan wall and CPU seconds with and without the structure checks, interleaved."""
    clean = tmp / "clean"
    sources = photos()
    for i in range(count):
        with Image.open(sources[i % len(sources)]) as im:
            img = im.convert("RGB").resize((500, 375), Image.Resampling.LANCZOS)
        fmt = list(EXTENSIONS)[i % len(EXTENSIONS)]
        (clean / fmt).mkdir(parents=True, exist_ok=True)
        img.rotate(90 * (i // len(EXTENSIONS) % 4), expand=False).save(clean / fmt / f"{i:05d}.{EXTENSIONS[fmt]}", fmt)
    for p in clean.rglob("*"):
        if p.is_file():
            p.read_bytes()
    runs: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    foreign: dict[bool, list[float]] = {True: [], False: []}
    for r in range(repeats):
        for checks in ((True, False) if r % 2 == 0 else (False, True)):
            wait_idle(idle_wait)
            before = os.times()
            with ForeignCpu() as watch:
                wall = scan(clean, tmp / f"cost-{checks}", workers, checks)
            after = os.times()
            cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
            runs[checks].append((wall, cpu))
            foreign[checks].append(watch.share)
            print(f"   cost repeat {r + 1}: checks={checks} {wall:.2f}s wall, {cpu:.2f}s CPU, other load "
                  f"{watch.share:.0%}", file=sys.stderr, flush=True)
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in runs.items()}
    return {"files": count, "repeats": repeats, "runs": runs, "median": med, "probe": probe_cost(clean, repeats),
            "foreign": {k: max(v) for k, v in foreign.items()},
            "wall_ratio": med[True][0] / med[False][0], "cpu_ratio": med[True][1] / med[False][1]}


def probe_cost(clean: Path, repeats: int) -> dict[str, tuple[float, float]]:
    """Per format, seconds per file of the structure checks alone (`structure.inspect` on bytes
    and image as probe has them) and of `probe()` without them (the decoder child's whole work on
    one file), in this process, interleaved; the fastest pass of each (timing noise only adds)."""
    from curate.imaging import structure
    from curate.imaging.probe import probe

    out = {}
    for fmt in EXTENSIONS:
        files = [p.read_bytes() for p in sorted((clean / fmt).iterdir())][:200]
        decoded = []
        for data in files:
            im = Image.open(io.BytesIO(data))
            if fmt == "JPEG":
                im.draft(None, (32, 32))
            im.load()
            decoded.append(im)
        checks, whole = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for data, im in zip(files, decoded):
                structure.inspect(data, im)
            t1 = time.perf_counter()
            for data in files:
                probe(data, structure_checks=False)
            checks.append((t1 - t0) / len(files))
            whole.append((time.perf_counter() - t1) / len(files))
        out[fmt] = (min(checks), min(whole))
    return out


def report(records: list[dict], table: dict[str, dict], spent: dict | None, args: argparse.Namespace) -> str:
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    import PIL

    lines = [
        SECTION, "",
        f"Command: `.venv/bin/python benchmarks/integrity.py {' '.join(sys.argv[1:])}`".rstrip() + "  ",
        f"Date: {dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}  ",
        f"Machine: {os.cpu_count()} CPUs, {cpu_model()}, {ram_gib():.0f} GiB RAM, Python "
        f"{platform.python_version()}, Pillow {PIL.__version__}; curate at {head}  ",
        f"Reference decoders (Debian 12): {versions()}  ",
        f"Corpus: tests/integrity_corpus.py over the {len(photos())} ordinary photos of sample_data/ "
        f"({len(records)} files). \"flagged\": curate's status is error or the row has structure_warnings.",
        "",
        "| format | files | strict-rejected flagged (>= 0.95) | of which Pillow accepts, flagged (>= 0.95) "
        "| both accept, no error (>= 0.98) | Pillow-rejected, error (>= 0.98) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for fmt, row in table.items():
        cells = [f"{_ratio(row[k])}{'' if _met(row[k], TARGETS[k]) else ' MISSED'}" for k in TARGETS]
        lines.append(f"| {fmt} | {row['files']} | " + " | ".join(cells) + " |")
    lines += ["", "Per kind of file (counts; the strict decoder's first complaint for one file of the kind):", "",
              "| format | kind | files | strict rejects | Pillow rejects | curate error | curate warning "
              "| strict complaint |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    kinds: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in records:
        kinds[(r["format"], r["kind"])].append(r)
    for (fmt, kind), rows in kinds.items():
        c = Counter(r["curate"] for r in rows)
        said = next((r["complaint"] for r in rows if r["complaint"]), "")
        lines.append(f"| {fmt} | {kind} | {len(rows)} | {sum(r['strict'] for r in rows)} | "
                     f"{sum(r['pillow'] for r in rows)} | {c['error']} | {c['warning']} | "
                     f"{said[:80].replace('|', '/')} |")
    return "\n".join(lines + (_cost_lines(spent, args) if spent else []))


def _cost_lines(spent: dict, args: argparse.Namespace) -> list[str]:
    """The "Scan cost of the checks" part of the section, from `cost`'s figures."""
    (on_wall, on_cpu), (off_wall, off_cpu) = spent["median"][True], spent["median"][False]
    return [
        "", "### Scan cost of the checks", "",
        f"`curate scan --workers {args.workers}` over {spent['files']} clean 500x375 photos (PNG, JPEG, GIF, TIFF, "
        f"WebP in equal numbers), page cache warm, {spent['repeats']} interleaved repeats each (each waits up to "
        f"{args.wait_idle:.0f} s for the machine to go idle); medians. Largest share of the machine's CPU time "
        f"used by other processes during a run: {spent['foreign'][True]:.0%} (true), {spent['foreign'][False]:.0%} "
        "(false).", "",
        "| structure_checks | wall s | CPU s (process tree) |", "| --- | ---: | ---: |",
        f"| true | {on_wall:.2f} | {on_cpu:.2f} |",
        f"| false | {off_wall:.2f} | {off_cpu:.2f} |", "",
        f"With the checks the scan takes {spent['wall_ratio']:.3f}x the wall time ({(spent['wall_ratio'] - 1):+.1%}) "
        f"and {spent['cpu_ratio']:.3f}x the CPU time ({(spent['cpu_ratio'] - 1):+.1%}); target: under 5% slower. "
        "All runs (wall s, CPU s): " + "; ".join(
            f"{k}: " + ", ".join(f"{w:.2f}/{c:.2f}" for w, c in v) for k, v in
            (("true", spent["runs"][True]), ("false", spent["runs"][False]))) + ".",
        "", "Per file, in one process (up to 200 files per format, fastest of "
        f"{spent['repeats']} interleaved passes): the checks alone, against `probe()` without them (the decoder "
        "child's whole work on one file: decode, thumbnail, pixel hash) and against the scan's CPU time per file "
        "without them (the end-to-end median above, all formats together):", "",
        "| format | checks µs/file | probe ms/file | checks / probe | checks / scan CPU per file |",
        "| --- | ---: | ---: | ---: | ---: |",
        *(f"| {fmt} | {c * 1e6:.1f} | {w * 1e3:.3f} | {c / w:.1%} | {c / (off_cpu / spent['files']):.1%} |"
          for fmt, (c, w) in spent["probe"].items()),
    ]


def versions() -> str:
    def pkg(name: str) -> str:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", name], capture_output=True, text=True).stdout
        return f"{name} {out or '?'}"

    return ", ".join(pkg(p) for p in ("pngcheck", "libjpeg-turbo-progs", "giflib-tools", "libtiff-tools", "webp"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7, help="interleaved scan runs with and without the checks")
    p.add_argument("--cost-files", type=int, default=2000, help="clean photos in the cost measurement")
    p.add_argument("--wait-idle", type=float, default=120.0,
                   help="before each timed scan, wait up to this many seconds for other processes to go quiet")
    p.add_argument("--no-write", action="store_true", help="print only; leave benchmarks/RESULTS.md alone")
    p.add_argument("--no-cost", action="store_true", help="agreement only: skip the scan cost runs (implies --no-write)")
    args = p.parse_args()
    missing = [c[0] for c in REFERENCE.values() if shutil.which(c[0]) is None]
    if missing or not CURATE.exists():
        sys.exit(f"missing: {', '.join(missing) or CURATE}; see this file's doc for the install line")
    tmp = Path(tempfile.mkdtemp(prefix="curate-integrity-"))
    try:
        corpus = tmp / "corpus"
        records = build_corpus(corpus)
        print(f"corpus: {len(records)} files; running the reference decoders ...", file=sys.stderr, flush=True)
        with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
            verdicts = list(pool.map(lambda r: strict_verdict(r["format"], corpus / r["path"]), records))
        for r, (rejected, complaint) in zip(records, verdicts):
            r.update(strict=rejected, complaint=complaint, pillow=pillow_rejects(corpus / r["path"]))
        scan(corpus, tmp / "out", args.workers)
        manifest = pq.read_table(tmp / "out" / "manifest", columns=["path", "status", "structure_warnings"])
        got = {p: ("error" if s == "error" else "warning" if w else "ok") for p, s, w in
               zip(*(manifest.column(c).to_pylist() for c in manifest.column_names))}
        for r in records:
            r["curate"] = got[r["path"]]
        table = agreement(records)
        spent = None
        if not args.no_cost:
            print("measuring the scan cost ...", file=sys.stderr, flush=True)
            spent = cost(tmp, args.workers, args.repeats, args.cost_files, args.wait_idle)
        body = report(records, table, spent, args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(body)
    if not (args.no_write or args.no_cost):
        write_section(SECTION, body, keep_notes=True)
        print(f"\nwrote the '{SECTION}' section of {RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    main()
