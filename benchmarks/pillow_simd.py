"""Pillow vs pillow-simd: the same image operations, in two interpreters, side by side in one run.

    bash benchmarks/setup_pillow_simd.sh                 # once: benchmarks/.venv-simd (pillow-simd, AVX2)
    python3 benchmarks/pillow_simd.py                    # .venv (Pillow) vs benchmarks/.venv-simd
    python3 benchmarks/pillow_simd.py PY_A PY_B --quick  # any two interpreters; --quick: short repeats

Each interpreter runs a worker process (this file, `--worker`) that needs only Pillow (or
pillow-simd) and numpy. The driver sends both workers the same cases in turn. Every case: the
iteration count N is calibrated once (on the first interpreter, about `--target` CPU seconds per
repeat, at least `--min-n`) and used for both; each worker runs the op min(N, 3) times untimed,
then 3 repeats of N iterations, the two workers' repeats interleaved (alternating which goes
first) so that load from other work on a shared machine falls on both alike; the best repeat
counts. ops/s is N over the worker's CPU time (`time.process_time`), which other processes on a
busy machine barely disturb; the wall-clock ratio is printed beside it. Everything is
single-threaded (Pillow's ops are; the BLAS/OpenMP thread counts are set to 1 as well).

Inputs are the same for both: JPEG files, and their pixels decoded once (by the first
interpreter) and handed to both as raw RGB, so pixel ops start from identical bytes whatever
libjpeg each build links. By default the photo sets `benchmarks/scan.py` generates from
scikit-image's bundled photographs (benchmarks/data/photos-12mp-150: 4000x3000, and
photos-small-2000: 500x375, JPEG q90); without them, smooth synthetic images of those sizes.

Prints a Markdown table (ops/s for each, ratio B/A); `--write FILE` also writes it there.
"""
from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

from hostinfo import cpu_model

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_A = os.path.join(ROOT, ".venv", "bin", "python")
DEFAULT_B = os.path.join(HERE, ".venv-simd", "bin", "python")
LARGE_SIZE, SMALL_SIZE = (4000, 3000), (500, 375)
N_LARGE, N_SMALL = 3, 8  # distinct images cycled through per case

# (key, group, description). Ops are defined in the worker (`_ops`).
CASES = [
    ("resize_l_lanczos", "resize", "12 MP -> 224x224, LANCZOS"),
    ("resize_l_bilinear", "resize", "12 MP -> 224x224, BILINEAR"),
    ("resize_l_lanczos_rg", "resize", "12 MP -> 224x224, LANCZOS, reducing_gap=2"),
    ("resize_l_bilinear_rg", "resize", "12 MP -> 224x224, BILINEAR, reducing_gap=2"),
    ("resize_l_1024", "resize", "12 MP -> 1024x768, LANCZOS (shard normalize, max_side=1024)"),
    ("resize_s_lanczos", "resize", "500x375 -> 224x224, LANCZOS"),
    ("resize_s_bilinear", "resize", "500x375 -> 224x224, BILINEAR"),
    ("resize_s_bilinear_rg", "resize", "500x375 -> 224x224, BILINEAR, reducing_gap=2"),
    ("fit_s_bicubic", "resize", "500x375 -> ImageOps.fit 224x224, BICUBIC (augment input)"),
    ("thumb_l", "thumbnail", "12 MP -> thumbnail 64x64 (BICUBIC, reducing_gap=2)"),
    ("thumb_s", "thumbnail", "500x375 -> thumbnail 64x64 (BICUBIC, reducing_gap=2)"),
    ("blur_l", "blur", "GaussianBlur(2), 12 MP"),
    ("blur_s", "blur", "GaussianBlur(2), 500x375"),
    ("decode_l", "decode", "JPEG decode 12 MP, full"),
    ("decode_l_draft224", "decode", "JPEG decode 12 MP, draft (224,224) -> 1/8"),
    ("decode_s", "decode", "JPEG decode 500x375, full"),
    ("decode_s_draft32", "decode", "JPEG decode 500x375, draft (32,32) -> 1/8"),
    ("encode_224", "encode", "JPEG encode 224x224, q95"),
    ("convert_l_l", "convert", "convert('L'), 12 MP"),
    ("convert_l_s", "convert", "convert('L'), 500x375"),
    ("pipe_probe_s", "curate path", "scan probe: open, draft(32), load, 64x64 BILINEAR rg=2, convert L (500x375)"),
    ("pipe_augment_l", "curate path", "augment load: open, draft(224), fit 224 BICUBIC (12 MP)"),
    ("pipe_normalize_l", "curate path", "shard normalize: open, load, thumbnail 1024 LANCZOS, save q95 (12 MP)"),
]


