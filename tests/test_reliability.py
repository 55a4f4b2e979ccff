"""Reliability: locks, determinism, hostile trees, unreadable and vanishing files, read-only
sources, a full disk."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_validate import bomb_png

from curate.config import ScanConfig, from_dict
from curate.imaging.sandbox import DecodeSettings
from curate.listing import Pending, list_some
from curate.pipeline import run_pipeline
from curate.scan import scan
from curate.scan.listed import list_source_into
from curate.scan.plan import plan
from curate.scan.stage import scan_partition, scan_tasks
from curate.schema import MANIFEST
from curate.source import Source
from curate.workspace import Workspace

from conftest import SAMPLE, encode, group_processes, photo_like, write

BIN = Path(sys.executable).parent


def rows(out: Path) -> dict[str, dict]:
    return {r["path"]: r for r in Workspace(str(out)).read("manifest", MANIFEST).to_pylist()}


def test_second_run_is_refused_and_a_killed_runs_lock_goes_stale(tmp_path, runner):
    from curate.cli import main

    out = tmp_path / "out"
    holder = subprocess.Popen([str(BIN / "python"), "-c",
                               "import sys, time; from curate.lock import workspace_lock\n"
                               f"with workspace_lock({str(out)!r}):\n    print('held', flush=True); time.sleep(600)"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    refused = runner.invoke(main, ["scan", str(SAMPLE), "-o", str(out)])
    assert refused.exit_code == 3 and f"pid {holder.pid}" in refused.output and "in use" in refused.output
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (out / ".lock").exists()  # the killed run left its lock ...
    assert runner.invoke(main, ["scan", str(SAMPLE), "-o", str(out)]).exit_code == 0  # ... which is stale
    assert not (out / ".lock").exists()


@pytest.mark.slow
def test_same_outputs_whatever_the_workers_and_partitions(tmp_path):
    from test_flows import outputs

    stages = {"stages": ["scan", "validate", "dedup", "rebalance", "shard", "augment"]}
    run_pipeline(str(SAMPLE), str(tmp_path / "a"),
                 from_dict({"engine": {"workers": 1, "partition_size": 1000}, "run": stages}))
    run_pipeline(str(SAMPLE), str(tmp_path / "b"),
                 from_dict({"engine": {"workers": 2, "partition_size": 7}, "run": stages}))
    assert outputs(tmp_path / "a") == outputs(tmp_path / "b")


def test_hostile_tree(tmp_path, cfg):
    src = tmp_path / "src"
    write(src / "ünïcødé class" / "a photo with spaces ☃.jpg", encode(photo_like(1)))
    write(src / "long" / ("x" * 200 + ".jpg"), encode(photo_like(2)))
    deep = src.joinpath(*[f"d{i}" for i in range(40)])
    write(deep / "deep.jpg", encode(photo_like(3)))
    (src / "long" / "loop").symlink_to(src, target_is_directory=True)  # a symlink loop
    outside = write(tmp_path / "outside" / "secret.jpg", encode(photo_like(4)))
    (src / "long" / "escape.jpg").symlink_to(outside)
    summary = scan(str(src), str(tmp_path / "out"), cfg)
    got = rows(tmp_path / "out")
    assert summary.ok == 3 and set(got) == {"ünïcødé class/a photo with spaces ☃.jpg", f"long/{'x' * 200}.jpg",
                                            "/".join(f"d{i}" for i in range(40)) + "/deep.jpg"}
    found = []
    list_some(Source(str(src)), [Pending("")], None, True, found.append)
    followed = {f.path for f in found}
    assert "long/escape.jpg" in followed  # followed only when asked; the loop still ends
    assert not any(p.startswith("long/loop/long/loop") for p in followed)


@pytest.mark.skipif(shutil.which("capsh") is None, reason="needs capsh to drop root's permission override")
def test_unreadable_files_and_folders_become_rows(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    write(src / "a" / "fine.jpg", encode(photo_like(1)))
    locked = write(src / "a" / "locked.jpg", encode(photo_like(2)))
    write(src / "b" / "hidden.jpg", encode(photo_like(3)))
    locked.chmod(0)
    (src / "b").chmod(0)
    try:  # root reads everything: drop that capability for the scan
        run = subprocess.run(["capsh", "--drop=cap_dac_override,cap_dac_read_search", "--",
                              "-c", f"'{BIN / 'curate'}' scan '{src}' -o '{out}'"], capture_output=True, text=True)
    finally:
        locked.chmod(0o644)
        (src / "b").chmod(0o755)
    assert run.returncode == 0, run.stderr
    got = rows(out)
    assert got["a/fine.jpg"]["status"] == "ok"
    assert got["a/locked.jpg"]["error_code"] == "unreadable" and "Permission" in got["a/locked.jpg"]["error_message"]
    assert got["b"]["error_code"] == "unreadable"


def test_file_that_vanishes_during_the_scan(tmp_path, cfg):
    src = tmp_path / "src"
    write(src / "a" / "stays.jpg", encode(photo_like(1)))
    gone = write(src / "a" / "gone.jpg", encode(photo_like(2)))
    out, settings = str(tmp_path / "out"), from_dict({"scan": {"decode_size": 32, "max_pixels": 10**8}})
    Workspace(out).claim()
    planned = plan(out, settings, list_source_into(str(src), out, settings).files)
    gone.unlink()  # between listing and reading
    scan_partition(scan_tasks(str(src), out, settings, planned)[0])
    table = Workspace(str(tmp_path / "out")).read("manifest.new", MANIFEST).to_pylist()
    by_path = {r["path"]: r for r in table}
    assert by_path["a/gone.jpg"]["error_code"] == "vanished" and by_path["a/stays.jpg"]["status"] == "ok"


def _unshare(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["unshare", "--mount", "--map-root-user", "sh", "-c", script], capture_output=True,
                          text=True, timeout=600)


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare for a private mount")
def test_read_only_source_and_full_disk(tmp_path):
    src, ro, out = tmp_path / "src", tmp_path / "ro", tmp_path / "out"
    shutil.copytree(SAMPLE / "train" / "coffee", src / "coffee")
    ro.mkdir()
    out.mkdir()
    curate = BIN / "curate"
    probe = _unshare("true")
    if probe.returncode != 0:
        pytest.skip(f"unshare not permitted here: {probe.stderr.strip()}")
    config = tmp_path / "c.toml"
    config.write_text('[run]\nstages = ["scan", "validate", "dedup", "rebalance", "shard"]\n')
    run_cmd = f"'{curate}' run '{ro}' -o '{out}' --config '{config}'"
    script = (f"mount --bind -o ro '{src}' '{ro}' && mount -t tmpfs -o size=64k tmpfs '{out}' && "
              f"{run_cmd}; echo rc=$?; mount -o remount,size=8m '{out}' && {run_cmd}; echo rc=$?; "
              f"'{curate}' verify '{out}'")
    run = _unshare(script)
    codes = [line for line in run.stdout.splitlines() if line.startswith("rc=")]
    assert codes[0] != "rc=0" and codes[1] == "rc=0", run.stdout + run.stderr
    assert "out of disk space" in run.stderr and "Traceback" not in run.stderr
    assert "all ok" in run.stdout


def test_decoder_time_and_memory_limits_contain_hostile_images(tmp_path):
    import numpy as np
    from PIL import Image

    src = tmp_path / "src"
    write(src / "a" / "0_first.png", encode(photo_like(1), "PNG"))
    noise = np.random.default_rng(0).integers(0, 255, (3000, 3000, 3), dtype=np.uint8)
    Image.fromarray(noise).save(src / "a" / "1_slow.png", compress_level=1)  # ~0.3 s to decode
    write(src / "a" / "1_huge.png", bomb_png(12_000, 12_000, color_type=2))  # 432 MB of RGB, 100 bytes of file
    write(src / "a" / "2_after.png", encode(photo_like(2), "PNG"))
    for limits, victim, code in [({"timeout_s": 0.1}, "a/1_slow.png", "timeout"),
                                 ({"max_memory_mb": 384}, "a/1_huge.png", "memory_limit")]:
        out = tmp_path / code
        scan(str(src), str(out), from_dict({"scan": limits}))
        got = rows(out)
        assert got[victim]["error_code"] == code, got[victim]["error_message"]
        assert got["a/0_first.png"]["status"] == got["a/2_after.png"]["status"] == "ok"  # the scan went on


# A sitecustomize for the decoder children (via PYTHONPATH): while the file named by
# CURATE_TEST_CHILD_DEATHS counts above zero, a starting child counts it down and dies before it
# reads its job. Its stdout closes first and SIGKILL follows a moment later: the order the kernel
# tears a process down in (its files close before its exit can be waited for), the moment widened
# so that every death shows it.
_DIE_BEFORE_READING = """
import os, signal, time

