"""Semantic dedup above the in-memory search's size (issue 24): the embeddings are searched out of
core (`curate.search_disk`) and only the images in a pair are read whole, and `curate dedup
--semantic` writes the same duplicates as the in-memory search. The size threshold is lowered so
that a few thousand embeddings take the out-of-core path."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from curate.cli import main
from curate.dedup import semantic
from curate.schema import DUPLICATES, MANIFEST, embeddings_schema
from curate.workspace import Workspace

from conftest import encode, photo_like, write

DIM = 64


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture
def scanned_with_embeddings(tmp_path, runner):
    """OUT of 30 distinct scanned images, with embeddings: 3 planted pairs among the images (cosine
    about 0.95) and 3,000 embeddings of images no longer in the manifest (they join nothing)."""
    src = tmp_path / "src"
    for i in range(30):
        write(src / f"c{i % 3}" / f"{i}.jpg", encode(photo_like(100 + i, (48, 36))))
    out = tmp_path / "out"
    assert runner.invoke(main, ["scan", str(src), "-o", str(out)]).exit_code == 0
    ids = Workspace(str(out)).read("manifest", MANIFEST).sort_by("path")["sample_id"].to_pylist()
    rng = np.random.default_rng(0)
    vectors = unit(rng.normal(size=(len(ids) + 3000, DIM)))
    for a, b in ((0, 1), (5, 17), (22, 29)):
        vectors[b] = unit(vectors[a] + 0.33 * unit(rng.normal(size=DIM)))
    table = pa.table({"sample_id": ids + [f"gone-{k}" for k in range(3000)],
                      "embedding": pa.FixedSizeListArray.from_arrays(vectors.astype(np.float16).ravel(), DIM),
                      "error": pa.nulls(len(vectors), pa.string())})
    ws = Workspace(str(out))
    for part, lo in enumerate(range(0, len(table), 1000)):
        ws.write_table(f"embeddings/part-{part:05d}.parquet", table.slice(lo, 1000), embeddings_schema(DIM, "test"))
    return out, [(ids[a], ids[b]) for a, b in ((0, 1), (5, 17), (22, 29))]


def duplicates(out) -> pa.Table:
    return Workspace(str(out)).read("duplicates", DUPLICATES).sort_by("path")


def test_semantic_dedup_out_of_core_writes_what_the_in_memory_search_writes(scanned_with_embeddings, runner,
                                                                            monkeypatch):
    out, planted = scanned_with_embeddings
    args = ["dedup", str(out), "--semantic"]
    in_memory = runner.invoke(main, args)
    assert in_memory.exit_code == 0, in_memory.output
    expected = duplicates(out)
    pairs = {tuple(sorted(g["sample_id"])) for _c, g in expected.to_pandas().groupby("cluster_id")}
    assert pairs == {tuple(sorted(p)) for p in planted}
    assert set(expected["kind"].to_pylist()) == {"semantic"}

    monkeypatch.setattr(semantic, "EXACT_MAX", 100)  # 3,030 embeddings: out of core
    on_disk = runner.invoke(main, args)
    assert on_disk.exit_code == 0, on_disk.output
    assert duplicates(out).equals(expected)
