"""SRC and OUT on S3, end to end, against a real S3 API server process (moto_server on loopback,
tests/s3server.py) through the real s3fs: the scan from a bucket (layout labels, a labels file in
the bucket), a separate Dask scheduler and two workers reading the bucket, every stage and the
readers with OUT in the bucket, secrets never written, store errors as one line, the lock's
conditional create, a journalled folder swap finished after a kill, and a SIGKILLed run resumed."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from curate.cli import main
from curate.schema import MANIFEST, PLAN
from curate.workspace import Workspace

from conftest import encode, free_port, photo_like, write
from s3server import SECRET, upload

BIN = Path(sys.executable).parent


def make_tree(root: Path) -> Path:
    """train/{cat: 5, dog: 4}, test/{cat: 2, dog: 1} small JPEGs, a PNG, a text file named .jpg, and a
    JPEG whose name has glob characters."""
    seed = 100
    for split, cls, n in [("train", "cat", 5), ("train", "dog", 4), ("test", "cat", 2), ("test", "dog", 1)]:
        for i in range(n):
            seed += 1
            write(root / split / cls / f"{i}.jpg", encode(photo_like(seed, (64, 48))))
    write(root / "train" / "dog" / "p.png", encode(photo_like(7, (40, 40)), "PNG"))
    write(root / "train" / "cat" / "notes.jpg", b"not an image\n")
    write(root / "train" / "cat" / "odd [1] *?.jpg", encode(photo_like(8, (64, 48))))
    return root


@pytest.fixture
def bucket_src(s3, tmp_path) -> tuple[str, str, Path]:
    """(bucket, SRC URL, the same tree on local disk)."""
    local = make_tree(tmp_path / "photos")
    bucket = s3.bucket()
    upload(s3.fs(), local, f"s3://{bucket}/photos")
    return bucket, f"s3://{bucket}/photos", local


def decided(url: str) -> dict:
    """What a run decided in OUT (local or s3://), without timestamps: manifest rows (no mtime),
    plan, index rows and the bytes of every shard and augmented shard."""
    ws = Workspace(url)
    manifest = sorted(ws.read("manifest", MANIFEST).to_pylist(), key=lambda r: r["path"])
    for r in manifest:
        r.pop("mtime")
    out = {"manifest": manifest}
    if ws.exists("plan"):
        out["plan"] = ws.read("plan", PLAN).sort_by("path").to_pylist()
    if ws.exists("index.parquet"):
        with ws.fs.open(ws.path("index.parquet"), "rb") as f:
            out["index"] = pq.read_table(f).sort_by("sample_id").to_pylist()
        out["shards"] = {rel: ws.fs.cat_file(ws.path(rel)) for folder in ("shards", "augmented")
                         for rel in ws.files(folder) if rel.endswith(".parquet")}
    return out


def cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "curate"), *args], capture_output=True, text=True, env=env, timeout=timeout)


def test_scan_from_a_bucket_equals_the_local_scan_and_reads_a_labels_file_there(bucket_src, tmp_path, runner):
    bucket, src, local = bucket_src
    out = f"s3://{bucket}/scanned"
    result = runner.invoke(main, ["scan", src, "-o", out, "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert runner.invoke(main, ["scan", str(local), "-o", str(tmp_path / "from-disk"), "--workers", "1"]).exit_code == 0
    got, want = decided(out), decided(str(tmp_path / "from-disk"))
    assert got == want
    s3 = Workspace(f"s3://{bucket}").fs
    s3.pipe_file(f"{bucket}/photos/train/dog/new.jpg", encode(photo_like(999, (64, 48))))
    result = runner.invoke(main, ["scan", src, "-o", out, "--workers", "1"])  # incremental, OUT in the bucket
    assert result.exit_code == 0 and "decoded 1 (reused 15)" in result.output, result.output
    assert len(decided(out)["manifest"]) == 16 and not Workspace(out).exists("manifest.new")
    by_path = {r["path"]: r for r in got["manifest"]}
    assert (by_path["train/dog/1.jpg"]["label"], by_path["train/dog/1.jpg"]["split"]) == ("dog", "train")
    assert by_path["train/cat/notes.jpg"]["status"] == "error" and by_path["train/dog/p.png"]["status"] == "ok"
    assert by_path["train/cat/odd [1] *?.jpg"]["status"] == "ok"

    s3.pipe_file(f"{bucket}/meta/labels.csv",
                 b"path,label,split\ntrain/cat/0.jpg,tabby,val\ntest/dog/0.jpg,puppy,test\n")
    result = runner.invoke(main, ["scan", src, "-o", str(tmp_path / "labelled"), "--labels",
                                  f"s3://{bucket}/meta/labels.csv", "--workers", "1"])
    assert result.exit_code == 0, result.output
    rows = {r["path"]: r for r in decided(str(tmp_path / "labelled"))["manifest"]}
    assert (rows["train/cat/0.jpg"]["label"], rows["train/cat/0.jpg"]["split"]) == ("tabby", "val")
    assert (rows["test/dog/0.jpg"]["label"], rows["train/cat/1.jpg"]["label"]) == ("puppy", None)


def test_store_errors_are_one_line(s3, bucket_src, tmp_path, monkeypatch, runner):
    import s3fs

    bucket, src, _ = bucket_src
    cases = [(["scan", f"s3://no-such-bucket-{os.getpid()}/x", "-o", str(tmp_path / "o")], {},
              "does not exist"),
             (["scan", src, "-o", f"s3://no-such-bucket-{os.getpid()}/out"], {}, "bucket of s3://"),
             (["scan", src, "-o", str(tmp_path / "o")], {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None},
              "no credentials"),
             (["scan", src, "-o", str(tmp_path / "o")], {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
                                                          "AWS_MAX_ATTEMPTS": "1"}, "cannot reach the object store")]
    for args, env, expected in cases:
        with monkeypatch.context() as mp:
            for key, value in env.items():
                mp.delenv(key) if value is None else mp.setenv(key, value)
            s3fs.S3FileSystem.clear_instance_cache()  # a cached client keeps the old credentials and endpoint
            result = runner.invoke(main, args)
        s3fs.S3FileSystem.clear_instance_cache()
        assert result.exit_code == 2, (args, env, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0] and "Traceback" not in result.output, result.output
    assert not os.path.exists(tmp_path / "o" / "manifest")


def test_conditional_create_lets_one_of_many_runs_take_the_lock(s3):
    from curate.lock import LOCK, _try_create

    ws = Workspace(f"s3://{s3.bucket()}/out")
    wins: list[bool] = []
    start = threading.Barrier(6)

    def contender(i: int) -> None:
        start.wait()
        wins.append(_try_create(ws, {"host": "h", "pid": i, "started": time.time()}))

    threads = [threading.Thread(target=contender, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False] * 5 + [True] and ws.exists(LOCK)


def test_a_swap_killed_halfway_is_finished_by_the_next_run_and_read_from_staging_meanwhile(s3):
    import pyarrow as pa

    from curate.lock import workspace_lock

    out = f"s3://{s3.bucket()}/out"
    ws = Workspace(out)
    ws.claim()  # as a run's lock does
    schema = pa.schema([("x", pa.int64())])
    ws.write_dataset("things", pa.table({"x": [1, 2, 3]}), schema, rows_per_file=1)  # old: 3 parts
    assert ws.read("things", schema).column("x").to_pylist() == [1, 2, 3]
    ws.write_table("things.new/part-00000.parquet", pa.table({"x": [10]}), schema)  # new: 2 parts
    ws.write_table("things.new/part-00001.parquet", pa.table({"x": [20]}), schema)
    ws.write_json("things.swap", {"staging": "things.new"})  # the commit point ...
    ws.fs.copy(ws.path("things.new/part-00000.parquet"), ws.path("things/part-00000.parquet"))  # ... then killed
    assert ws.read("things", schema).column("x").to_pylist() == [10, 20]  # readers see the new folder whole
    with workspace_lock(out):  # the next run finishes the swap
        assert not ws.exists("things.swap") and not ws.exists("things.new")
    assert sorted(ws.files("things")) == ["things/part-00000.parquet", "things/part-00001.parquet"]
    assert ws.read("things", schema).column("x").to_pylist() == [10, 20]


@pytest.mark.slow
def test_every_stage_with_out_in_the_bucket_matches_a_local_out_and_writes_no_secret(bucket_src, s3, tmp_path):
    from curate.config import from_dict
    from curate.data import ShardDataset, ShardIterableDataset
    from curate.pipeline import run_pipeline

    bucket, src, _ = bucket_src
    out = f"s3://{bucket}/curated"
    config = tmp_path / "c.toml"
    config.write_text(f"""
[engine]
workers = 1
[run]
stages = ["scan", "validate", "dedup", "rebalance", "shard", "augment", "report"]
[shard]
shard_size = "2KB"
[augment]
copies = 1
classes = ["dog"]
size = 32
[storage]
options = {{s3 = {{key = "{s3.env()['AWS_ACCESS_KEY_ID']}", secret = "{SECRET}", endpoint_url = "{s3.endpoint}"}}}}
""")
    env = {**os.environ, "AWS_SECRET_ACCESS_KEY": "env-secret-ignored-by-the-config-options-9b1e"}
    done = cli("-v", "run", src, "-o", out, "--config", str(config), env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{out}/report/index.html" in done.stdout
    verified = CliRunner().invoke(main, ["verify", out])
    assert verified.exit_code == 0 and "all ok" in verified.output, verified.output
    # the same stages into a local OUT give the same decisions and byte-identical shards
    run_pipeline(src, str(tmp_path / "local"), from_dict({  # in-process; without the report (it names OUT)
        "engine": {"workers": 1}, "run": {"stages": ["scan", "validate", "dedup", "rebalance", "shard", "augment"]},
        "shard": {"shard_size": "2KB"}, "augment": {"copies": 1, "classes": ["dog"], "size": 32}}))
    got, want = decided(out), decided(str(tmp_path / "local"))
    assert got == want and any(k.startswith("augmented/") for k in got["shards"]), sorted(got["shards"])
    # the readers, on s3:// shards
    train = ShardDataset(out, "train")
    image, label = train[0]
    assert image.ndim == 3 and isinstance(label, int) and len(train) == sum(
        1 for r in got["index"] if r["split"] == "train" and r["shard"].startswith("shards/"))
    assert sum(1 for _ in ShardIterableDataset(out, "train")) == len(train)
    # no secret in any object of OUT, in the command's output, or anywhere in the local OUT
    ws = Workspace(out)
    objects = ws.fs.find(ws.root)
    assert any(p.endswith("runs/scan.json") for p in objects)
    for p in objects:
        assert SECRET.encode() not in ws.fs.cat_file(p), p
    for p in (tmp_path / "local").rglob("*"):
        assert not p.is_file() or SECRET.encode() not in p.read_bytes(), p
    assert SECRET not in done.stdout + done.stderr
    assert ws.read_json("runs/scan.json")["config"]["storage"]["options"]["s3"]["secret"] == "***"


@pytest.mark.slow
def test_a_dask_scheduler_and_two_workers_scan_the_bucket(bucket_src, s3, tmp_path):
    from distributed import Client

    bucket, src, local = bucket_src
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "DASK_LOGGING__DISTRIBUTED": "warning"}
    procs = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)]
    try:
        procs += [subprocess.Popen([str(BIN / "dask"), "worker", address, "--nworkers", "1", "--nthreads", "1",
                                    "--host", "127.0.0.1", "--no-dashboard", "--name", f"w{i}"], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
                   for i in range(2)]
        deadline = time.time() + 90
        while True:
            try:
                with Client(address, timeout="5s") as client:
                    client.wait_for_workers(2, timeout=5)
                    break
            except (OSError, TimeoutError):
                assert time.time() < deadline, "the Dask scheduler and workers did not start"
        config = tmp_path / "c.toml"
        config.write_text("[engine]\npartition_size = 4\n[scan]\nisolate = false\n")  # 4 partitions, 2 workers
        out = f"s3://{bucket}/by-cluster"
        done = cli("scan", src, "-o", out, "--config", str(config), "--scheduler", address)
        assert done.returncode == 0, done.stderr[-3000:]
        with Client(address, timeout="10s") as client:
            executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
        assert len(executed) == 2 and all(n > 0 for n in executed.values()), executed
        from curate.config import from_dict
        from curate.scan import scan

        scan(str(local), str(tmp_path / "ref"), from_dict({"engine": {"workers": 1}}))  # in-process, from disk
        assert decided(out) == decided(str(tmp_path / "ref"))
    finally:
        for p in reversed(procs):
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


@pytest.mark.slow
def test_a_run_killed_on_s3_resumes_to_the_same_outputs_and_a_second_run_is_refused(bucket_src, s3, tmp_path):
    from curate.config import from_dict
    from curate.pipeline import run_stage

    bucket, src, _ = bucket_src
    out = f"s3://{bucket}/killed"
    ws = Workspace(out)
    settings = {"engine": {"workers": 1}, "scan": {"isolate": False}, "shard": {"shard_size": "1KB", "min_shards": 1}}
    for stage in ("scan", "validate", "dedup", "rebalance"):
        run_stage(stage, src, out, from_dict(settings))
    config = tmp_path / "c.toml"
    config.write_text('[engine]\nworkers = 1\n[shard]\nshard_size = "1KB"\nmin_shards = 1\n')

    def stats() -> int:  # complete shards (their _stats sidecars)
        return sum(1 for rel in ws.files("shards") if "/_stats/" in rel)

    proc = subprocess.Popen([str(BIN / "curate"), "shard", out, "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and stats() < 2 and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = stats()
    assert done >= 2 and ws.exists(".lock") and not ws.exists("runs/shard.json")  # killed mid-shard, lock held
    for rel in ws.files("shards"):
        if rel.endswith(".parquet"):
            with ws.fs.open(ws.path(rel), "rb") as f:
                pq.read_metadata(f)  # every visible shard is a complete Parquet file

    holder = subprocess.Popen([str(BIN / "python"), "-c",
                               "import time; from curate.lock import workspace_lock\n"
                               f"with workspace_lock({out!r}):\n    print('held', flush=True); time.sleep(600)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"  # the killed run's lock was stale: taken over
        refused = cli("shard", out, "--config", str(config))
        assert refused.returncode == 3 and refused.stdout == ""
        assert refused.stderr.count("\n") == 1 and f"pid {holder.pid}" in refused.stderr, refused.stderr
    finally:
        holder.kill()
        holder.wait()

    summary = run_stage("shard", None, out, from_dict(settings))  # resumes: the finished shards are kept
    assert summary.written == sum(summary.shards.values()) - done
    assert not ws.exists(".lock") and not [p for p in ws.fs.find(ws.root) if ".tmp-" in p or p.endswith(".swap")]
    reference = str(tmp_path / "whole")  # an uninterrupted run (into a local OUT: the same bytes, as tested above)
    for stage in ("scan", "validate", "dedup", "rebalance", "shard"):
        run_stage(stage, src, reference, from_dict(settings))
    assert decided(out) == decided(reference)
