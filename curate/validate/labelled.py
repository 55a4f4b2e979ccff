"""The embedding checks' input, out of core: the labelled ok images that have an embedding, sorted
by label, with their embeddings in a `MappedMatrix` (each class a run of consecutive rows, so a
check reads a class as a slice of the map, and the whole matrix is never in memory).

Reads OUT/manifest/ (sample_id and label of the ok, labelled images) and OUT/embeddings/ twice: its
sample ids, then its vectors a record batch at a time, each written to its image's row. Writes only
the scratch file (2 bytes x dim an image: 25.6 GB for 10M images at 1280-d), deleted at the end.
Memory: per image its sample id (Arrow), a reference to its class's label and a position; one
record batch of embeddings; the map's pages are let go after each batch.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate.mapped import MappedMatrix
from curate.schema import MANIFEST, Status
from curate.tables import embeddings_schema_of
from curate.validate.embedding import Labelled
from curate.workspace import Workspace

BATCH_ROWS = 32_768  # embeddings decoded and written at a time (80 MB at 1280-d)


@contextlib.contextmanager
def labelled_embeddings(ws: Workspace, scratch: str | None = None) -> Iterator[tuple[Labelled, pa.Array]]:
    """The labelled ok images with an embedding as `Labelled` (rows sorted by label, stably: within a
    class in the manifest's order), and their sample ids in the same order. The vectors are valid
    inside the `with` block only."""
    ok = (pc.field("status") == Status.OK.value) & pc.field("label").is_valid()
    rows = ws.read("manifest", MANIFEST, columns=["sample_id", "label"], filter=ok)
    rows = rows.take(pc.sort_indices(rows, [("label", "ascending")]))
    ids = rows["sample_id"].combine_chunks()
    parts = ws.parts("embeddings")
    where = _rows_of_embeddings(ws, parts, ids)
    dim = embeddings_schema_of(ws).field("embedding").type.list_size
    with MappedMatrix(len(rows), dim, scratch) as matrix:
        kept = np.flatnonzero(_scatter(ws, parts, where, matrix))
        del where
        _compact(matrix, kept)
        yield Labelled(_labels(rows["label"].take(pa.array(kept))), matrix.array[:len(kept)], matrix.release), \
            ids.take(pa.array(kept))


def _rows_of_embeddings(ws: Workspace, parts: list[str], ids: pa.Array) -> np.ndarray:
    """For each row of the embeddings' parts, in order: its row in `ids` (-1: not one of them)."""
    found = []
    for part in parts:
        with ws.fs.open(part, "rb") as f:
            found.append(pq.ParquetFile(f).read(columns=["sample_id"]).column(0))
    if not found:
        return np.zeros(0, np.int64)
    at = pc.index_in(pa.chunked_array([c for column in found for c in column.chunks], pa.string()), value_set=ids)
    return pc.fill_null(at, -1).to_numpy().astype(np.int64)


def _scatter(ws: Workspace, parts: list[str], where: np.ndarray, matrix: MappedMatrix) -> np.ndarray:
    """Write each embedding of the parts (in order, numbered as in `where`) to its row of `matrix`;
    return which rows got one."""
    have = np.zeros(len(matrix.array), bool)
    at = 0
    for part in parts:
        with ws.fs.open(part, "rb") as f:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=BATCH_ROWS, columns=["embedding"]):
                column, target = batch.column(0), where[at:at + batch.num_rows]
                at += batch.num_rows
                take = (target >= 0) & pc.is_valid(column).to_numpy(zero_copy_only=False)
                if take.any():
                    flat = column.filter(pa.array(take)).flatten().to_numpy(zero_copy_only=False)
                    matrix.array[target[take]] = flat.reshape(int(take.sum()), -1)
                    have[target[take]] = True
                    matrix.release()
    return have


def _compact(matrix: MappedMatrix, kept: np.ndarray) -> None:
    """Move the rows numbered in `kept` (ascending) to the front of the matrix, in order: in place,
    front to back, since row kept[i] >= i is read before anything at or past it is written."""
    if len(kept) == len(matrix.array):
        return
    for lo in range(0, len(kept), BATCH_ROWS):
        rows = kept[lo:lo + BATCH_ROWS]
        matrix.array[lo:lo + len(rows)] = matrix.array[rows]
        matrix.release()


def _labels(labels: pa.ChunkedArray) -> np.ndarray:
    """The labels as an object array whose rows share one string per class (not one per image)."""
    encoded = pc.dictionary_encode(labels.combine_chunks())
    names = np.array(encoded.dictionary.to_pylist(), dtype=object)
    return names[encoded.indices.to_numpy(zero_copy_only=False)] if len(names) else np.zeros(0, object)
