"""Hugging Face `datasets` reads the shards the pipeline writes: `image` as Image, `label` as a
ClassLabel with the class names in order, the same rows streamed. Offline, cache under tmp_path."""
from __future__ import annotations

from pathlib import Path, PurePosixPath

import pyarrow.parquet as pq
import pytest

from curate.config import from_dict
from curate.pipeline import run_stage

from conftest import encode, photo_like, write

# Created in an order other than the sorted one: label i must be the i-th name in sorted order.
COUNTS = {"zebra": 5, "apple": 3, "mango": 4}
AUGMENT_SIZE = 32
CFG = {"engine": {"workers": 1}, "rebalance": {"strategy": "floor", "floor": 5, "oversample": "augment"},
       "shard": {"shard_size": "8KB", "min_shards": 4}, "augment": {"size": AUGMENT_SIZE}}


def size_of(seed: int) -> tuple[int, int]:
    return 64 + 4 * seed, 40 + 3 * seed


@pytest.fixture(scope="module")
def hf(tmp_path_factory):
    """`datasets`, imported with its cache in a temporary folder and the Hub offline."""
    cache = tmp_path_factory.mktemp("hf-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_DATASETS_CACHE", str(cache))
        mp.setenv("HF_HOME", str(cache / "home"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("HF_DATASETS_OFFLINE", "1")
        import datasets

        mp.setattr(datasets.config, "HF_HUB_OFFLINE", True)
        yield datasets, str(cache)


@pytest.fixture(scope="module")
def sharded(tmp_path_factory) -> tuple[Path, dict[str, tuple[int, int]]]:
    """A generated collection through scan .. shard and augment; returns OUT and each file's size."""
    root = tmp_path_factory.mktemp("hfsrc")
    src, out = root / "src", root / "out"
    sizes, seed = {}, 0
    for split, extra in (("train", 0), ("test", -COUNTS["apple"] + 1)):
        for name, n in COUNTS.items():
            for i in range(n + extra):
                seed += 1
                rel = f"{split}/{name}/{i}.jpg"
                write(src / rel, encode(photo_like(seed, size_of(seed))))
                sizes[rel] = size_of(seed)
    cfg = from_dict(CFG)
    for stage in ("scan", "validate", "dedup", "rebalance", "shard", "augment"):
        run_stage(stage, str(src), str(out), cfg)
    return out, sizes


def shard_files(out: Path, split: str) -> list[str]:
    return sorted(str(p) for root in ("shards", "augmented") for p in (out / root / split).glob("shard-*.parquet"))


def expected_rows(out: Path, split: str) -> list[tuple[str, int, int]]:
    index = pq.read_table(out / "index.parquet").to_pylist()
    return sorted((r["sample_id"], r["copy_index"], r["label"]) for r in index if r["split"] == split)


def test_load_dataset_features_labels_and_images(hf, sharded):
    datasets, cache = hf
    out, sizes = sharded
    names = sorted(COUNTS)
    files = {split: shard_files(out, split) for split in ("train", "test")}
    assert len(files["train"]) > 2 and any("/augmented/" in f for f in files["train"])  # several files, both kinds
    # 3 augmented variants over at least 4 shards: an empty file is always among them
    assert any(pq.ParquetFile(f).metadata.num_rows == 0 for f in files["train"])
    loaded = datasets.load_dataset("parquet", data_files=files, cache_dir=cache)
    for split, rows in loaded.items():
        assert isinstance(rows.features["image"], datasets.Image)
        assert rows.features["label"] == datasets.ClassLabel(names=names)
        assert sorted(zip(rows["sample_id"], rows["copy_index"], rows["label"])) == expected_rows(out, split)
        for row in rows:
            image, label = row["image"], row["label"]
            assert rows.features["label"].int2str(label) == row["label_name"]
            if row["source_sample_id"] is None:  # a copy of a source file
                assert PurePosixPath(row["source_path"]).parent.name == names[label]
                assert image.size == sizes[row["source_path"]]
            else:  # an augmented variant of a file in the same split
                assert image.size == (AUGMENT_SIZE, AUGMENT_SIZE)
            image.load()
            assert (image.width, image.height) == (row["width"], row["height"])
    assert any(r["source_sample_id"] for r in loaded["train"])
    single = next(f for f in files["test"] if pq.ParquetFile(f).metadata.num_rows)  # one file alone
    one = datasets.load_dataset("parquet", data_files=single, cache_dir=cache, split="train")
    assert one.features["label"] == datasets.ClassLabel(names=names)


def test_streaming_yields_the_same_rows(hf, sharded):
    datasets, cache = hf
    out, _ = sharded
    files = shard_files(out, "train")
    stream = datasets.load_dataset("parquet", data_files=files, cache_dir=cache, split="train", streaming=True)
    assert stream.features["label"] == datasets.ClassLabel(names=sorted(COUNTS))
    streamed = [(r["sample_id"], r["copy_index"], r["label"], r["image"].size) for r in stream]
    loaded = datasets.load_dataset("parquet", data_files=files, cache_dir=cache, split="train")
    assert streamed == [(r["sample_id"], r["copy_index"], r["label"], r["image"].size) for r in loaded]
    assert sorted(s[:3] for s in streamed) == expected_rows(out, "train")
