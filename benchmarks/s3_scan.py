"""Scan from an object store vs the same files on local disk, in one run.

    npm install --prefix benchmarks/.node s3rver@3.7.1   # once: the second server (Node.js, MIT)
    .venv/bin/python benchmarks/s3_scan.py [--files 1000] [--sizes 160x120,500x375] [--repeats 3] [--workers 2]

For each of `--sizes`, generates `--files` JPEGs (photo-like, quality 90, 20 class folders, fixed seed),
writes them to a local folder and to a bucket of each of two S3 API servers, each a separate
process on loopback on the same cores: moto's server (`moto_server`, the one the tests use,
tests/s3server.py; one Python process) and s3rver (a Node.js S3 server that keeps objects as
files, from benchmarks/.node; left out with a note if it is not installed). Then times,
interleaved, `--repeats` times each (median reported):
  * `curate scan DIR -o OUT --workers N` (local disk, page cache warm);
  * `curate scan s3://BUCKET/photos -o OUT --workers N` against each server (`[scan] fetch_batch`
    32, the default: 32 files fetched at once, one batch ahead of the decoder);
and, against the faster server, S3 scans with fetch_batch 32 and 1 (one GET at a time) through a
loopback proxy that holds every request `--latency-ms` (default 30) before passing it on, as a
round trip to a remote store would: a latency-bound scan (one GET at a time) slows down by that
much per file, a concurrent one should not. Also each server's own ceiling: every object fetched
with s3fs `cat` in batches of 32, no decoding.
Each scan is a fresh `curate` process into a fresh local OUT; "images/s" is the scan stage's own
rate (files decoded / the stage's elapsed time, from OUT/runs/scan.json), "process" the wall
time from spawn to exit (interpreter start and imports included: s3fs costs ~1 s more).

Writes the "Object stores: scan from S3 vs local disk" section of benchmarks/RESULTS.md, keeping
its hand-written "### Notes" (`--no-write` to skip).
"""
from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from hostinfo import cpu_model, ram_gib
from PIL import Image

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))
from results import write_section  # noqa: E402

from s3server import S3Server  # noqa: E402  (the tests' server process, started the same way)

S3RVER = HERE / ".node" / "node_modules" / ".bin" / "s3rver"
SECTION = "## Object stores: scan from S3 vs local disk"
CURATE = Path(sys.executable).parent / "curate"


def photos(n: int, size: tuple[int, int], seed: int = 0) -> dict[str, bytes]:
    """n photo-like JPEGs of `size`: relative path -> bytes."""
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(n):
        coarse = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
        img = np.asarray(Image.fromarray(coarse, "RGB").resize(size, Image.Resampling.BICUBIC), dtype=float)
        img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(img, "RGB").save(buf, "JPEG", quality=90)
        out[f"class{i % 20:02d}/{i:06d}.jpg"] = buf.getvalue()
    return out


class S3rver(S3Server):
    """s3rver (Node.js) on loopback, objects kept as files under the log's folder; its fixed keys."""

    access_key = secret_key = "S3RVER"
    ready_path = "/"

    def command(self) -> list[str]:
        data = self.log.with_suffix(".data")
        data.mkdir(exist_ok=True)
        return [str(S3RVER), "-d", str(data), "-a", "127.0.0.1", "-p", str(self.port), "--silent"]


class LatencyProxy:
    """A TCP proxy on loopback, in a thread, that holds each chunk a client sends for `delay_s`
    before passing it to `port` (one HTTP request is one chunk: one added round trip per request)."""

    def __init__(self, port: int, delay_s: float) -> None:
        import asyncio
        import threading

        self.port, self.delay_s, self.listen = port, delay_s, free_port()
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
            try:
                while data := await reader.read(1 << 16):
                    if delay:
                        await asyncio.sleep(delay)
                    writer.write(data)
                    await writer.drain()
            except ConnectionError:
                pass
            finally:
                writer.close()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)
            await asyncio.gather(pipe(reader, up_writer, self.delay_s), pipe(up_reader, writer, 0.0))

        async def serve() -> None:
            await asyncio.start_server(handle, "127.0.0.1", self.listen)
            ready.set()

        def run() -> None:
            self.loop.run_until_complete(serve())
            self.loop.run_forever()

        threading.Thread(target=run, daemon=True).start()
        ready.wait(10)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.listen}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scan_once(src: str, work: Path, workers: int, fetch_batch: int, env: dict[str, str]) -> tuple[float, float]:
    """(images/s of the scan stage, process wall seconds) of one `curate scan` into a fresh OUT."""
    out = Path(tempfile.mkdtemp(dir=work))
    config = out.with_suffix(".toml")
    config.write_text(f"[scan]\nfetch_batch = {fetch_batch}\n")
    started = time.perf_counter()
    done = subprocess.run([str(CURATE), "scan", src, "-o", str(out), "--workers", str(workers), "--config",
                           str(config)], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"curate scan {src} failed:\n{done.stderr[-2000:]}")
    summary = json.loads((out / "runs" / "scan.json").read_text())["summary"]
    shutil.rmtree(out)
    return summary["decoded"] / summary["elapsed_s"], wall


