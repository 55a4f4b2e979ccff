"""Augmentation throughput: curate's batched Kornia pipeline vs the same ops one image at a time.

    .venv/bin/python benchmarks/augment.py                  # CPU: about 2 minutes on 2 cores
    python3 benchmarks/augment.py --device cuda             # on a GPU machine

What is timed, on `--size` x `--size` RGB images (the ordinary photos of sample_data/, decoded
and brought to size once, cycled), with the default 6-op pipeline of `[augment]` (horizontal
flip, rotation, resized crop, colour jitter, Gaussian blur, perspective):
  * one image at a time: the same Kornia modules called on one (1, 3, H, W) image after another,
    each call drawing its own parameters (plain online use); uint8 -> float -> ops -> uint8 on
    the CPU, as each image must come back to be encoded;
  * curate, batched at 1, 32 and 128, in one process: `curate.augment.pipeline`: every variant's
    parameters drawn from its own seed (on the CPU), stacked, then one pass per op over the batch
    on the device, and the batch back on the CPU as uint8. The share of that time spent drawing
    parameters is reported too (in the stage, worker processes draw them);
  * end to end, batched at 32 and 128: `curate.augment.runner.run_batches` as `curate augment`
    runs it, from JPEG bytes in memory: worker processes decode + resize and draw parameters,
    the device transforms, a thread pool encodes JPEG quality 95, all overlapped (Parquet writing
    aside). Each image is decoded for its own variant (the stage decodes a source once per batch).
Every figure is images / wall-clock second after one untimed warm-up batch. On a GPU the
device's name is recorded. The section is written to benchmarks/RESULTS-augment.md (`--no-write`
to skip), replacing an earlier section for the same device kind and CPU count.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from hostinfo import cpu_model  # noqa: E402

from curate.augment import images  # noqa: E402
from curate.augment.ops import resolve_ops  # noqa: E402
from curate.augment.pipeline import Pipeline  # noqa: E402
from curate.augment.runner import Job, run_batches  # noqa: E402
from curate.config import AugmentConfig  # noqa: E402
from curate.imaging.pixels import square_rgb  # noqa: E402

RESULTS = HERE / "RESULTS-augment.md"


def photos() -> dict[str, bytes]:
    """The ordinary (not planted) photos of sample_data/, as bytes."""
    files = sorted(p for p in (ROOT / "sample_data").glob("*/*/*.jpg") if not p.name.startswith("planted_"))
    return {str(p.relative_to(ROOT)): p.read_bytes() for p in files}


def timed(fn: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    """(wall-clock seconds, result) of fn(*args), the GPU's queued work included."""
    started = time.perf_counter()
    result = fn(*args)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - started, result


def one_at_a_time(pipeline: Pipeline, pixels: list[np.ndarray], device: torch.device) -> None:
    modules = [op.build(pipeline.sampler.size).to(device) for op in pipeline.sampler.ops]
    with torch.inference_mode():
        for p in pixels:
            x = torch.from_numpy(p).to(device).permute(2, 0, 1)[None].float().div_(255.0)
            for m in modules:
                x = m(x)
            x.mul_(255.0).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu()


def batched(pipeline: Pipeline, pixels: list[np.ndarray], batch: int) -> float:
    """Run every batch; return the seconds spent drawing parameters."""
    drawing = 0.0
    for lo in range(0, len(pixels), batch):
        chunk = pixels[lo:lo + batch]
        started = time.perf_counter()
        params = pipeline.sampler.collate(pipeline.sampler.sample(list(range(lo, lo + len(chunk)))))
        drawing += time.perf_counter() - started
        pipeline.apply(torch.from_numpy(np.stack(chunk)), params)
    return drawing


@dataclass(frozen=True)
class MemoryReader:
    """Source key `<photo>#<i>` -> pixels at size (picklable, for the DataLoader's workers)."""

    data: dict[str, bytes]
    size: int

    def __call__(self, key: str) -> tuple[np.ndarray, None]:
        return square_rgb(self.data[key.rsplit("#", 1)[0]], self.size, "white"), None


def end_to_end(pipeline: Pipeline, data: dict[str, bytes], n: int, batch: int, workers: int, threads: int) -> None:
    keys = [list(data)[i % len(data)] for i in range(n)]
    jobs = [Job(f"{k}#{i}", i) for i, k in enumerate(keys)]  # every job its own source: one decode each
    batches = [jobs[lo:lo + batch] for lo in range(0, n, batch)]
    load = MemoryReader(data, pipeline.sampler.size)
    for _outputs, _errors in run_batches(batches, pipeline, load, lambda px: images.encode(px, "jpeg", 95),
                                         workers, threads):
        pass


