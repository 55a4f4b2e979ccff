"""The Prefect API a flow run started here talks to: PREFECT_API_URL's server when set, else a
temporary server started here and stopped when the block ends (no process left behind).

Imports no Prefect at module level. When Prefect is not imported yet (`curate run --flow`),
the temporary server is `prefect server start` (API only) in the background: its start-up (a
new process importing Prefect's server, creating or migrating the database) overlaps the
caller's own imports and checks until it calls `ready()`, and PREFECT_API_URL is set before
Prefect reads its settings. Once Prefect is imported its settings are fixed: then it is
Prefect's own temporary server, started before the block (in-process flow calls, tests).
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Iterator

from curate.errors import RunFailed
from flows import SERVER_STARTUP_S


@contextlib.contextmanager
def prefect_api(startup_timeout_s: int = SERVER_STARTUP_S) -> Iterator[Callable[[], None]]:
    """A Prefect API for the flow runs in this block; yields `ready()`, to call before the first
    flow run (it waits for a server started in the background)."""
    if os.environ.get("PREFECT_API_URL"):
        yield lambda: None
    elif "prefect" in sys.modules:
        with _prefect_temporary_server(startup_timeout_s):
            yield lambda: None
    else:
        with _background_server(startup_timeout_s) as ready:
            yield ready


@contextlib.contextmanager
def _background_server(startup_timeout_s: int) -> Iterator[Callable[[], None]]:
    server = BackgroundServer(startup_timeout_s)
    os.environ["PREFECT_API_URL"] = server.url
    try:
        yield server.ready
    finally:
        if "prefect.logging.handlers" in sys.modules and server.running():
            from prefect.logging.handlers import APILogWorker

            APILogWorker.drain_all()  # send the run's last logs while the server is still up
        os.environ.pop("PREFECT_API_URL", None)
        server.stop()


class BackgroundServer:
    """`prefect server start` (API only) on a free port, in its own process group, started at once."""

    def __init__(self, startup_timeout_s: int) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/api"
        self.startup_timeout_s = startup_timeout_s
        self.errors = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "prefect"), "server", "start", "--host", "127.0.0.1", "--port",
             str(port), "--no-services", "--no-ui", "--analytics-off"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.errors, start_new_session=True)

    def running(self) -> bool:
        return self.proc.poll() is None

    def ready(self) -> None:
        """Wait until the server answers; a server that exited or timed out is a `RunFailed`."""
        deadline = time.monotonic() + self.startup_timeout_s
        while not _healthy(self.url):
            if not self.running() or time.monotonic() > deadline:
                self.errors.seek(0)
                last = (self.errors.read().decode(errors="replace").strip().splitlines() or ["no output"])[-1]
                raise RunFailed(f"the temporary Prefect server did not start within {self.startup_timeout_s} s: "
                                f"{last}")
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM to the server's process group, SIGKILL after 10 s."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.errors.close()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def _prefect_temporary_server(startup_timeout_s: int) -> Iterator[None]:
    """Prefect's temporary server, started with a start-up allowance that a busy machine with a
    fresh database needs, and stopped on exit."""
    from prefect.logging.handlers import APILogWorker
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()  # the instance Prefect's own client will find and reuse
    try:
        server.start(timeout=startup_timeout_s)
    except RuntimeError as exc:
        raise RunFailed(f"Prefect's temporary server did not start: {str(exc).splitlines()[0]}") from exc
    try:
        yield
    finally:
        APILogWorker.drain_all()  # send the run's last logs while the server is still up
        server.stop()