def ceiling(server: S3Server, keys: list[str]) -> float:
    """Objects/s the server serves to s3fs `cat`, 32 at a time, nothing decoded."""
    fs = server.fs()
    started = time.perf_counter()
    for i in range(0, len(keys), 32):
        fs.cat(keys[i:i + 32])
    return len(keys) / (time.perf_counter() - started)


def measure(size: tuple[int, int], servers: dict[str, S3Server], args: argparse.Namespace, work: Path) -> list[str]:
    """One size of photos: every contender, interleaved, `args.repeats` times; the table's lines."""
    w, h = size
    files = photos(args.files, size)
    local = work / f"photos-{w}x{h}"
    for rel, data in files.items():
        (local / rel).parent.mkdir(parents=True, exist_ok=True)
        (local / rel).write_bytes(data)
    contenders = {"local disk": (str(local), 32, dict(os.environ))}
    keys: dict[str, list[str]] = {}
    for name, server in servers.items():
        bucket = server.bucket()
        server.fs().pipe({f"{bucket}/{local.name}/{rel}": data for rel, data in files.items()})
        keys[name] = [f"{bucket}/{local.name}/{rel}" for rel in files]
        contenders[f"S3 ({name}), fetch_batch 32 (default)"] = (f"s3://{bucket}/{local.name}", 32,
                                                               {**os.environ, **server.env()})
    far_name = list(servers)[-1]  # the faster server when both run
    far_server = servers[far_name]
    proxy = LatencyProxy(far_server.port, args.latency_ms / 1000)
    far = {**os.environ, **far_server.env(), "AWS_ENDPOINT_URL": proxy.endpoint}
    far_src = contenders[f"S3 ({far_name}), fetch_batch 32 (default)"][0]
    ms = f"{args.latency_ms:g} ms"
    contenders[f"S3 ({far_name}) + {ms} per request, fetch_batch 32 (default)"] = (far_src, 32, far)
    contenders[f"S3 ({far_name}) + {ms} per request, fetch_batch 1"] = (far_src, 1, far)

    scan_once(str(local), work, args.workers, 32, dict(os.environ))  # warm the page cache and the imports
    rates: dict[str, list[float]] = {k: [] for k in contenders}
    walls: dict[str, list[float]] = {k: [] for k in contenders}
    ceilings: dict[str, list[float]] = {k: [] for k in servers}
    for _ in range(args.repeats):
        for name, server in servers.items():
            ceilings[name].append(ceiling(server, keys[name]))
        for name, (src, batch, environment) in contenders.items():
            ips, wall = scan_once(src, work, args.workers, batch, environment)
            rates[name].append(ips)
            walls[name].append(wall)
            print(f"{w}x{h} {name}: {ips:.0f} images/s, process {wall:.1f} s", file=sys.stderr)

    local_rate = statistics.median(rates["local disk"])
    average = sum(map(len, files.values())) / args.files / 1024
    lines = [f"**{args.files} JPEGs, {w}x{h}**, {average:.1f} KiB each on average:", "",
             "| source | scan images/s | vs local | each repeat | process wall (s) |", "|---|---:|---:|---|---:|"]
    for name in contenders:
        rate = statistics.median(rates[name])
        each = ", ".join(f"{r:.0f}" for r in rates[name])
        lines.append(f"| {name} | {rate:.0f} | {rate / local_rate:.0%} | {each} | "
                     f"{statistics.median(walls[name]):.1f} |")
    for name, values in ceilings.items():
        rate = statistics.median(values)
        lines.append(f"| the {name} server alone: s3fs `cat`, 32 objects at a time, nothing decoded (objects/s) "
                     f"| {rate:.0f} | {rate / local_rate:.0%} | {', '.join(f'{c:.0f}' for c in values)} | |")
    return lines + [""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--sizes", default="160x120,500x375", help="photo sizes, one table each")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--latency-ms", type=float, default=30.0)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    sizes = [tuple(int(v) for v in size.split("x")) for size in args.sizes.split(",")]

    work = Path(tempfile.mkdtemp(prefix="curate-s3-bench-"))
    servers = {"moto": S3Server(free_port(), work / "moto.log")}
    if S3RVER.exists():
        servers["s3rver"] = S3rver(free_port(), work / "s3rver.log")
    else:
        print(f"s3rver is not installed ({S3RVER}): moto only", file=sys.stderr)
    tables: list[str] = []
    try:
        for server in servers.values():
            server.start()
        for size in sizes:
            tables += measure((size[0], size[1]), servers, args, work)
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(work, ignore_errors=True)

    load = os.getloadavg()
    lines = [SECTION, "",
             f"`.venv/bin/python benchmarks/s3_scan.py --files {args.files} --sizes {args.sizes} --repeats "
             f"{args.repeats} --workers {args.workers}`, {dt.date.today().isoformat()}; {cpu_model()}, "
             f"{os.cpu_count()} logical CPUs, {ram_gib():.0f} GiB, Python {platform.python_version()}; load average "
             f"at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min).", "",
             "Photo-like JPEGs (quality 90) in 20 class folders; the same files on local disk and in a bucket of "
             f"each S3 API server ({', '.join(servers)}: separate processes on loopback, on the same cores as the "
             "scan). Median of the repeats, interleaved; each repeat's figure beside it.", "", *tables]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section(SECTION, body, keep_notes=True)


if __name__ == "__main__":
    main()
