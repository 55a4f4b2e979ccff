"""`curate app`: serve the FiftyOne app for a published dataset, print its URL and wait.

The app binds to `publish.address` (127.0.0.1 unless told otherwise) and `publish.port`. A port
held by another program fails before anything starts; one held by a FiftyOne app is reused
(FiftyOne connects to the running server).
"""
from __future__ import annotations

import json
import signal
import socket
import threading
import urllib.request
from typing import Any, Callable

from curate.errors import CurateError
from curate.publish import backend

ANY_ADDRESS = ("0.0.0.0", "::", "")
CLOSE_TIMEOUT_S = 20.0


def app_url(address: str, port: int) -> str:
    host = "127.0.0.1" if address in ANY_ADDRESS else address
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}/"


def _fiftyone_answers(address: str, port: int) -> bool:
    try:
        with urllib.request.urlopen(app_url(address, port) + "fiftyone", timeout=2) as reply:
            return "version" in json.loads(reply.read())
    except (OSError, ValueError):
        return False


def check_port(address: str, port: int) -> None:
    """Fail when `port` on `address` is held by something other than a FiftyOne app."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
            return
        except OSError as exc:
            reason = exc.strerror or str(exc)
    if not _fiftyone_answers(address, port):
        raise CurateError(f"cannot serve the app on {address}:{port} ({reason}): choose another --port or --address")


def open_app(name: str, address: str, port: int) -> Any:
    """Start (or join) the app server for dataset `name`; returns the FiftyOne session."""
    fo = backend.connected()
    if not fo.dataset_exists(name):
        known = ", ".join(fo.list_datasets()) or "none"
        raise CurateError(f"no FiftyOne dataset {name!r} (datasets: {known}): run `curate publish OUT` first")
    check_port(address, port)
    return fo.launch_app(fo.load_dataset(name), address=address, port=port, remote=True, auto=False)


def launch_app(name: str, address: str, port: int, say: Callable[[str], object]) -> None:
    """Serve the app for dataset `name`, `say` its URL, and serve until Ctrl-C (SIGINT) or SIGTERM;
    then stop the app server (within about CLOSE_TIMEOUT_S)."""
    stop = threading.Event()
    handlers = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    session = None
    try:  # our own handlers: a KeyboardInterrupt could land in one of FiftyOne's bare `except:`s
        session = open_app(name, address, port)
        if not stop.is_set():
            say(f"FiftyOne app for dataset {name!r}: {app_url(address, port)}"
                + (" (listening on every interface)" if address in ANY_ADDRESS else ""))
            say("serving; press Ctrl-C to stop")
            while not stop.wait(1.0):
                pass
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        if session is not None:
            close_session(session, CLOSE_TIMEOUT_S)
    say("app stopped")


def close_session(session: Any, timeout_s: float) -> None:
    """Close the session and stop the app server it started, within about `timeout_s`.

    FiftyOne's `Session.close` stops the server by closing the stdin of its service wrapper and
    waiting for it without a limit; the wrapper SIGTERMs the server, which can wait for the
    session's own event-stream connection to close, so a Ctrl-C could hang. After `timeout_s`
    the server's processes are killed (only the app server: the database is shared).
    """
    from fiftyone.core.session import session as fo_session  # FiftyOne's registry of app servers

    service = getattr(fo_session, "_server_services", {}).get(getattr(session, "server_port", None))
    closer = threading.Thread(target=session.close, daemon=True)
    closer.start()
    closer.join(timeout_s)
    child = getattr(service, "child", None)
    if closer.is_alive() and child is not None:
        import psutil

        for proc in [*reversed(child.children(recursive=True)), child]:
            try:
                proc.kill()
            except psutil.Error:
                pass
        closer.join(timeout_s)
