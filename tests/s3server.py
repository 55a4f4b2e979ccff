"""A real S3 API server for the tests: moto's standalone server (`moto_server`), the one s3fs's
own test suite runs against, as a separate process on a free loopback port.

`S3Server.start()` runs it and waits until it answers; `env()` is the standard AWS environment
that points s3fs/botocore (and any process started with it) at it; `bucket()` creates a fresh
bucket. Nothing is mocked: the client side is the real s3fs over HTTP.
"""
from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

SECRET = "curate-test-secret-7f3a9c"  # tests grep outputs for it: it must never be written
ACCESS_KEY = "curate-test-access"
_names = itertools.count()


def moto_server_binary() -> str:
    beside = Path(sys.executable).parent / "moto_server"
    found = str(beside) if beside.exists() else shutil.which("moto_server")
    assert found, "moto_server not found: install the test extras (moto[server])"
    return found


class S3Server:
    """One `moto_server -H 127.0.0.1 -p PORT` process. A subclass names another S3 API server
    (benchmarks/s3_scan.py: s3rver) by its command, its keys and the path it answers on once up."""

    access_key, secret_key = ACCESS_KEY, SECRET
    ready_path = "/moto-api/"

    def __init__(self, port: int, log: Path) -> None:
        self.port, self.log = port, log
        self.endpoint = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        return [moto_server_binary(), "-H", "127.0.0.1", "-p", str(self.port)]

    def start(self, timeout_s: float = 60.0) -> S3Server:
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + timeout_s
        while True:
            try:
                urllib.request.urlopen(self.endpoint + self.ready_path, timeout=2).close()
                return self
            except urllib.error.HTTPError:  # it answers (an unsigned request may be refused)
                return self
            except OSError:
                assert self.proc.poll() is None and time.time() < deadline, self.log.read_text()[-2000:]
                time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def env(self) -> dict[str, str]:
        """The standard AWS variables that point botocore at this server (no config files)."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_CONFIG_FILE": os.devnull,
                "AWS_EC2_METADATA_DISABLED": "true"}

    def fs(self):  # noqa: ANN201  (an s3fs.S3FileSystem)
        import s3fs

        return s3fs.S3FileSystem(key=self.access_key, secret=self.secret_key, endpoint_url=self.endpoint,
                                 use_listings_cache=False, skip_instance_cache=True)

    def bucket(self) -> str:
        """A new, empty bucket's name."""
        name = f"curate-{os.getpid()}-{next(_names)}"
        self.fs().mkdir(name)
        return name


def upload(fs, local: Path, url: str) -> None:  # noqa: ANN001
    """Copy the local tree `local` to `url` (s3://bucket/prefix), file by file."""
    for p in sorted(local.rglob("*")):
        if p.is_file():
            fs.pipe_file(f"{url.removeprefix('s3://')}/{p.relative_to(local).as_posix()}", p.read_bytes())
