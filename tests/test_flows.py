"""Prefect flows: no server, a real `prefect server`, incremental refresh, a separate Dask cluster."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

# Prefect reads its settings when imported: give this test process its own home and no server.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="curate-prefect-")
os.environ.pop("PREFECT_API_URL", None)

import httpx  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from curate.schema import DUPLICATES, MANIFEST, PLAN  # noqa: E402
from curate.workspace import Workspace  # noqa: E402

from conftest import SAMPLE, encode, free_port, group_processes, photo_like  # noqa: E402

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def server_processes() -> set[int]:
    """PIDs of Prefect API servers and Dask processes running now."""
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout.splitlines()[1:]
    marks = ("prefect.server.api.server", "distributed.cli", "dask scheduler", "dask worker", "multiprocessing.spawn")
    return {int(line.split(None, 1)[0]) for line in line_iter(out) if any(m in line for m in marks)}


def line_iter(lines: list[str]) -> list[str]:
    return [ln.strip() for ln in lines if ln.strip()]


def outputs(out: Path) -> dict:
    """Everything a run decides, without timestamps: manifest (minus removed rows), duplicates,
    plan, index rows and shard bytes."""
    ws = Workspace(str(out))
    manifest = [r for r in ws.read("manifest", MANIFEST).to_pylist() if r["status"] != "removed"]
    for r in manifest:
        r.pop("mtime")
    shards = {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.glob("shards/*/*.parquet"))}
    return {"manifest": sorted(manifest, key=lambda r: r["path"]),
            "duplicates": ws.read("duplicates", DUPLICATES).sort_by("path").to_pylist(),
            "plan": ws.read("plan", PLAN).sort_by("path").to_pylist(),
            "index": pq.read_table(out / "index.parquet").sort_by("sample_id").to_pylist(), "shards": shards}


def test_flow_without_server_with_process_workers(tmp_path):
    before = server_processes()
    config = tmp_path / "c.toml"
    config.write_text("[engine]\nworkers = 2\npartition_size = 20\n")  # several partitions: a cluster starts
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path / "prefect")
    run = subprocess.run([str(BIN / "python"), "-m", "flows.curate_pipeline", str(SAMPLE), "-o", str(tmp_path / "flow"),
                          "--config", str(config)], env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Finished in state Completed" in run.stdout + run.stderr
    plain = subprocess.run([str(BIN / "curate"), "run", str(SAMPLE), "-o", str(tmp_path / "plain"), "--config",
                            str(config)],
                           capture_output=True, text=True, timeout=600)
    assert plain.returncode == 0, plain.stderr[-3000:]
    assert outputs(tmp_path / "flow") == outputs(tmp_path / "plain")
    time.sleep(1)
    assert server_processes() - before == set()  # no temporary server or worker left behind


def test_flow_against_a_real_prefect_server(tmp_path, prefect_server):
    env = dict(os.environ, PREFECT_API_URL=prefect_server)
    run = subprocess.run([str(BIN / "curate"), "run", str(SAMPLE), "-o", str(tmp_path / "out"), "--flow"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Starting temporary server" not in run.stdout + run.stderr
    flow_runs = httpx.post(f"{prefect_server}/flow_runs/filter", json={}).json()
    assert [r["state_type"] for r in flow_runs] == ["COMPLETED"]
    artifacts = httpx.post(f"{prefect_server}/artifacts/filter", json={}).json()
    summary = next(a for a in artifacts if a["key"] == "curate-pipeline-summary")
    assert summary["flow_run_id"] == flow_runs[0]["id"] and "samples per class: before -> after" in summary["data"]
    assert "| raccoon | 22 -> 22 | 6 -> 6 |" in summary["data"]  # class counts before and after rebalancing


@pytest.fixture(scope="module")
def in_process_prefect():
    """Flows called in this process: Prefect's temporary server, started once with the start-up
    allowance a busy machine needs (Prefect's own default is 20 s), and stopped afterwards."""
    from flows.server import prefect_api

    with prefect_api() as ready:
        ready()
        yield


def test_incremental_refresh_matches_a_full_run(tmp_path, in_process_prefect):
    from flows.curate_pipeline import curate_pipeline
    from flows.incremental_refresh import incremental_refresh

    src = tmp_path / "src"
    shutil.copytree(SAMPLE, src)
    config = tmp_path / "c.toml"
    config.write_text("[engine]\nworkers = 1\n")
    out = tmp_path / "incremental"
    first = incremental_refresh(str(src), str(out), str(config))
    assert first["changed"] > 0
    assert incremental_refresh(str(src), str(out), str(config))["changed"] == 0  # nothing to do

    (src / "train" / "coffee" / "coffee_02.jpg").unlink()  # deleted
    (src / "train" / "temple" / "temple_03.jpg").write_bytes(encode(photo_like(7, (180, 140))))  # changed
    (src / "test" / "cat" / "new_cat.jpg").write_bytes(encode(photo_like(8, (200, 150))))  # added
    again = incremental_refresh(str(src), str(out), str(config))
    assert again["scan"]["decoded"] == 2 and again["scan"]["newly_removed"] == 1
    full = tmp_path / "full"
    curate_pipeline(str(src), str(full), str(config))
    assert outputs(out) == outputs(full)


def test_flow_on_a_separate_dask_scheduler_and_two_workers(tmp_path, in_process_prefect):
    from flows.curate_pipeline import curate_pipeline

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    procs += [subprocess.Popen([str(BIN / "dask"), "worker", address, "--nthreads", "1", "--no-dashboard",
                                "--host", "127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
              for _ in range(2)]
    try:
        summaries = curate_pipeline(str(SAMPLE), str(tmp_path / "out"), None, address)
        assert summaries["scan"]["ok"] == 66 and (tmp_path / "out" / "index.parquet").exists()
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(timeout=30)


def test_ctrl_c_stops_a_schedule_within_seconds_pausing_it(tmp_path, prefect_server):
    """SIGINT to `curate schedule` while a refresh runs (kill -INT: only the serving process gets
    it) cancels the run, pauses the deployment and ends every process within seconds; Prefect's
    own serve waited for the run to finish."""
    from prefect.client.orchestration import SyncPrefectClient

    config = tmp_path / "c.toml"
    config.write_text(f'[run]\nsrc = "{SAMPLE}"\nout = "{tmp_path / "out"}"\n'
                      'stages = ["scan", "validate", "dedup", "rebalance", "shard"]\n[engine]\nworkers = 2\n')
    env = dict(os.environ, PREFECT_API_URL=prefect_server, PREFECT_HOME=str(tmp_path / "home"))
    log = tmp_path / "schedule.log"
    with log.open("w") as out:
        proc = subprocess.Popen([str(BIN / "curate"), "schedule", str(config), "--cron", "0 2 * * *",
                                 "--name", "nightly"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.time() + 180
        while "Ctrl-C stops" not in log.read_text():
            assert proc.poll() is None and time.time() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        with SyncPrefectClient(prefect_server) as client:
            deployment = client.read_deployment_by_name("curate-incremental-refresh/nightly")
            assert not deployment.paused
            run = client.create_flow_run_from_deployment(deployment.id)
            while client.read_flow_run(run.id).state_type.value != "RUNNING":
                assert proc.poll() is None and time.time() < deadline, log.read_text()[-3000:]
                time.sleep(0.2)
            os.kill(proc.pid, signal.SIGINT)
            sent = time.time()
            proc.wait(timeout=60)
            stopped_in = time.time() - sent
            text = log.read_text()
            assert stopped_in < 15, text[-3000:]
            assert proc.returncode == 0 and "Traceback" not in text, text[-3000:]
            assert text.splitlines()[-1] == "stopped serving nightly: its schedule is paused"
            assert client.read_deployment(deployment.id).paused
            assert client.read_flow_run(run.id).state_type.value != "COMPLETED"  # cancelled, not waited for
        assert not (tmp_path / "out" / "index.parquet").exists()
        deadline = time.time() + 5  # multiprocessing's resource tracker ends when its parent has
        while group_processes(proc.pid) and time.time() < deadline:
            time.sleep(0.2)
        assert group_processes(proc.pid) == []
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
