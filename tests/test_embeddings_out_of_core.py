"""Embeddings out of core for the stages that read a few rows at a time: validate's embedding
checks and `rebalance --prefer diverse` (the labelled images' embeddings in a class-ordered scratch
matrix, `curate.labelled`) and dedup's semantic measures (`curate.tables.mapped_embeddings`), read
through a memory map whose pages are let go (`curate.mapped`)."""
from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from curate.config import Config
from curate.dedup.measures import Measures
from curate.errors import CurateError
from curate.labelled import GATHER_ROWS, Labelled, gathered, labelled_embeddings
from curate.mapped import MappedMatrix
from curate.schema import MANIFEST, embeddings_schema
from curate.tables import mapped_embeddings
from curate.validate.checks import CHECKS
from curate.validate.stage import embedding_issues, resolve
from curate.workspace import Workspace

DIM = 32
N = 900
NO_EMBEDDING_ROW = set(range(7, N, 97))  # ok and labelled, but absent from OUT/embeddings/
NULL_EMBEDDING = set(range(11, N, 89))  # ok and labelled, their embedding null (undecodable by then)
NOT_OK = set(range(5, N, 101))
UNLABELLED = set(range(3, N, 113))


def vectors_of(n: int) -> tuple[np.ndarray, list[str]]:
    """(n, DIM) float16 unit rows in three classes, interleaved in row order, each around its own
    direction; every 50th row labelled with the next class (label_suspect's), every 60th far from
    every class (outlier's)."""
    rng = np.random.default_rng(0)
    names = ["c", "a", "b"]
    given = np.arange(n) % 3
    centres = rng.normal(size=(3, DIM))
    x = centres[given] * 1.0 + rng.normal(size=(n, DIM)) * 0.6
    x[::60] = rng.normal(size=(len(x[::60]), DIM)) * 2.0
    labels = [names[(g + (k % 50 == 0)) % 3] for k, g in enumerate(given)]
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16), labels


@pytest.fixture
def out(tmp_path: Path) -> tuple[Workspace, np.ndarray, list[str]]:
    """OUT with an N-row manifest (a few rows not ok, a few unlabelled) and OUT/embeddings/ as three
    parts in another order than the manifest's, with an embedding for a sample the manifest lacks."""
    ws = Workspace(str(tmp_path / "out"))
    ws.claim()
    x, labels = vectors_of(N)
    ids = [f"id{k:04d}" for k in range(N)]
    ws.write_table("manifest/part-00000.parquet", pa.Table.from_pylist([
        {"sample_id": ids[k], "path": f"p/{k}.jpg", "label": None if k in UNLABELLED else labels[k],
         "status": "error" if k in NOT_OK else "ok"} for k in range(N)], schema=MANIFEST), MANIFEST)
    schema = embeddings_schema(DIM, "test-model")
    order = [k for k in np.random.default_rng(1).permutation(N) if k not in NO_EMBEDDING_ROW]
    for part, rows in enumerate(np.array_split(np.array(order + [-1]), 3)):
        valid = [int(k) not in NULL_EMBEDDING for k in rows]
        flat = np.concatenate([x[k] if k >= 0 else np.ones(DIM, np.float16) for k in rows])
        vectors = pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float16()), DIM)
        ws.write_table(f"embeddings/part-{part:05d}.parquet", pa.table({
            "sample_id": [ids[k] if k >= 0 else "not-in-the-manifest" for k in rows],
            "embedding": pc.if_else(pa.array(valid), vectors, pa.nulls(len(rows), vectors.type)),
            "error": [None if v else "undecodable" for v in valid]}, schema=schema), schema)
    return ws, x, labels


def checked(n: int) -> list[int]:
    """The rows the embedding checks see, in the manifest's order."""
    return [k for k in range(n) if not {k} & (NO_EMBEDDING_ROW | NULL_EMBEDDING | NOT_OK | UNLABELLED)]


def test_the_labelled_embeddings_are_sorted_by_label_each_with_its_own_vector(out, tmp_path):
    ws, x, labels = out
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    kept = checked(N)
    with labelled_embeddings(ws, str(scratch)) as (images, sample_ids):
        rows = [int(s[2:]) for s in sample_ids.to_pylist()]
        assert rows == sorted(kept, key=lambda k: labels[k])  # by label, stably: each class in manifest order
        assert images.labels.tolist() == [labels[k] for k in rows]
        assert np.array_equal(images.vectors, x[rows])  # rows without an embedding left out, the rest moved up
        assert len(list(scratch.iterdir())) == 1
    assert not list(scratch.iterdir())  # the scratch file is gone


