"""One run per output folder: `OUT/.lock` holds the owner's host, pid and start time.

A second run on the same OUT is refused with the owner named. A lock left by a killed run is
stale once its process is gone (same host) or, from another host, once it is older than
`stale_after` seconds; a stale lock is taken over. Whoever takes the lock first claims OUT as
curate's workspace (`Workspace.claim`: an OUT holding files curate did not write is refused).
Re-entrant within one process, so a flow's
stage tasks and `curate run`'s stages share their run's lock.

On an object store the lock is created with a conditional write (`If-None-Match: *`), which the
server refuses when the object exists, so of two runs starting together only one gets it; the
run that gets it first finishes any folder swap a killed run left journalled
(`Workspace.finish_swaps`).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from typing import Any, Iterator

from curate.errors import WorkspaceLocked
from curate.workspace import Workspace, is_local

log = logging.getLogger(__name__)

LOCK = ".lock"
_held: dict[str, int] = {}
_guard = threading.Lock()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stale(owner: dict[str, Any], stale_after: float) -> bool:
    if owner.get("host") == socket.gethostname():
        return not _alive(int(owner.get("pid", -1)))
    return time.time() - float(owner.get("started", 0)) > stale_after


def _try_create(ws: Workspace, me: dict[str, Any]) -> bool:
    """Create the lock file exclusively (local folders) or write it when absent (fsspec)."""
    path = ws.path(LOCK)
    ws.makedirs()
    if is_local(ws.fs):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        return True
    if ws.object_store:
        try:
            ws.fs.pipe_file(path, json.dumps(me).encode(), mode="create")
            return True
        except FileExistsError:
            return False
        except (TypeError, NotImplementedError):  # this store's fsspec backend has no conditional create
            log.warning("%s cannot create objects conditionally: the lock only checks before it writes", ws.url)
    if ws.fs.exists(path):
        return False
    ws.fs.pipe(path, json.dumps(me).encode())
    return True


@contextlib.contextmanager
def workspace_lock(out: str, stale_after: float = 6 * 3600) -> Iterator[None]:
    """Hold OUT's lock for the duration of the block (see module doc)."""
    ws = Workspace(out)
    key = ws.path(LOCK)
    with _guard:
        if _held.get(key):
            _held[key] += 1
            reentrant = True
        else:
            reentrant = False
    if not reentrant:
        me = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}
        while not _try_create(ws, me):
            try:
                owner = json.loads(ws.fs.cat_file(key))
            except (FileNotFoundError, ValueError):
                continue  # released (or half-written by a dying owner) in between: try again
            if not _stale(owner, stale_after):
                raise WorkspaceLocked(f"{out} is in use by another curate run (pid {owner.get('pid')} on "
                                      f"{owner.get('host')}); wait for it to finish")
            ws.fs.rm(key)
        with _guard:
            _held[key] = 1
        try:
            ws.claim(ignore=(LOCK,))
            ws.finish_swaps()
        except BaseException:
            _release(ws, key)
            raise
    try:
        yield
    finally:
        with _guard:
            _held[key] -= 1
            last = _held[key] == 0
            if last:
                del _held[key]
        if last:
            ws.fs.rm(key)


def _release(ws: Workspace, key: str) -> None:
    with _guard:
        _held.pop(key, None)
    ws.fs.rm(key)
