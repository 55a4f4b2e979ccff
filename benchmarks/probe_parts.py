"""Where `probe()`'s time goes: the scan's per-image work, part by part, in one process.

    .venv/bin/python benchmarks/probe_parts.py [--passes 5]

Images: sample_data/'s JPEG photos re-encoded (quality 90) at 500x375 (the size most training
collections hold) and, one in five, at 4000x3000 (12 MP). Each part is timed alone over every image
(CPU time of this process, best of `--passes` passes; the script re-runs itself with the decoder
child's malloc settings, `sandbox.DECODER_MALLOC`, so that its temporaries cost what they cost in
the child, and runs OpenCV on one thread, as the child does), on the intermediate results the scan itself
produces: the whole `probe()`; the JPEG decode it does (libjpeg-turbo, strict, at the smallest DCT
scale keeping both sides >= `scan.decode_size`); the 64x64 thumbnail; the luma the blur score is
measured on and the score itself (`curate.imaging.blur`); header, EXIF, structure checks and
hashes. Then `probe()` as the scan runs it, in a sandboxed decoder child (file read, pickle and
pipe included, both processes' CPU, start-up excluded: each image 20 times over, 10 for 12 MP, less a
one-image child), with the child's malloc settings and with glibc's defaults, and the child's
page faults per image; the first of those less the in-process `probe()` is what the file read,
the pickle and the pipe add. Beside them, three references: the scan benchmark's "bare loop" decode
(Pillow, `draft(None, (32, 32))`, 1/8 scale), Pillow's decode at the scan's scale (what the scan
used before `strict_jpeg`) and the strict decode to greyscale (what a luma-only path would cost). Writes the "Scan: where probe()'s time goes"
section of RESULTS.md (its "### Notes" kept).
"""
from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import cv2  # noqa: E402
from hostinfo import cpu_model, ram_gib  # noqa: E402
from PIL import Image  # noqa: E402
from results import write_section  # noqa: E402

from curate.config import ScanConfig  # noqa: E402
from curate.imaging import formats, probe, sandbox, strict_jpeg, structure  # noqa: E402
from curate.imaging.blur import edge_sharpness, working_luma  # noqa: E402

SECTION = "## Scan: where probe()'s time goes"
DECODE_SIZE = 256  # scan.decode_size's default
SIZES = {"500x375": (500, 375), "12 MP": (4000, 3000)}
COPIES = {"500x375": 20, "12 MP": 10}
COUNT = "(a count, not ms)"  # marks the rows that are not times: no share of `probe()`  # each image this many times over in the decoder-child rows


def photos() -> dict[str, list[bytes]]:
    """JPEG bytes per size, re-encoded from sample_data/'s photos."""
    out: dict[str, list[bytes]] = {name: [] for name in SIZES}
    sources = sorted(p for p in (ROOT / "sample_data").rglob("*.jpg") if "planted" not in p.name)
    for i, path in enumerate(sources):
        rgb = Image.open(path).convert("RGB")
        for name, size in SIZES.items():
            if name == "12 MP" and i % 5:
                continue
            buf = io.BytesIO()
            rgb.resize(size, Image.Resampling.BICUBIC).save(buf, "JPEG", quality=90)
            out[name].append(buf.getvalue())
    return out


def best_ms(fn: Callable[[Any], object], items: list[Any], passes: int) -> float:
    """CPU milliseconds per item of `fn`, best of `passes` passes over `items`."""
    best = float("inf")
    for _ in range(passes):
        started = time.process_time()
        for item in items:
            fn(item)
        best = min(best, (time.process_time() - started) / len(items) * 1e3)
    return best


def pillow_decode(data: bytes, size: int) -> None:
    """Pillow's reduced-scale decode: `draft` to keep both sides >= `size`, then `load`."""
    with Image.open(io.BytesIO(data)) as im:
        im.draft(None, (size, size))
        im.load()


def in_child(datas: list[bytes], copies: int, malloc: dict[str, str]) -> tuple[float, float]:
    """(CPU milliseconds, the child's minor page faults) per image of `probe()` in a sandboxed
    decoder child (read, probe, pickle, pipe; CPU of both processes), with `malloc` as the child's
    `DECODER_MALLOC`: the images `copies` times over (hard links) in one child, less a one-image
    child (start-up), per extra image."""
    saved = sandbox.DECODER_MALLOC
    inherited = {k: os.environ.pop(k) for k in saved if k in os.environ}  # this process's (`under_decoder_malloc`)
    sandbox.DECODER_MALLOC = malloc
    try:
        with tempfile.TemporaryDirectory() as tmp:
            names = []
            for i, data in enumerate(datas):
                first = Path(tmp, f"{i}-0.jpg")
                first.write_bytes(data)
                for c in range(copies):
                    if c:
                        os.link(first, Path(tmp, f"{i}-{c}.jpg"))
                    names.append(f"{i}-{c}.jpg")

            def cost(paths: list[str]) -> tuple[float, int]:
                before = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
                settings = sandbox.DecodeSettings.of(ScanConfig(decode_size=DECODE_SIZE, max_memory_mb=2048,
                                                                timeout_s=60.0), tmp)
                job = sandbox.DecodeJob(tmp, tuple(paths), settings)
                assert all(facts["status"] == "ok" for facts, _t, _s in sandbox.sandboxed(job))
                sandbox.close_idle()  # the child exits and is waited for: its CPU counts
                after = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
                cpu = sum(a.ru_utime + a.ru_stime - b.ru_utime - b.ru_stime for a, b in zip(after, before))
                return cpu, after[1].ru_minflt - before[1].ru_minflt

            (cpu_one, faults_one), (cpu_many, faults_many) = cost(names[:1]), cost(names)
            extra = len(names) - 1
            return (cpu_many - cpu_one) / extra * 1e3, (faults_many - faults_one) / extra
    finally:
        sandbox.DECODER_MALLOC = saved
        os.environ.update(inherited)