def test_validate_finds_what_the_checks_find_on_the_vectors_in_memory(out):
    """The issues from the class-ordered map equal the checks' own scores on the float32 vectors in
    the manifest's order (what validate handed them before): the same rows fire, the same scores."""
    ws, x, labels = out
    kept = checked(N)
    found = embedding_issues(ws, resolve(Config()))
    in_memory = Labelled(np.array([labels[k] for k in kept]), x[kept].astype(np.float32))
    expected = {}
    for name, threshold in (("outlier", 0.6), ("label_suspect", 0.1)):
        score = CHECKS.get(name).score(in_memory).score
        for at in np.flatnonzero(score < threshold):
            expected[(f"id{kept[at]:04d}", name)] = score[at]
    got = {(f["sample_id"], f["check"]): f["score"] for f in found}
    assert {check for _id, check in expected} == {"outlier", "label_suspect"}
    assert got.keys() == expected.keys()
    assert np.allclose([got[k] for k in expected], list(expected.values()), atol=1e-4)
    assert all(f["path"] == f"p/{int(str(f['sample_id'])[2:])}.jpg" for f in found)


def test_a_released_matrix_holds_none_of_its_pages_in_the_process(tmp_path):
    def resident_file_mb() -> float:
        status = Path("/proc/self/status").read_text()
        return int(status.split("RssFile:")[1].split()[0]) / 1024

    before = resident_file_mb()
    with MappedMatrix(65_536, 2048, str(tmp_path)) as matrix:  # 256 MB
        matrix.array[:] = 1.0
        assert resident_file_mb() - before > 200
        matrix.release()
        assert resident_file_mb() - before < 20
        assert float(matrix.array[::4096].astype(np.float32).sum()) == 16 * 2048  # read back from the file
        matrix.release()
        assert resident_file_mb() - before < 20
    assert not list(tmp_path.iterdir())


def test_gathered_rows_come_a_batch_at_a_time_each_batchs_pages_let_go(tmp_path):
    rng = np.random.default_rng(0)
    with MappedMatrix(20_000, 16, str(tmp_path)) as matrix:
        matrix.array[:] = rng.normal(size=(20_000, 16)).astype(np.float16)
        rows = rng.choice(20_000, GATHER_ROWS * 2 + 5, replace=False)
        released = []
        got = gathered(matrix.array, rows, lambda: released.append(1))
        assert got.dtype == np.float32 and np.array_equal(got, matrix.array[rows].astype(np.float32))
        assert len(released) == 3  # after each batch of GATHER_ROWS rows


def test_no_room_for_the_scratch_matrix_is_one_clear_error_and_leaves_nothing(tmp_path, monkeypatch):
    def full(fd, offset, size):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(CurateError, match=r"no room for a 0\.1 GB scratch file in .*set TMPDIR"):
        MappedMatrix(50_000, 1280, str(tmp_path))
    assert not list(tmp_path.iterdir())


def test_dedup_measures_read_the_mapped_embeddings_and_let_their_pages_go(out, tmp_path):
    ws, x, _labels = out
    ids = ["id0000", "id0007", "id0001", "id0011", "id0002"]  # 7: no embedding row; 11: a null one
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with mapped_embeddings(ws, pa.array(ids), str(scratch)) as matrix:
        assert np.isnan(matrix.array[[1, 3]].astype(np.float32)).all()
        m = Measures(pd.DataFrame(index=range(len(ids))), np.zeros(len(ids), np.int64), None, 8, matrix)
        got = m.similarity(0, np.array([2, 4, 1]))
        want = x[[1, 2]].astype(np.float32) @ x[0].astype(np.float32)
        assert np.allclose(got[:2], want, atol=1e-6) and np.isnan(got[2])
        assert m.rows_read == 4
        m.rows_read = GATHER_ROWS - 1
        m.similarity(0, np.array([2]))
        assert m.rows_read == 0  # let go, and counted again from there
    assert not list(scratch.iterdir())