# --------------------------------------------------------------------------------------------
# Worker: runs in each interpreter; speaks JSON lines on stdin/stdout.
# --------------------------------------------------------------------------------------------

def _worker() -> None:
    import io

    from PIL import Image, ImageFilter, ImageOps, features

    state: dict = {}

    def send(obj) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    def ops():
        L, S = state["large"], state["small"]  # lists of (jpeg bytes, RGB Image)
        R = Image.Resampling

        def cyc(imgs, j):
            return imgs[j % len(imgs)]

        def resize(imgs, size, method, gap=None):
            return lambda j: cyc(imgs, j)[1].resize(size, method, reducing_gap=gap)

        def thumb(imgs, box):
            def f(j):
                im = cyc(imgs, j)[1]
                # What Image.thumbnail does to a loaded image (it resizes in place; this avoids
                # timing a 36 MB copy): aspect-preserving size, BICUBIC, reducing_gap=2.0.
                w, h = im.size
                s = min(box[0] / w, box[1] / h)
                return im.resize((max(1, round(w * s)), max(1, round(h * s))), R.BICUBIC, reducing_gap=2.0)
            return f

        def decode(imgs, draft=None):
            def f(j):
                with Image.open(io.BytesIO(cyc(imgs, j)[0])) as im:
                    if draft:
                        im.draft(None, draft)
                    im.load()
                    return im.size
            return f

        def encode(j):
            buf = io.BytesIO()
            state["enc"][j % len(state["enc"])].save(buf, "JPEG", quality=95)
            return buf.tell()

        def probe(j):  # curate.imaging.probe: draft to decode_size=32, 64x64 thumbnail + luma
            with Image.open(io.BytesIO(cyc(S, j)[0])) as im:
                im.draft(None, (32, 32))
                im.load()
                t = im.convert("RGB").resize((64, 64), R.BILINEAR, reducing_gap=2.0)
                return t.tobytes() + t.convert("L").tobytes()

        def augment(j):  # curate.imaging.pixels.square_rgb
            with Image.open(io.BytesIO(cyc(L, j)[0])) as im:
                im.draft(None, (224, 224))
                rgb = ImageOps.exif_transpose(im).convert("RGB")
            return ImageOps.fit(rgb, (224, 224), R.BICUBIC).size

        def normalize(j):  # curate.shards.normalize with max_side=1024, jpeg q95
            with Image.open(io.BytesIO(cyc(L, j)[0])) as im:
                rgb = ImageOps.exif_transpose(im).convert("RGB")
            rgb.thumbnail((1024, 1024), R.LANCZOS)
            buf = io.BytesIO()
            rgb.save(buf, "JPEG", quality=95)
            return buf.tell()

        blur = ImageFilter.GaussianBlur(2)
        return {
            "resize_l_lanczos": resize(L, (224, 224), R.LANCZOS),
            "resize_l_bilinear": resize(L, (224, 224), R.BILINEAR),
            "resize_l_lanczos_rg": resize(L, (224, 224), R.LANCZOS, 2.0),
            "resize_l_bilinear_rg": resize(L, (224, 224), R.BILINEAR, 2.0),
            "resize_l_1024": resize(L, (1024, 768), R.LANCZOS),
            "resize_s_lanczos": resize(S, (224, 224), R.LANCZOS),
            "resize_s_bilinear": resize(S, (224, 224), R.BILINEAR),
            "resize_s_bilinear_rg": resize(S, (224, 224), R.BILINEAR, 2.0),
            "fit_s_bicubic": lambda j: ImageOps.fit(cyc(S, j)[1], (224, 224), R.BICUBIC),
            "thumb_l": thumb(L, (64, 64)),
            "thumb_s": thumb(S, (64, 64)),
            "blur_l": lambda j: cyc(L, j)[1].filter(blur),
            "blur_s": lambda j: cyc(S, j)[1].filter(blur),
            "decode_l": decode(L),
            "decode_l_draft224": decode(L, (224, 224)),
            "decode_s": decode(S),
            "decode_s_draft32": decode(S, (32, 32)),
            "encode_224": encode,
            "convert_l_l": lambda j: cyc(L, j)[1].convert("L"),
            "convert_l_s": lambda j: cyc(S, j)[1].convert("L"),
            "pipe_probe_s": probe,
            "pipe_augment_l": augment,
            "pipe_normalize_l": normalize,
        }

    def load_set(items):
        out = []
        for jpg, raw, size in items:
            with open(jpg, "rb") as f:
                data = f.read()
            with open(raw, "rb") as f:
                out.append((data, Image.frombytes("RGB", tuple(size), f.read())))
        return out

    for line in sys.stdin:
        msg = json.loads(line)
        cmd = msg["cmd"]
        if cmd == "info":
            from importlib.metadata import PackageNotFoundError, version

            dist = "pillow"
            for name in ("pillow-simd", "pillow"):
                try:
                    version(name)
                    dist = name
                    break
                except PackageNotFoundError:
                    pass
            import PIL
            send({"pil": PIL.__version__, "dist": dist, "python": platform.python_version(),
                  "libjpeg_turbo": features.version("libjpeg_turbo"), "exe": sys.executable})
        elif cmd == "generate":  # smooth synthetic photos, when benchmarks/data has none
            import numpy as np

            rng = np.random.default_rng(msg["seed"])
            w, h = msg["size"]
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            chans = []
            for _ in range(3):
                c = np.zeros((h, w), np.float32)
                for _ in range(6):
                    fx, fy = rng.uniform(0.5, 6, 2) * 2 * np.pi
                    c += rng.uniform(10, 40) * np.sin(fx * xx / w + fy * yy / h + rng.uniform(0, 6.3))
                chans.append(c + rng.uniform(60, 190) + rng.normal(0, 2.0, (h, w)))
            arr = np.clip(np.stack(chans, -1), 0, 255).astype(np.uint8)
            Image.fromarray(arr, "RGB").save(msg["path"], "JPEG", quality=90)
            send({"ok": True})
        elif cmd == "decode_raw":  # decode once; both workers then read the same raw pixels
            with Image.open(msg["jpg"]) as im:
                rgb = im.convert("RGB")
            with open(msg["raw"], "wb") as f:
                f.write(rgb.tobytes())
            send({"size": list(rgb.size)})
        elif cmd == "setup":
            state["large"], state["small"] = load_set(msg["large"]), load_set(msg["small"])
            state["enc"] = [im.resize((224, 224), Image.Resampling.BILINEAR) for _, im in state["small"]]
            state["ops"] = ops()
            send({"ok": True})
        elif cmd == "calibrate":
            f = state["ops"][msg["case"]]
            f(0)
            t0 = time.process_time()
            k = 0
            while k < 3 or time.process_time() - t0 < 0.05:
                f(k)
                k += 1
            send({"per_op_s": (time.process_time() - t0) / k})
        elif cmd == "run":  # one repeat of n iterations (after `warmup` untimed ones)
            f, n = state["ops"][msg["case"]], msg["n"]
            for j in range(msg["warmup"]):
                f(j)
            w0, c0 = time.perf_counter(), time.process_time()
            for j in range(n):
                f(j)
            send({"cpu_s": time.process_time() - c0, "wall_s": time.perf_counter() - w0})
        elif cmd == "quit":
            return


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------