left = os.environ["CURATE_TEST_CHILD_DEATHS"]
with open(left) as f:
    deaths = int(f.read())
if deaths:
    with open(left, "w") as f:
        f.write(str(deaths - 1))
    os.close(1)
    time.sleep(0.05)
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("depth", [0, 8], ids=["small job", "job larger than a pipe's buffer"])
def test_a_decoder_child_killed_before_it_reads_gives_decoder_crashed_not_timeout(tmp_path, monkeypatch, depth):
    """Three children in a row die before reading their job: each one's first file gets
    `decoder_crashed` (the pipe ended; it never timed out), and a fourth child decodes the rest
    exactly as this process does. A job larger than a pipe's buffer (long paths, as a partition of
    thousands of files has) cannot even be sent whole to a child that never reads it."""
    import pickle

    from curate.imaging.sandbox import DecodeJob, decode_file, sandboxed

    folder = Path(*["d" * 250] * depth)
    names = [(folder / f"{i}.png").as_posix() for i in range(40)]
    for i, name in enumerate(names):
        write(tmp_path / "src" / name, encode(photo_like(i), "PNG"))
    site = write(tmp_path / "site" / "sitecustomize.py", _DIE_BEFORE_READING.encode()).parent
    deaths = write(tmp_path / "deaths", b"3")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("CURATE_TEST_CHILD_DEATHS", str(deaths))
    job = DecodeJob(str(tmp_path / "src"), tuple(names),
                    DecodeSettings.of(ScanConfig(max_pixels=10**8, max_memory_mb=2048), str(tmp_path / "src")))
    assert (len(pickle.dumps(job)) > 1 << 16) == bool(depth)  # Linux's default pipe buffer: 64 KiB
    got = list(sandboxed(job))
    assert deaths.read_text() == "0"
    crashed = [facts for facts, _thumb, _size in got[:3]]
    assert [facts["error_code"] for facts in crashed] == ["decoder_crashed"] * 3, crashed
    assert all(facts["error_message"] == "the decoder process died (exit -9)" for facts in crashed), crashed
    assert got[3:] == [decode_file((tmp_path / "src" / name).read_bytes(), job) for name in names[3:]]