def parts(datas: list[bytes], size: tuple[int, int], passes: int, copies: int) -> list[tuple[str, float]]:
    w, h = size
    scale = strict_jpeg.draft_scale(w, h, DECODE_SIZE)
    arrays = [strict_jpeg.decode_pixels(d, "RGB", w, h, scale) for d in datas]
    decoded = [strict_jpeg.image(a, "RGB", d) for a, d in zip(arrays, datas)]
    lumas = [working_luma(a) for a in arrays]
    pairs = list(zip(datas, decoded))
    tuned, plain = (min(in_child(datas, copies, malloc) for _ in range(2)) for malloc in (sandbox.DECODER_MALLOC, {}))

    def header(data: bytes) -> None:
        formats.bytes_digest(data)
        with Image.open(io.BytesIO(data)) as im:
            im.getexif()
        formats.jpeg_precision(data)

    whole = best_ms(probe.probe, datas, passes)
    return [
        ("`probe()`, the whole", whole),
        ("decode, strict, RGB (as RGBX), at the scan's DCT scale", best_ms(
            lambda d: strict_jpeg.decode(d, "RGB", w, h, scale), datas, passes)),
        ("64x64 thumbnail (resize, RGB and luma bytes)", best_ms(lambda im: probe._thumbnail(im, 1), decoded, passes)),
        ("blur: luma at <= 512 px (`working_luma`)", best_ms(working_luma, arrays, passes)),
        ("blur: `edge_sharpness`", best_ms(edge_sharpness, lumas, passes)),
        ("bytes hash, header, EXIF, precision", best_ms(header, datas, passes)),
        ("structure checks", best_ms(lambda p: structure.verdict(structure.inspect(p[0], p[1], "JPEG")), pairs,
                                               passes)),
        ("pixel hash (JPEG segments)", best_ms(lambda p: probe._pixel_hash(p[1], "JPEG", p[0], 1), pairs, passes)),
        ("`probe()` in the scan's decoder child (read, probe, pickle, pipe; `sandbox.DECODER_MALLOC`)", tuned[0]),
        ("the same with glibc's default malloc (the child before 886bfe4)", plain[0]),
        ("the child's file read, pickle and pipe (the child's `sandbox.DECODER_MALLOC` row less the first)",
         tuned[0] - whole),
        (f"the child's minor page faults per image {COUNT}, `sandbox.DECODER_MALLOC`", tuned[1]),
        (f"the child's minor page faults per image {COUNT}, glibc's default malloc", plain[1]),
        ("reference: bare loop decode (Pillow, 1/8)", best_ms(lambda d: pillow_decode(d, 32), datas, passes)),
        ("reference: decode, Pillow, RGB, same scale (the scan's before strict_jpeg)", best_ms(
            lambda d: pillow_decode(d, DECODE_SIZE), datas, passes)),
        ("reference: decode, strict, greyscale, same scale", best_ms(
            lambda d: strict_jpeg.decode(d, "L", w, h, scale), datas, passes)),
    ]


def under_decoder_malloc() -> None:
    """Run this script again with the decoder child's malloc settings unless it already has them:
    with glibc's defaults every large NumPy temporary faults its pages in afresh, which the child
    does not pay."""
    if any(os.environ.get(k) != v for k, v in sandbox.DECODER_MALLOC.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **sandbox.DECODER_MALLOC})


def main() -> None:
    under_decoder_malloc()
    cv2.setNumThreads(1)  # as the decoder child runs OpenCV (`sandbox._child`)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passes", type=int, default=5)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    sets = photos()
    tables = {name: parts(datas, SIZES[name], args.passes, COPIES[name]) for name, datas in sets.items()}
    names = list(tables)
    lines = [SECTION, "",
             f"Command: `.venv/bin/python benchmarks/probe_parts.py --passes {args.passes}`  ",
             f"Date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; {cpu_model()}, {ram_gib():.0f} GiB, "
             f"Python {platform.python_version()}; one process with `sandbox.DECODER_MALLOC`, CPU ms per image, "
             f"best of {args.passes} passes. "
             f"Images: {', '.join(f'{len(sets[n])} at {n}' for n in names)} (sample_data's photos re-encoded); "
             "the scan's DCT scale (`scan.decode_size` 256): " + ", ".join(
                 f"1/{strict_jpeg.draft_scale(*SIZES[n], DECODE_SIZE)} at {n}" for n in names) + ".", "",
             "| part | " + " | ".join(f"{n} ms" for n in names) + " | " + " | ".join(f"{n} share" for n in names)
             + " |", "| --- |" + " ---: |" * (2 * len(names))]
    for k, (label, _) in enumerate(tables[names[0]]):
        values = [tables[n][k][1] for n in names]
        shares = ["" if COUNT in label else f"{tables[n][k][1] / tables[n][0][1]:.0%}" for n in names]
        lines.append(f"| {label} | " + " | ".join(f"{v:.3f}" for v in values) + " | "
                     + " | ".join(shares) + " |")
    body = "\n".join(lines) + "\n"
    print(body)
    if not args.no_write:
        write_section(SECTION, body, keep_notes=True)


if __name__ == "__main__":
    main()
