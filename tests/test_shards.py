"""Shards: round trip on sample_data/, readers (pyarrow, DuckDB, PyTorch), verify, resume after a kill."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import torch

from curate.config import from_dict
from curate.data import ShardDataset, ShardIterableDataset
from curate.pipeline import run_stage
from curate.schema import PLAN
from curate.shards.index import read_shard_stats
from curate.shards.writer import SHARD_FORMAT, sidecar, write_rows
from curate.workspace import TMP_MARK, Workspace

from conftest import SAMPLE

CFG = {"rebalance": {"strategy": "floor", "floor": 6}, "shard": {"shard_size": "40KB", "min_shards": 2}}


@pytest.fixture(scope="module")
def sharded(tmp_path_factory) -> Workspace:
    out = tmp_path_factory.mktemp("sharded")
    cfg = from_dict(CFG)
    for stage in ("scan", "validate", "dedup", "rebalance", "shard"):
        run_stage(stage, str(SAMPLE), str(out), cfg)
    return Workspace(str(out))


def all_rows(ws: Workspace) -> list[dict]:
    return ds.dataset(ws.path("shards"), format="parquet").to_table().to_pylist()


def test_round_trip_bytes_labels_splits_and_copies(sharded):
    plan = sharded.read("plan", PLAN).to_pandas()
    rows = all_rows(sharded)
    seen = Counter(r["sample_id"] for r in rows)
    kept = plan[plan["keep"]]
    assert seen == Counter({s: c for s, c in zip(kept["sample_id"], kept["copies"])})
    assert not set(plan.loc[~plan["keep"], "sample_id"]) & set(seen)  # removed ones never appear
    by_id = kept.set_index("sample_id")
    names = [c["name"] for c in sharded.read_json("dataset.json")["classes"]]
    for r in rows:
        assert r["image"]["bytes"] == (SAMPLE / r["source_path"]).read_bytes()
        assert r["label_name"] == by_id.at[r["sample_id"], "label"] == names[r["label"]]
    for path in sharded.fs.glob(sharded.path("shards", "*", "*.parquet")):
        split = path.split("/")[-2]
        ids = pq.read_table(path, columns=["sample_id"])["sample_id"].to_pylist()
        assert all(by_id.at[i, "split"] == split for i in ids)


def test_shard_count_multiple_and_dataset_json(sharded):
    doc = sharded.read_json("dataset.json")
    per_split = Counter(s["shard"].split("/")[1] for s in doc["shards"])
    assert all(n % 2 == 0 for n in per_split.values())
    assert doc["counts"]["after"]["train"]["cat"] == 6
    assert doc["class_weights"]["effective"] and doc["source"] == str(SAMPLE) and doc["versions"]["pyarrow"]
    assert doc["shard_counts"]["shards"]["train"] == doc["counts"]["after"]["train"]


def test_other_readers(sharded):
    import duckdb

    n = len(all_rows(sharded))
    glob = sharded.path("shards", "*", "*.parquet")
    assert duckdb.connect().execute(f"select count(*) from read_parquet('{glob}')").fetchall() == [(n,)]
    meta = pq.read_schema(sharded.fs.glob(glob)[0]).metadata
    assert b'"_type": "Image"' in meta[b"huggingface"]


def test_torch_datasets(sharded):
    train = ShardDataset(sharded.url, "train")
    image, label = train[0]
    assert image.dtype == torch.uint8 and image.shape[0] == 3 and isinstance(label, int)
    stream = ShardIterableDataset(sharded.url, "train", shuffle_buffer=8, seed=1)
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=2)
    labels = [lab for _img, lab in loader]
    assert len(labels) == len(train) == stream.length
    assert Counter(labels) == Counter(train[i][1] for i in range(len(train)))
    one_group = ShardDataset(sharded.url, "train", cached_row_groups=1)
    assert [one_group[i][1] for i in range(len(one_group))] == [train[i][1] for i in range(len(train))]
    assert len(one_group._cache) == 1 and len(ShardDataset(sharded.url, "train")._cache) == 0  # per instance

    def order(epoch: int) -> list[int]:
        stream.set_epoch(epoch)
        return [int(img.float().mean()) * 100 + lab for img, lab in stream]

    assert order(0) == order(0) and order(0) != order(1)


def test_verify_passes_then_catches_corruption(sharded, tmp_path, runner):
    from curate.cli import main

    ok = runner.invoke(main, ["verify", sharded.url])
    assert ok.exit_code == 0 and "all ok" in ok.output
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(sharded.root, copy)
    victim = read_shard_stats(Workspace(str(copy)))[0]["shard"]
    data = bytearray((copy / victim).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / victim).write_bytes(bytes(data))
    bad = runner.invoke(main, ["verify", str(copy)])
    assert bad.exit_code == 1 and victim in bad.output and "sha256" in bad.output


@pytest.mark.slow
def test_killed_shard_run_leaves_no_partial_shard_and_resumes(tmp_path):
    out = tmp_path / "out"
    cfg = dict(CFG, shard={"shard_size": "1KB", "min_shards": 1}, engine={"workers": 1})
    for stage in ("scan", "validate", "dedup", "rebalance"):
        run_stage(stage, str(SAMPLE), str(out), from_dict(cfg))
    config = tmp_path / "c.toml"
    config.write_text('[shard]\nshard_size = "1KB"\n[engine]\nworkers = 1\n')
    cmd = [str(Path(sys.executable).parent / "curate"), "shard", str(out), "--config", str(config)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    def complete() -> int:  # stats sidecars, not a temporary one the kill left behind
        return sum(1 for p in (out / "shards").glob("*/_stats/*.json") if not p.name.startswith(TMP_MARK))

    while time.time() < deadline and complete() < 3:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = complete()
    assert done >= 3
    for p in (out / "shards").glob("*/*.parquet"):
        if not p.name.startswith(TMP_MARK):
            pq.read_metadata(p)  # every visible shard is a complete Parquet file
    summary = run_stage("shard", None, str(out), from_dict(cfg))
    total = sum(summary.shards.values())
    assert summary.written == total - done and not list((out / "shards").glob(f"*/{TMP_MARK}*"))
    reference = tmp_path / "ref"
    for stage in ("scan", "validate", "dedup", "rebalance", "shard"):
        run_stage(stage, str(SAMPLE), str(reference), from_dict(cfg))
    for p in sorted((reference / "shards").glob("*/*.parquet")):
        assert (out / p.relative_to(reference)).read_bytes() == p.read_bytes()


def test_a_shard_written_under_another_schema_is_rewritten(sharded, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(sharded.root, out)
    ws = Workspace(str(out))
    rel = read_shard_stats(ws)[0]["shard"]
    stats = ws.read_json(sidecar(rel))
    ws.write_json(sidecar(rel), {**stats, "format": "an older curate's"})
    summary = run_stage("shard", str(SAMPLE), str(out), from_dict(CFG))
    assert summary.written == 1 and ws.read_json(sidecar(rel))["format"] == SHARD_FORMAT


def test_a_shard_is_written_a_row_group_at_a_time(tmp_path):
    """`write_rows` takes the shard's rows a chunk at a time and holds one row group's image bytes in
    Arrow, not the shard's (a shard of several GB would otherwise be in memory 3x over); the row
    groups have the size asked for whatever the chunks'; rows that fail midway leave no file."""
    chunk_rows, image_bytes, chunks = 4, 2**18, 8
    allocated = []

    def chunked():
        for c in range(chunks):
            allocated.append(pa.total_allocated_bytes())
            rows = range(c * chunk_rows, (c + 1) * chunk_rows)
            yield {"image": [{"bytes": bytes([i]) * image_bytes, "path": f"c{i % 2}/{i}.jpg"} for i in rows],
                   "label": [i % 2 for i in rows], "label_name": [f"c{i % 2}" for i in rows],
                   "sample_id": [f"{i:016x}" for i in rows], "source_path": [f"c{i % 2}/{i}.jpg" for i in rows],
                   "width": [8] * chunk_rows, "height": [8] * chunk_rows, "copy_index": [0] * chunk_rows,
                   "source_sample_id": [None] * chunk_rows, "augment_ops": [None] * chunk_rows,
                   "augment_seed": [None] * chunk_rows}

    def failing(chunks):
        yield next(chunks)
        raise ValueError("a sample that cannot be made")

    stats = write_rows(str(tmp_path), "shards/train/shard-00000.parquet", chunked(), 6, {})
    shard = pq.ParquetFile(tmp_path / "shards/train/shard-00000.parquet")  # row groups of 6 rows, however handed over
    assert [shard.metadata.row_group(i).num_rows for i in range(shard.metadata.num_row_groups)] == [6] * 5 + [2]
    images = shard.read(columns=["image"]).column("image").combine_chunks().field("bytes").to_pylist()
    assert images == [bytes([i]) * image_bytes for i in range(chunks * chunk_rows)]
    assert stats["count"] == chunks * chunk_rows and stats["histogram"] == {"c0": 16, "c1": 16}
    assert max(allocated) - allocated[0] < 2 * chunk_rows * image_bytes  # the whole shard: 8 chunks' worth
    with pytest.raises(ValueError, match="a sample that cannot be made"):  # the rows fail midway: no file stays
        write_rows(str(tmp_path), "shards/train/shard-00001.parquet", failing(chunked()), 6, {})
    assert sorted(p.name for p in (tmp_path / "shards/train").iterdir()) == ["_stats", "shard-00000.parquet"]