def machine(device: torch.device) -> str:
    cpu = cpu_model()
    import kornia
    import PIL

    parts = [f"{os.cpu_count()} logical CPUs ({cpu})", f"torch {torch.__version__} with {torch.get_num_threads()} "
             f"intra-op threads", f"kornia {kornia.__version__}", f"Pillow {PIL.__version__}",
             f"Python {platform.python_version()}"]
    if device.type == "cuda":
        parts.insert(0, f"GPU {torch.cuda.get_device_name(device)}")
    return "; ".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--images", type=int, default=0,
                    help="images per batched run (default 256 on the CPU, 4096 on a GPU)")
    ap.add_argument("--single", type=int, default=0,
                    help="images for one-at-a-time and batch 1 (default 64 on the CPU, 512 on a GPU)")
    ap.add_argument("--batch-sizes", default="1,32,128")
    ap.add_argument("--workers", type=int, default=0,
                    help="end to end: processes that decode and draw parameters (0 = one per CPU but one)")
    ap.add_argument("--threads", type=int, default=0, help="end to end: encode threads (0 = one per CPU)")
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    device = torch.device(a.device)
    gpu = device.type == "cuda"
    n = a.images or (4096 if gpu else 256)
    n_single = a.single or (512 if gpu else 64)
    threads = a.threads or os.cpu_count() or 1
    workers = a.workers or max(1, (os.cpu_count() or 2) - 1)
    sizes = [int(b) for b in a.batch_sizes.split(",")]
    cmd = "python benchmarks/augment.py " + " ".join(map(shlex.quote, sys.argv[1:]))
    load_before = os.getloadavg()
    started = time.time()

    cfg = AugmentConfig()
    pipeline = Pipeline(resolve_ops(cfg.ops, a.size), a.size, device)
    data = photos()
    pool = [square_rgb(b, a.size, "white") for b in data.values()]
    pixels = [pool[i % len(pool)] for i in range(max(n, n_single))]
    print(f"# {cmd}\n# {machine(device)}\n# {len(data)} source photos, {a.size}x{a.size}", flush=True)

    rows: list[tuple[str, int, int, float, str]] = []  # method, batch, images, images/s, note

    one_at_a_time(pipeline, pixels[:2], device)  # warm-up
    s, _ = timed(one_at_a_time, pipeline, pixels[:n_single], device)
    rows.append(("one image at a time (Kornia draws parameters per call)", 1, n_single, n_single / s, ""))
    print(rows[-1], flush=True)
    for b in sizes:
        count = n_single if b == 1 else n
        batched(pipeline, pixels[:b], b)  # warm-up
        s, drawing = timed(batched, pipeline, pixels[:count], b)
        rows.append(("curate batched, one process (draw per-variant parameters, then one pass per op)", b, count,
                     count / s,
                     f"{100 * drawing / s:.0f} % drawing parameters ({1e3 * drawing / count:.2f} ms/image)"))
        print(rows[-1], flush=True)
    for b in [x for x in sizes if x > 1]:
        end_to_end(pipeline, data, b, b, workers, threads)  # warm-up
        s, _ = timed(end_to_end, pipeline, data, n, b, workers, threads)
        rows.append((f"end to end as `curate augment` runs it ({workers} worker processes, {threads} encode threads)",
                     b, n, n / s, ""))
        print(rows[-1], flush=True)

    load_after = os.getloadavg()
    base = rows[0][3]
    name = f"{device} ({torch.cuda.get_device_name(device)})" if gpu else f"cpu ({os.cpu_count()} logical CPUs)"
    lines = [f"## Augment: images/s on {name}", "",
             f"Run {dt.date.today().isoformat()} in {time.time() - started:.0f} s with:", "", "```", cmd, "```", "",
             f"Machine: {machine(device)}. Load average (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} "
             "after" + (" — the 2 cores are shared with other work, so CPU figures are lower bounds" if not gpu
                        and (os.cpu_count() or 0) <= 2 else "") + ".", "",
             f"Pipeline: the default `[augment] ops` (6 ops), {a.size}x{a.size} float32 RGB; images from the "
             f"{len(data)} ordinary photos of sample_data/. See the docstring of benchmarks/augment.py for what each "
             "row times.", "",
             "| method | batch | images | images/s | vs one at a time | note |", "|---|---:|---:|---:|---:|---|"]
    for method, b, count, rate, note in rows:
        lines.append(f"| {method} | {b} | {count} | {rate:.1f} | {rate / base:.2f}x | {note} |")
    section = "\n".join(lines) + "\n"
    print("\n" + section)
    if not a.no_write:
        write_section(f"{device.type}-{os.cpu_count()}cpus", section)


def write_section(key: str, section: str) -> None:
    """Put `section` between this device kind's markers in RESULTS-augment.md, keeping other sections."""
    start, end = f"<!-- augment:{key} -->", f"<!-- /augment:{key} -->"
    text = RESULTS.read_text() if RESULTS.exists() else ""
    block = f"{start}\n{section}{end}\n"
    if start in text and end in text:
        text = text[:text.index(start)] + block + text[text.index(end) + len(end) + 1:]
    else:
        text = (text + "\n" if text else "") + block
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
