"""Scan: manifest rows, label sources, incremental rescans, fsspec and a separate Dask cluster."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import fsspec
import pyarrow.parquet as pq
import pytest

from curate.config import from_dict
from curate.scan import scan
from curate.schema import MANIFEST
from curate.workspace import Workspace

from conftest import encode, photo_like, write


def manifest(out) -> dict[str, dict]:
    rows = Workspace(str(out)).read("manifest", MANIFEST).to_pylist()
    return {r["path"]: r for r in rows}


def test_layout_labels_and_error_rows(tree, tmp_path, cfg):
    summary = scan(str(tree), str(tmp_path / "out"), cfg)
    rows = manifest(tmp_path / "out")
    assert summary.files == 8 and summary.ok == 7 and summary.errors == {"not_image": 1}
    assert rows["train/a/0.jpg"]["label"] == "a" and rows["train/a/0.jpg"]["split"] == "train"
    assert rows["test/a/0.jpg"]["split"] == "test"
    ok = rows["train/b/1.jpg"]
    assert ok["status"] == "ok" and ok["format"] == "JPEG" and (ok["width"], ok["height"]) == (96, 72)
    assert len(ok["phash_d8"]) == 8 and ok["phash_d8"][0] == ok["phash"]
    bad = rows["train/a/notes.jpg"]
    assert bad["status"] == "error" and bad["error_code"] == "not_image" and bad["phash"] is None


def test_class_only_layout_and_unlabelled(tmp_path, cfg):
    src = tmp_path / "src"
    write(src / "cats" / "x.jpg", encode(photo_like(1)))
    write(src / "loose.jpg", encode(photo_like(2)))
    scan(str(src), str(tmp_path / "out"), cfg)
    rows = manifest(tmp_path / "out")
    assert (rows["cats/x.jpg"]["label"], rows["cats/x.jpg"]["split"]) == ("cats", None)
    assert rows["loose.jpg"]["label"] is None


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_labels_file(tree, tmp_path, kind):
    import pyarrow as pa

    table = pa.table({"path": ["train/a/0.jpg", "test/a/0.jpg"], "label": ["dog", "cat"],
                      "split": ["val", "test"]})
    labels = tmp_path / f"labels.{kind}"
    if kind == "csv":
        rows = zip(*(table.column(c).to_pylist() for c in table.column_names))
        labels.write_text("path,label,split\n" + "\n".join(f"{p},{label},{s}" for p, label, s in rows) + "\n")
    else:
        pq.write_table(table, labels)
    scan(str(tree), str(tmp_path / "out"), from_dict({"scan": {"labels": str(labels)}}))
    rows = manifest(tmp_path / "out")
    assert (rows["train/a/0.jpg"]["label"], rows["train/a/0.jpg"]["split"]) == ("dog", "val")
    assert rows["train/a/1.jpg"]["label"] is None  # not in the labels file


def test_rescan_is_incremental(tree, tmp_path, cfg):
    out = tmp_path / "out"
    scan(str(tree), str(out), cfg)
    before = manifest(out)
    (tree / "train" / "b" / "0.jpg").unlink()
    write(tree / "train" / "b" / "new.jpg", encode(photo_like(99)))
    time.sleep(0.01)
    write(tree / "train" / "a" / "1.jpg", encode(photo_like(98)))  # changed content
    summary = scan(str(tree), str(out), cfg)
    after = manifest(out)
    assert summary.decoded == 2 and summary.reused == 6  # new + changed decoded; the rest reused
    assert after["train/b/0.jpg"]["status"] == "removed"
    assert after["train/b/new.jpg"]["status"] == "ok"
    assert after["train/a/1.jpg"]["bytes_hash"] != before["train/a/1.jpg"]["bytes_hash"]
    assert after["train/a/2.jpg"] == before["train/a/2.jpg"]


def test_same_input_same_manifest(tree, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    scan(str(tree), str(a), from_dict({"engine": {"partition_size": 3, "workers": 2}}))
    scan(str(tree), str(b), from_dict({"engine": {"partition_size": 1000}}))
    assert Workspace(str(a)).read("manifest", MANIFEST).equals(Workspace(str(b)).read("manifest", MANIFEST))


def decoder_starts(monkeypatch) -> list[list[str]]:
    """The command of every decoder child this process starts from now on (idle ones are closed
    first, so none is reused)."""
    from curate.imaging import sandbox

    sandbox.close_idle()
    started: list[list[str]] = []
    popen = subprocess.Popen

    def recorded(args, *rest, **kw):
        if "curate.imaging.sandbox" in args:
            started.append(args)
        return popen(args, *rest, **kw)

    monkeypatch.setattr(sandbox.subprocess, "Popen", recorded)
    return started


def test_a_local_scan_decodes_on_the_drivers_threads_one_child_each(tree, tmp_path, monkeypatch):
    """No scheduler configured: the partitions run on `workers` threads of the driver, each decoding
    in one child (reused from partition to partition), and no Dask cluster is started."""
    from curate import engine
    from curate.imaging import sandbox

    def no_cluster(self):
        raise AssertionError("a local scan started a Dask cluster")

    monkeypatch.setattr(engine._LazyCluster, "address", no_cluster)
    started = decoder_starts(monkeypatch)
    summary = scan(str(tree), str(tmp_path / "out"), from_dict({"engine": {"partition_size": 2, "workers": 2}}))
    sandbox.close_idle()
    assert summary.ok == 7 and summary.decoded == 8
    assert len(Workspace(str(tmp_path / "out")).parts("manifest")) == 4
    assert len(started) == 2


@pytest.mark.slow
def test_the_plans_local_cluster_is_closed_and_the_decode_runs_on_the_drivers_threads(tree, tmp_path, monkeypatch):
    """More than one group of paths: the plan runs on a local cluster, which is closed before
    the decode, whose children are the driver's own; the manifest is a one-group scan's."""
    from curate import engine
    from curate.imaging import sandbox
    from curate.scan import plan

    closed = []
    close = engine._LazyCluster.close
    monkeypatch.setattr(engine._LazyCluster, "close", lambda self: closed.append(self.cluster) or close(self))
    one = tmp_path / "one"
    scan(str(tree), str(one), from_dict({"engine": {"partition_size": 2, "workers": 2}}))
    monkeypatch.setattr(plan, "GROUP_ROWS", 3)
    started = decoder_starts(monkeypatch)
    grouped = tmp_path / "grouped"
    scan(str(tree), str(grouped), from_dict({"engine": {"partition_size": 2, "workers": 2}}))
    sandbox.close_idle()
    assert closed[-2] is not None and closed[-1] is None  # closed before the decode, then at the end
    assert len(started) == 2
    rows = {r["path"]: r for r in Workspace(str(grouped)).read("manifest", MANIFEST).to_pylist()}
    assert rows == {r["path"]: r for r in Workspace(str(one)).read("manifest", MANIFEST).to_pylist()}


def test_one_partition_decodes_with_every_worker_also_above_the_thread_limit(tree, tmp_path, monkeypatch):
    from curate import engine
    from curate.imaging import sandbox

    monkeypatch.setattr(engine, "LOCAL_THREADS_MAX", 1)
    started = decoder_starts(monkeypatch)
    monkeypatch.setattr(sandbox, "MIN_PATHS_PER_DECODER", 1)
    summary = scan(str(tree), str(tmp_path / "out"), from_dict({"engine": {"partition_size": 1000, "workers": 2}}))
    sandbox.close_idle()
    assert summary.decoded == 8 and len(started) == 2


def test_a_scan_killed_after_its_last_partition_resumes_with_none_to_decode(tree, tmp_path, monkeypatch):
    """Every part is in the staging folder but the manifest was not swapped in: the rerun decodes
    nothing and swaps the staged parts in."""
    from curate.scan import stage

    out = tmp_path / "out"
    cfg = from_dict({"engine": {"partition_size": 3, "workers": 2}})
    run_tasks = stage.run_tasks

    def killed_after(*args, **kwargs):
        run_tasks(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(stage, "run_tasks", killed_after)
    with pytest.raises(KeyboardInterrupt):
        scan(str(tree), str(out), cfg)
    monkeypatch.setattr(stage, "run_tasks", run_tasks)
    summary = scan(str(tree), str(out), cfg)
    assert summary.ok == 7 and summary.decoded == 0
    scan(str(tree), str(tmp_path / "whole"), cfg)
    assert manifest(out) == manifest(tmp_path / "whole")


@pytest.mark.slow
def test_more_workers_than_local_threads_scan_on_a_local_cluster_with_the_same_manifest(tree, tmp_path, monkeypatch):
    from curate import engine

    monkeypatch.setattr(engine, "LOCAL_THREADS_MAX", 1)
    a, b = tmp_path / "a", tmp_path / "b"
    scan(str(tree), str(a), from_dict({"engine": {"partition_size": 3, "workers": 2}}))
    scan(str(tree), str(b), from_dict({"engine": {"partition_size": 3, "workers": 1}}))
    assert engine.local_threads(from_dict({"engine": {"workers": 2}}).engine) == 0
    assert Workspace(str(a)).read("manifest", MANIFEST).equals(Workspace(str(b)).read("manifest", MANIFEST))


def test_memory_filesystem(tree, cfg):
    fs = fsspec.filesystem("memory")
    for p in tree.rglob("*"):
        if p.is_file():
            fs.pipe(f"/src/{p.relative_to(tree).as_posix()}", p.read_bytes())
    summary = scan("memory://src", "memory://out", cfg)
    assert summary.ok == 7
    rows = Workspace("memory://out").read("manifest", MANIFEST).to_pylist()
    assert {r["path"] for r in rows} == {p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file()}


def test_source_files_unchanged(tree, tmp_path, cfg):
    def snapshot():
        return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in tree.rglob("*") if p.is_file()}

    before = snapshot()
    scan(str(tree), str(tmp_path / "out"), cfg)
    assert snapshot() == before


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_separate_dask_scheduler_and_worker(tree, tmp_path):
    port = _free_port()
    bindir = Path(sys.executable).parent
    sched = subprocess.Popen([str(bindir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                              "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = subprocess.Popen([str(bindir / "dask"), "worker", f"tcp://127.0.0.1:{port}", "--nworkers", "1",
                               "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        cfg = from_dict({"engine": {"scheduler": f"tcp://127.0.0.1:{port}", "partition_size": 2}})
        summary = scan(str(tree), str(tmp_path / "out"), cfg)
        assert summary.ok == 7 and summary.files == 8
    finally:
        for p in (worker, sched):
            p.terminate()
            p.wait(timeout=30)


def test_cli_scan_and_errors(tree, tmp_path, runner):
    from curate.cli import main

    result = runner.invoke(main, ["scan", str(tree), "-o", str(tmp_path / "out"), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "7 images ok" in result.output and "not_image" in result.output

    missing = runner.invoke(main, ["scan", str(tmp_path / "nope"), "-o", str(tmp_path / "o2")])
    assert missing.exit_code == 2 and "does not exist" in missing.output and "Traceback" not in missing.output
    (tmp_path / "empty").mkdir()
    empty = runner.invoke(main, ["scan", str(tmp_path / "empty"), "-o", str(tmp_path / "o3")])
    assert empty.exit_code == 2 and "contains no files" in empty.output
    bad_labels = tmp_path / "bad.csv"
    bad_labels.write_text("file,klass\nx,y\n")
    unknown = runner.invoke(main, ["scan", str(tree), "-o", str(tmp_path / "o4"), "--labels", str(bad_labels)])
    assert unknown.exit_code == 2 and "must have columns path,label" in unknown.output
    escape = tmp_path / "escape.csv"
    escape.write_text("path,label\n../../etc/passwd,x\n")
    refused = runner.invoke(main, ["scan", str(tree), "-o", str(tmp_path / "o5"), "--labels", str(escape)])
    assert refused.exit_code == 2 and "escapes the source" in refused.output
    nolabels = runner.invoke(main, ["scan", str(tree), "-o", str(tmp_path / "o6"), "--labels", str(tmp_path / "x.csv")])
    assert nolabels.exit_code == 2 and "not found" in nolabels.output
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o4").exists()
