"""The labelled images' embeddings out of core, for the checks and orders that work a class at a
time (validate's outlier and label_suspect, `rebalance --prefer diverse`): the labelled ok images
that have an embedding, sorted by label, their embeddings in a `MappedMatrix` (each class a run of
consecutive rows, read as a slice of the map: the whole matrix is never in memory).

Reads OUT/manifest/ (sample_id and label of the ok, labelled images) and OUT/embeddings/
(`curate.tables.embeddings_into`); writes only the scratch file (2 bytes x dim an image: 25.6 GB
for 10M images at 1280-d), deleted at the end. Memory: per image its sample id (Arrow), a
reference to its class's label and a position; one record batch of embeddings; the map's pages
are let go after each batch, and by the caller after each unit of work (`Labelled.release`).
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.mapped import GATHER_ROWS, MappedMatrix
from curate.schema import MANIFEST, Status
from curate.tables import EMBEDDING_BATCH, embeddings_into, embeddings_schema_of
from curate.workspace import Workspace


def _nothing() -> None:
    pass


@dataclass
class Labelled:
    """Labelled images with an embedding: their labels and (n, d) unit vectors (float16 or
    float32). From `labelled_embeddings`: sorted by label, the vectors a memory map, and `release`
    lets go of the map's pages read so far (call it after each class or block of rows)."""

    labels: np.ndarray  # of str
    vectors: np.ndarray
    release: Callable[[], None] = _nothing

    def by_class(self) -> list[np.ndarray]:
        """Each class's positions, ascending, classes in label order."""
        names, given = np.unique(self.labels, return_inverse=True)
        return by_class(given, len(names))

    def vectors_of(self, at: np.ndarray) -> np.ndarray:
        """The vectors at ascending positions `at`: a view (no copy, no read yet) where they are
        consecutive, as a class's are when sorted by label; else a copy."""
        return self.vectors[int(at[0]):int(at[-1]) + 1] if len(at) and at[-1] - at[0] + 1 == len(at) \
            else self.vectors[at]


def gathered(vectors: np.ndarray, rows: np.ndarray, release: Callable[[], None]) -> np.ndarray:
    """vectors[rows] as float32, GATHER_ROWS rows at a time with `release` after each, so that
    the pages of a memory map read for them never exceed one batch's (rows scattered over the map
    touch up to two pages each)."""
    out = np.empty((len(rows), vectors.shape[1]), np.float32)
    for lo in range(0, len(rows), GATHER_ROWS):
        out[lo:lo + GATHER_ROWS] = vectors[rows[lo:lo + GATHER_ROWS]]
        release()
    return out


def by_class(given: np.ndarray, classes: int) -> list[np.ndarray]:
    """The positions of each class's rows (classes numbered 0..classes-1 in `given`), ascending:
    one sort, not a pass over every row per class."""
    order = np.argsort(given, kind="stable")
    return np.split(order, np.searchsorted(given[order], np.arange(1, classes)))


@contextlib.contextmanager
def labelled_embeddings(ws: Workspace, scratch: str | None = None) -> Iterator[tuple[Labelled, pa.Array]]:
    """The labelled ok images with an embedding as `Labelled` (rows sorted by label, stably: within a
    class in the manifest's order), and their sample ids in the same order. The vectors are valid
    inside the `with` block only."""
    ok = (pc.field("status") == Status.OK.value) & pc.field("label").is_valid()
    rows = ws.read("manifest", MANIFEST, columns=["sample_id", "label"], filter=ok)
    rows = rows.take(pc.sort_indices(rows, [("label", "ascending")]))
    ids = rows["sample_id"].combine_chunks()
    dim = embeddings_schema_of(ws).field("embedding").type.list_size
    with MappedMatrix(len(rows), dim, scratch) as matrix:
        kept = np.flatnonzero(embeddings_into(matrix.array, ws, ids, matrix.release))
        pa.default_memory_pool().release_unused()  # the decoded Parquet batches: Arrow's pool keeps them otherwise
        _compact(matrix, kept)
        yield Labelled(_labels(rows["label"].take(pa.array(kept))), matrix.array[:len(kept)], matrix.release), \
            ids.take(pa.array(kept))


def _compact(matrix: MappedMatrix, kept: np.ndarray) -> None:
    """Move the rows numbered in `kept` (ascending) to the front of the matrix, in order: in place,
    front to back, since row kept[i] >= i is read before anything at or past it is written."""
    if len(kept) == len(matrix.array):
        return
    for lo in range(0, len(kept), EMBEDDING_BATCH):
        rows = kept[lo:lo + EMBEDDING_BATCH]
        matrix.array[lo:lo + len(rows)] = matrix.array[rows]
        matrix.release()


def _labels(labels: pa.ChunkedArray) -> np.ndarray:
    """The labels as an object array whose rows share one string per class (not one per image)."""
    encoded = pc.dictionary_encode(labels.combine_chunks())
    names = np.array(encoded.dictionary.to_pylist(), dtype=object)
    return names[encoded.indices.to_numpy(zero_copy_only=False)] if len(names) else np.zeros(0, object)