# A sitecustomize for the decoder children: each child appends its pid to CURATE_TEST_CHILD_STARTS.
_COUNT_STARTS = """
import os
with open(os.environ["CURATE_TEST_CHILD_STARTS"], "a") as f:
    f.write(f"{os.getpid()}\\n")
"""


def test_a_decoder_child_takes_job_after_job_with_the_same_settings(tmp_path, monkeypatch):
    """A child that gave every result of its job decodes the next job with the same settings (a
    worker starts its decoders once, not once per partition), also when the consumer stops at the
    last result (`zip`); other settings get a child of their own, a child whose results were left
    unread is killed, not reused, and `close_idle` ends the idle ones."""
    from curate.imaging import sandbox

    src = tmp_path / "src"
    names = [f"{i}.png" for i in range(12)]
    for i, name in enumerate(names):
        write(src / name, encode(photo_like(i), "PNG"))
    site = write(tmp_path / "site" / "sitecustomize.py", _COUNT_STARTS.encode()).parent
    starts = tmp_path / "starts"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("CURATE_TEST_CHILD_STARTS", str(starts))
    settings = DecodeSettings.of(ScanConfig(), str(src))

    def decode(paths: list[str], settings: DecodeSettings = settings, take: int | None = None) -> list[sandbox.Result]:
        job = sandbox.DecodeJob(str(src), tuple(paths), settings)
        results = [r for _p, r in zip(paths[:take] if take else paths, sandbox.sandboxed(job))]
        assert results == [sandbox.decode_file((src / p).read_bytes(), job) for p in paths[:len(results)]]
        return results

    def children() -> int:
        return len(starts.read_text().split())

    try:
        decode(names[:4])
        decode(names[4:8])  # stopped by zip at its last result: still handed back
        decode(names[8:])
        assert children() == 1
        decode(names[:3], DecodeSettings.of(ScanConfig(timeout_s=7.0), str(src)))
        assert children() == 2
        decode(names, take=2)  # results left unread: that child is killed
        decode(names[:2])
        assert children() == 3
    finally:
        sandbox.close_idle()
    pids = [int(p) for p in starts.read_text().split()]
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)  # ended and waited for