class Worker:
    def __init__(self, python: str):
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
                   PYTHONDONTWRITEBYTECODE="1")
        self.proc = subprocess.Popen([python, os.path.abspath(__file__), "--worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env)

    def ask(self, **msg):
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.proc.args[0]} died (exit {self.proc.wait()})")
        return json.loads(line)

    def close(self):
        try:
            self.ask(cmd="quit")
        except Exception:  # noqa: BLE001  (a worker that already died: nothing to stop)
            pass
        self.proc.wait(timeout=10)


def _inputs(a: Worker, tmp: str, data_dir: str):
    """(large, small, source description): lists of (jpeg path, raw RGB path, size)."""
    large = sorted(glob.glob(os.path.join(data_dir, "photos-12mp-*", "*.jpg")))
    small = sorted(glob.glob(os.path.join(data_dir, "photos-small-*", "*.jpg")))
    # Landscape ones only, so that every case has one geometry (the sets have ~20% portrait).
    large = [p for p in large if _jpeg_size(p) == LARGE_SIZE][:N_LARGE]
    small = [p for p in small if _jpeg_size(p) == SMALL_SIZE][:N_SMALL]
    if len(large) == N_LARGE and len(small) == N_SMALL:
        source = (f"photos from `benchmarks/scan.py` (scikit-image's sample photographs; {LARGE_SIZE[0]}x"
                  f"{LARGE_SIZE[1]} upscaled with noise, {SMALL_SIZE[0]}x{SMALL_SIZE[1]}; JPEG q90): "
                  f"{N_LARGE} large, {N_SMALL} small")
    else:
        large, small = [], []
        for name, size, n, out in (("large", LARGE_SIZE, N_LARGE, large), ("small", SMALL_SIZE, N_SMALL, small)):
            for i in range(n):
                path = os.path.join(tmp, f"{name}_{i}.jpg")
                a.ask(cmd="generate", seed=[i, size[0]], size=list(size), path=path)
                out.append(path)
        source = (f"smooth synthetic images (no benchmarks/data photo sets; `benchmarks/scan.py` makes them): "
                  f"{N_LARGE} at {LARGE_SIZE[0]}x{LARGE_SIZE[1]}, {N_SMALL} at "
                  f"{SMALL_SIZE[0]}x{SMALL_SIZE[1]}, JPEG q90")
    sets = []
    for paths in (large, small):
        items = []
        for i, p in enumerate(paths):
            raw = os.path.join(tmp, f"{os.path.basename(p)}.{i}.rgb")
            size = a.ask(cmd="decode_raw", jpg=p, raw=raw)["size"]
            items.append((p, raw, size))
        sets.append(items)
    return sets[0], sets[1], source


def _jpeg_size(path: str):
    """(width, height) from a baseline/progressive JPEG's SOF marker, without Pillow."""
    with open(path, "rb") as f:
        data = f.read(1 << 16)
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker, seglen = data[i + 1], int.from_bytes(data[i + 2:i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2):
            return int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7], "big")
        i += 2 + seglen
    return None


