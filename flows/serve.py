"""Serve a flow on a cron schedule until Ctrl-C (SIGINT) or SIGTERM, then stop within seconds:
flow runs in progress cancelled, the deployment paused, no process of ours left running.

Prefect's `Flow.serve` stops gracefully only on SIGTERM (`Runner.handle_sigterm`: cancel the
runs in progress, stop polling, pause). On SIGINT it leaves Python's KeyboardInterrupt to
asyncio, which cancels the runner's main task: the runner then pauses the deployment but waits
for every flow run in progress to finish before it returns (a whole refresh, minutes). Here
SIGINT takes SIGTERM's path, and a second signal stops at once.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from typing import Any, Callable
from uuid import UUID

import httpx
import psutil
from prefect import Flow
from prefect.client.orchestration import get_client
from prefect.runner import Runner

STOP_GRACE_S = 5  # what our processes get to end after a stop signal, before SIGKILL


def serve(flow: Flow[..., Any], name: str, cron: str, parameters: dict[str, Any],
          on_serving: Callable[[], None] = lambda: None) -> bool:
    """Serve `flow` as the deployment `name` on `cron` until SIGINT or SIGTERM (`on_serving()` is
    called once the deployment exists); return once its runs are cancelled and every process
    started under it has ended: whether the deployment is paused (False: the server could not
    be reached to pause it)."""
    runner = Runner(name=name, pause_on_shutdown=True)
    deployment_id = runner.add_flow(flow, name=name, cron=cron, parameters=parameters)
    assert isinstance(deployment_id, UUID)  # called outside an event loop: add_flow ran to the end
    quiet_runner()
    stopper = Stopper(runner)
    previous = signal.signal(signal.SIGINT, stopper.on_signal)  # asyncio.run then leaves SIGINT alone
    try:
        on_serving()
        asyncio.run(runner.start())
    except (KeyboardInterrupt, SystemExit):  # the second signal, or one before the runner started
        pass
    finally:
        signal.signal(signal.SIGINT, previous)
        stopper.done.set()
        end_processes(stopper.seen + descendants())
    return pause(deployment_id)


class Stopper:
    """What Ctrl-C does while serving: the runner's graceful stop (it cancels the runs in
    progress, stops polling and pauses), and after `grace_s` SIGKILL for our processes still
    running. The runner's own stop is not enough: a flow run's process signalled right after it
    started was seen to run on until its refresh finished (27 s), the runner waiting for it."""

    def __init__(self, runner: Runner, grace_s: float = STOP_GRACE_S) -> None:
        self.runner, self.grace_s = runner, grace_s
        self.asked = False
        self.done = threading.Event()  # set when serving is over: nothing left to kill
        self.seen: list[psutil.Process] = []  # our processes when asked to stop (a killed run's workers outlive it)

    def on_signal(self, _signum: int, _frame: Any) -> None:
        if self.asked:
            raise KeyboardInterrupt  # asked twice: stop now
        self.asked = True
        self.seen = descendants()
        threading.Thread(target=self._kill_late, name="curate-stop", daemon=True).start()
        self.runner.handle_sigterm()  # start() returns once its runs have ended

    def _kill_late(self) -> None:
        if self.done.wait(self.grace_s):
            return
        for process in self.seen + descendants():
            with contextlib.suppress(psutil.Error):
                process.kill()


def quiet_runner() -> None:
    """Prefect sets its loggers to INFO when imported: keep the runner's shutdown chatter out of
    the terminal unless the user asked for debug output (`curate -vv`)."""
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        for name in ("prefect.runner", "prefect.flows", "prefect"):
            logging.getLogger(name).setLevel(logging.WARNING)


def pause(deployment_id: UUID) -> bool:
    """Pause the deployment (again: the runner does it when it stops in order, not when stopped
    before it started or by a second signal); False when the server cannot be reached."""
    try:
        with get_client(sync_client=True) as client:
            client.pause_deployment(deployment_id)
    except (httpx.HTTPError, OSError):
        return False
    return True


def descendants() -> list[psutil.Process]:
    """The processes this one started, and theirs (a flow run's process, its Dask workers), but
    multiprocessing's resource tracker: it ignores SIGTERM and ends when this process does."""
    return [p for p in psutil.Process(os.getpid()).children(recursive=True) if not _resource_tracker(p)]


def _resource_tracker(process: psutil.Process) -> bool:
    try:
        return "multiprocessing.resource_tracker" in " ".join(process.cmdline())
    except psutil.Error:
        return False


def end_processes(children: list[psutil.Process], grace_s: float = STOP_GRACE_S) -> None:
    """Terminate those of `children` still running (psutil skips a pid reused since), then kill
    what outlives `grace_s`."""
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.terminate()
    _gone, alive = psutil.wait_procs(children, timeout=grace_s)
    for child in alive:
        with contextlib.suppress(psutil.Error):
            child.kill()
    psutil.wait_procs(alive, timeout=grace_s)