@pytest.mark.slow
def test_ctrl_c_stops_a_scan_on_threads_at_once_and_its_rerun_resumes(tmp_path):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) while the scan's threads
    decode partitions that take many seconds: it stops within seconds with one line (the running
    partitions are not waited for; the decoder children leave it to the parent and end when their
    pipes close, without a traceback), and the same command then finishes the scan."""
    src = tmp_path / "src"
    originals = [write(tmp_path / f"{i}.png", encode(photo_like(i, (1600, 1200)), "PNG")) for i in range(4)]
    for i in range(480):  # hard links: 480 paths to decode, 4 files' worth of disk
        target = src / f"c{i % 2}" / f"{i:04d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(originals[i % 4], target)
    config = tmp_path / "c.toml"
    config.write_text("[engine]\npartition_size = 120\nworkers = 2\n")
    cmd = [str(BIN / "curate"), "scan", str(src), "-o", str(tmp_path / "out"), "--config", str(config)]
    # a shell's background job (CI's, maybe) starts with SIGINT ignored, and would hand that on: a
    # handler of our own here is reset to the default in the child, as at a terminal
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        deadline = time.time() + 120
        while len([p for p in group_processes(proc.pid) if "curate.imaging.sandbox" in p]) < 2:
            assert proc.poll() is None and time.time() < deadline
            time.sleep(0.1)
        time.sleep(1.0)  # both threads are inside their first partition (120 images of ~20 ms and more)
        os.killpg(proc.pid, signal.SIGINT)
        sent = time.time()
        _out, err = proc.communicate(timeout=60)
        stopped_in = time.time() - sent
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130 and "interrupted: rerun the same command to resume" in err, err[-2000:]
    assert stopped_in < 5.0  # it took 18 s when the running partitions were waited for
    deadline = time.time() + 5  # the children see their pipes close
    while group_processes(proc.pid) and time.time() < deadline:
        time.sleep(0.1)
    assert group_processes(proc.pid) == []
    assert "Traceback" not in err and "Exception ignored" not in err, err[-2000:]
    resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0 and "480 images ok" in resumed.stdout, resumed.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("delay_s", [1.0, 3.0, 6.0])
def test_killed_run_resumes_to_the_same_outputs(tmp_path, delay_s):
    """SIGKILL `curate run` at several points (scan, dedup, shard, augment), rerun, compare."""
    from test_flows import outputs

    config = tmp_path / "c.toml"
    config.write_text('[rebalance]\nstrategy = "floor"\nfloor = 8\noversample = "augment"\n'
                      '[augment]\nsize = 64\n[shard]\nshard_size = "20KB"\n'
                      '[run]\nstages = ["scan", "validate", "dedup", "rebalance", "shard", "augment"]\n')
    cmd = [str(BIN / "curate"), "run", str(SAMPLE), "--config", str(config), "-o"]
    killed = subprocess.Popen(cmd + [str(tmp_path / "killed")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    time.sleep(delay_s)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    resumed = subprocess.run(cmd + [str(tmp_path / "killed")], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    clean = subprocess.run(cmd + [str(tmp_path / "clean")], capture_output=True, text=True, timeout=600)
    assert clean.returncode == 0, clean.stderr[-2000:]
    assert outputs(tmp_path / "killed") == outputs(tmp_path / "clean")
    augmented = sorted((tmp_path / "clean").glob("augmented/*/*.parquet"))
    assert augmented and all((tmp_path / "killed" / p.relative_to(tmp_path / "clean")).read_bytes() == p.read_bytes()
                             for p in augmented)


_FAULTS = """
import resource, sys
from curate.config import ScanConfig
from curate.imaging import sandbox
if sys.argv[2] == "plain":
    sandbox.DECODER_MALLOC = {}
settings = sandbox.DecodeSettings.of(ScanConfig(max_pixels=10**8, max_memory_mb=2048), sys.argv[1])
job = sandbox.DecodeJob(sys.argv[1], tuple(f"{i}.jpg" for i in range(60)), settings)
assert all(facts["status"] == "ok" for facts, _thumb, _size in sandbox.sandboxed(job))
sandbox.close_idle()  # the child exits and is waited for: its page faults count
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt)
"""


def test_the_decoder_child_reuses_its_memory_across_images(tmp_path):
    """With `DECODER_MALLOC` the child's page faults stop growing with every image (glibc would
    otherwise map and fault in each image's NumPy temporaries afresh); the decode is the same."""
    for i in range(60):
        write(tmp_path / f"{i}.jpg", encode(photo_like(i, (500, 375)), quality=90))

    def faults(mode: str) -> int:
        done = subprocess.run([sys.executable, "-c", _FAULTS, str(tmp_path), mode], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return int(done.stdout)

    plain, tuned = faults("plain"), faults("tuned")
    assert tuned < plain / 2, (plain, tuned)


def test_a_memory_limit_above_the_machines_own_cap_decodes_under_that_cap(tmp_path):
    """`scan.max_memory_mb` above the hard address-space limit the process was started with: the
    decoder child caps itself at that limit (it cannot raise it) rather than dying on every image."""
    import resource

    src = tmp_path / "src"
    for i in range(3):
        write(src / "a" / f"{i}.jpg", encode(photo_like(i)))
    config = tmp_path / "c.toml"
    config.write_text("[engine]\nworkers = 1\n[scan]\nmax_memory_mb = 16384\n")
    cap = 8 * 2**30

    def capped() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    run = subprocess.run([str(BIN / "curate"), "scan", str(src), "-o", str(tmp_path / "out"), "--config", str(config)],
                         preexec_fn=capped, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert {r["status"] for r in rows(tmp_path / "out").values()} == {"ok"}
