"""Time `curate run --flow` against a plain `curate run` on sample_data/, interleaved, in one run,
and break down where a flow run's time goes.

    .venv/bin/python benchmarks/flow_overhead.py [--repeats 3] [--before OLD_TREE]

Three modes run the same stages with the same config into fresh output folders: `curate run`;
`curate run --flow` with no PREFECT_API_URL (Prefect's temporary server, one PREFECT_HOME for
all its runs, so only the first creates the database); and `curate run --flow` against a
`prefect server start` that this script starts (and waits for) before the first timed run.

Every timed run is this script in `--probe` mode: it wraps the functions a run spends its time
in with timers (the temporary server's start and stop, the Dask cluster's start and close, each
stage's own work, the summary artifact, the final log flush), runs the `curate` command line
in-process, and prints the phases as JSON. "bookkeeping" is the flow call's time outside its
stages, cluster and artifact (flow and task runs, states, logs sent to the API); "start-up" is
the rest of the wall time (interpreter, imports).
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hostinfo import cpu_model, ram_gib  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STAGES = ["scan", "validate", "dedup", "rebalance", "shard"]
MODES = ("curate run", "--flow, temporary server", "--flow, running server")
PHASES = ("server start", "cluster start", "stages", "task runs", "flow run", "artifact", "log flush", "cluster close",
          "server stop", "start-up")


# ---- the probe: one run, in this process, with timers -------------------------------------------

class Clock:
    """Seconds spent per phase; `wrap` times every call of a function."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = collections.defaultdict(float)

    def wrap(self, owner: Any, name: str, phase: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.spent[phase] += time.perf_counter() - started

        setattr(owner, name, timed)

    @contextlib.contextmanager
    def phase(self, phase: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.spent[phase] += time.perf_counter() - started


def probe(args: list[str]) -> dict[str, float]:
    """Run `curate run ARGS` in this process with every phase timed (Prefect and Dask are imported
    here only for a flow run, and not before the command would import them)."""
    import curate.pipeline
    from curate.cli import main

    clock = Clock()
    clock.wrap(curate.pipeline, "run_stage", "stages")
    if "--flow" in args:
        try:
            from flows.server import BackgroundServer  # a tree that starts `prefect server start` itself
        except ImportError:
            BackgroundServer = None
        if BackgroundServer is not None and not os.environ.get("PREFECT_API_URL"):
            # its server starts before Prefect is imported: time the wait left after the overlap
            clock.wrap(BackgroundServer, "stop", "server stop")
            wait = BackgroundServer.ready

            def ready(self: Any) -> None:
                prefect_timers(clock)
                with clock.phase("server start"):
                    wait(self)

            BackgroundServer.ready = ready
        else:
            prefect_timers(clock)
    main(["run", *args], standalone_mode=False)
    spent = dict(clock.spent)
    if "flow call" in spent:
        tasks = spent.pop("task calls")
        spent["task runs"] = tasks - spent.get("stages", 0.0)
        inside = sum(spent.get(p, 0.0) for p in ("cluster start", "cluster close", "artifact"))
        spent["flow run"] = spent.pop("flow call") - tasks - inside
    return spent


def prefect_timers(clock: Clock) -> None:
    """Time Prefect's and Dask's parts of a flow run (imports them)."""
    import distributed
    from prefect.flows import Flow
    from prefect.logging.handlers import APILogWorker
    from prefect.tasks import Task

    import flows.curate_pipeline

    if not os.environ.get("PREFECT_API_URL"):  # Prefect's own temporary server (the server module alone takes seconds)
        from prefect.server.api.server import SubprocessASGIServer

        clock.wrap(SubprocessASGIServer, "start", "server start")
        clock.wrap(SubprocessASGIServer, "stop", "server stop")
    clock.wrap(distributed.LocalCluster, "__init__", "cluster start")
    clock.wrap(distributed.LocalCluster, "close", "cluster close")
    clock.wrap(flows.curate_pipeline, "publish_artifact", "artifact")
    clock.wrap(APILogWorker, "drain_all", "log flush")
    clock.wrap(Flow, "__call__", "flow call")
    clock.wrap(Task, "__call__", "task calls")


# ---- the benchmark ------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def prefect_server(home: Path) -> Iterator[tuple[str, float]]:
    """`prefect server start` on a free port with its own PREFECT_HOME: (API URL, start-up s)."""
    port = free_port()
    env = dict(os.environ, PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    env.pop("PREFECT_API_URL", None)
    started = time.perf_counter()
    proc = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}/api"
    try:
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.perf_counter() - started > 300:
                raise SystemExit("prefect server did not start")
            time.sleep(0.2)
        yield url, time.perf_counter() - started
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)


def timed_probe(args: list[str], env: dict[str, str]) -> dict[str, float]:
    """One run in a child process: wall seconds and its phases."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--probe", *args], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"run failed: {' '.join(args)}\n{done.stderr[-3000:]}")
    spent = json.loads(next(ln for ln in done.stdout.splitlines() if ln.startswith("PHASES "))[7:])
    spent["start-up"] = wall - sum(spent.values())
    spent["wall"] = wall
    return spent


def median_row(name: str, runs: list[dict[str, float]]) -> str:
    cells = [f"{statistics.median(r.get(p, 0.0) for r in runs):.1f}" for p in PHASES]
    walls = ", ".join(f"{r['wall']:.1f}" for r in runs)
    return f"| {name} | {statistics.median(r['wall'] for r in runs):.1f} | {walls} | {' | '.join(cells)} |"


def git_head(tree: Path) -> str:
    done = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or "?"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--before", type=Path, help="another curate tree (e.g. `git worktree add` of an older "
                                                    "commit) to time in the same run, interleaved")
    parser.add_argument("--probe", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe is not None:
        spent = probe(args.probe)
        print("\nPHASES " + json.dumps(spent), flush=True)
        return
    trees = {"before": args.before.resolve(), "after": ROOT} if args.before else {"": ROOT}
    work = Path(tempfile.mkdtemp(prefix="curate-flowbench-"))
    config = work / "c.toml"
    config.write_text(f"[run]\nstages = {json.dumps(STAGES)}\n")
    base = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    runs: dict[tuple[str, str], list[dict[str, float]]] = collections.defaultdict(list)
    load = os.getloadavg()[0]
    with prefect_server(work / "server-home") as (url, server_s):
        for i in range(args.repeats):
            for label, tree in trees.items():
                env = dict(base, PREFECT_HOME=str(work / f"prefect-{label}"),
                           PYTHONPATH=os.pathsep.join([str(tree), base.get("PYTHONPATH", "")]))
                modes = {MODES[0]: ([], env), MODES[1]: (["--flow"], env),
                         MODES[2]: (["--flow"], {**env, "PREFECT_API_URL": url})}
                for name, (extra, mode_env) in modes.items():
                    out = work / f"out-{label}-{i}-{MODES.index(name)}"
                    runs[label, name].append(timed_probe([str(ROOT / "sample_data"), "-o", str(out), "--config",
                                                          str(config), *extra], mode_env))
    shutil.rmtree(work)
    print(f"Machine: {os.cpu_count()} CPUs, {cpu_model()}, {ram_gib():.0f} GiB RAM, Python {sys.version.split()[0]}; "
          f"load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    print("Trees: " + ", ".join(f"{label or 'curate'} = {tree} ({git_head(tree)})" for label, tree in trees.items()))
    print(f"`prefect server start` (fresh database) was healthy after {server_s:.1f} s (before the timed runs)\n")
    print("| tree | mode | median s | runs (s) | " + " | ".join(PHASES) + " |")
    print("|---|---|---|---|" + "---|" * len(PHASES))
    for label in trees:
        for name in MODES:
            print(f"| {label} " + median_row(name, runs[label, name]))
    for label in trees:
        plain = statistics.median(r["wall"] for r in runs[label, MODES[0]])
        for name in MODES[1:]:
            added = statistics.median(r["wall"] for r in runs[label, name]) - plain
            print(f"\n{label} {name}: {added:+.1f} s over `curate run` (median)")


if __name__ == "__main__":
    main()