def _machine() -> str:
    model = cpu_model()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{os.cpu_count()} CPUs ({model}), {platform.system()} {platform.release()}, "
            f"load average {load:.1f} at start")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("python_a", nargs="?", default=DEFAULT_A, help="interpreter with Pillow (default: .venv)")
    ap.add_argument("python_b", nargs="?", default=DEFAULT_B,
                    help="interpreter with pillow-simd (default: benchmarks/.venv-simd)")
    ap.add_argument("--data", default=os.path.join(HERE, "data"), help="folder with photos-12mp-*/ and photos-small-*/")
    ap.add_argument("--target", type=float, default=0.5, help="CPU seconds per repeat (sets N per case)")
    ap.add_argument("--min-n", type=int, default=3, help="least iterations per repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="--target 0.05 --repeats 2 (a smoke run)")
    ap.add_argument("--only", help="comma-separated case keys")
    ap.add_argument("--write", metavar="FILE", help="also write the table (with machine and inputs) to FILE")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        _worker()
        return 0
    if args.quick:
        args.target, args.repeats, args.min_n = 0.05, 2, 1
    for py in (args.python_a, args.python_b):
        if not os.access(py, os.X_OK):
            sys.exit(f"{py}: no such interpreter (bash benchmarks/setup_pillow_simd.sh builds the pillow-simd one)")
    cases = [c for c in CASES if not args.only or c[0] in args.only.split(",")]

    started = time.time()
    machine = _machine()
    a, b = Worker(args.python_a), Worker(args.python_b)
    try:
        info = [w.ask(cmd="info") for w in (a, b)]
        with tempfile.TemporaryDirectory(prefix="pillow-simd-bench-") as tmp:
            large, small, source = _inputs(a, tmp, args.data)
            for w in (a, b):
                w.ask(cmd="setup", large=large, small=small)
        rows = []
        for i, (key, group, desc) in enumerate(cases):
            per_op = a.ask(cmd="calibrate", case=key)["per_op_s"]
            n = max(args.min_n, round(args.target / per_op))
            warmup = min(n, 3)
            cpu = {a: [], b: []}
            wall = {a: [], b: []}
            for r in range(args.repeats):  # repeats interleaved: A B, B A, A B, ...
                for w in ((a, b) if (i + r) % 2 == 0 else (b, a)):
                    res = w.ask(cmd="run", case=key, n=n, warmup=warmup if r == 0 else 0)
                    cpu[w].append(res["cpu_s"])
                    wall[w].append(res["wall_s"])
            ra, rb = n / min(cpu[a]), n / min(cpu[b])
            wa, wb = n / min(wall[a]), n / min(wall[b])
            rows.append((group, desc, n, ra, rb, rb / ra, wb / wa))
            print(f"  {desc}: {ra:.1f} vs {rb:.1f} ops/CPU-s ({rb / ra:.2f}x; wall {wb / wa:.2f}x)",
                  file=sys.stderr, flush=True)
    finally:
        a.close()
        b.close()

    name = [f"{i['dist']} {i['pil']}" for i in info]
    lines = [
        f"| group | operation | N | {name[0]} ops/s | {name[1]} ops/s | ratio | ratio (wall) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for group, desc, n, ra, rb, ratio, wratio in rows:
        lines.append(f"| {group} | {desc} | {n} | {ra:,.1f} | {rb:,.1f} | **{ratio:.2f}x** | {wratio:.2f}x |")
    table = "\n".join(lines)
    meta = "\n".join([
        f"- Date: {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}; run took {time.time() - started:.0f} s",
        f"- Machine: {machine}; load average {os.getloadavg()[0]:.1f} at end",
        *[f"- {n}: `{i['exe']}` (Python {i['python']}, libjpeg-turbo {i['libjpeg_turbo']})"
          for n, i in zip(name, info)],
        f"- Inputs: {source}; pixel ops start from the same raw RGB in both",
        f"- Each row: min(N, 3) warm-up iterations, then the best of {args.repeats} repeats of N iterations "
        f"(N calibrated on the first interpreter: ~{args.target} CPU-s per repeat, at least {args.min_n}); the two "
        f"interpreters' repeats interleaved, alternating which goes first; single-threaded. ops/s = N / the "
        f"process's CPU seconds (robust to other load on a shared machine); \"ratio (wall)\" is the same from "
        f"wall-clock time",
    ])
    print(table)
    print()
    print(meta)
    if args.write:
        with open(args.write, "w") as f:
            f.write(table + "\n\n" + meta + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
