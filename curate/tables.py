"""Reads that more than one stage needs: the kept samples, class counts, excluded images, the
embeddings of given images (in memory, or out of core in a scratch file: `mapped_embeddings`).

Reads `OUT/manifest/`, `OUT/plan/`, `OUT/issues/` and `OUT/embeddings/`; writes nothing in OUT. Counts are
split -> class -> samples:

- before: every scanned image that is not `removed`, by the split it came with (none = train,
  as the plan reads it); unlabelled images are left out.
- after: the plan's kept samples by curated split, with repeats and the augmented variants the
  plan asks for (the same numbers as `rebalance` and `dataset.json`).
"""
from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate.mapped import MappedMatrix
from curate.schema import ISSUES, MANIFEST, PLAN, SPLITS
from curate.stages import STAGES, producer
from curate.workspace import Workspace

Counts = dict[str, dict[str, int]]  # split -> class -> n


@dataclass
class Embeddings:
    """The images with an embedding in `OUT/embeddings/`: their ids, a float32 matrix (one
    L2-normalised row each) and the model's id."""

    sample_ids: list[str]
    vectors: np.ndarray
    model: str


KEPT_COLUMNS = ["sample_id", "path", "label", "split", "copies", "augment_copies"]  # of the plan


def kept_table(ws: Workspace) -> tuple[pa.Table, list[str]]:
    """Kept plan rows (KEPT_COLUMNS) joined with their manifest facts (width, height, size_bytes),
    sorted by path, one row per copy (copy_index), label as the class number and label_name; and
    the class names. Joined and repeated in Arrow."""
    plan = ws.read("plan", PLAN, columns=KEPT_COLUMNS, filter=pc.field("keep"))
    facts = ws.read("manifest", MANIFEST, columns=["sample_id", "width", "height", "size_bytes"])
    at = pc.index_in(plan["sample_id"], value_set=facts["sample_id"].combine_chunks())  # a lighter join than acero's
    rows = plan
    for name in ("width", "height", "size_bytes"):
        rows = rows.append_column(name, facts[name].take(at))
    del plan, facts, at
    classes = sorted(pc.unique(rows["label"].drop_null()).to_pylist())
    order = pc.sort_indices(rows["path"]).to_numpy()
    copies = rows["copies"].to_numpy()[order]
    rows = rows.take(pa.array(np.repeat(order, copies)))  # by path, each row once per copy: one take
    copy_index = np.arange(len(rows)) - np.repeat(np.cumsum(copies) - copies, copies)
    number = pc.index_in(rows["label"], value_set=pa.array(classes, pa.string())).cast(pa.int32())
    rows = rows.append_column("copy_index", pa.array(copy_index.astype(np.int32)))
    rows = rows.append_column("label_name", rows["label"])
    return rows.set_column(rows.schema.get_field_index("label"), "label", number), classes


def kept_samples(ws: Workspace) -> tuple[pd.DataFrame, list[str]]:
    """`kept_table` as pandas."""
    rows, classes = kept_table(ws)
    frame = rows.to_pandas(self_destruct=True, split_blocks=True)
    del rows
    pa.default_memory_pool().release_unused()
    return frame, classes


BATCH_ROWS = 262_144  # rows of a table in memory at a time (`batches`)
EMBEDDING_BATCH = 32_768  # embeddings decoded and written at a time (`embeddings_into`: 80 MB at 1280-d)


def batches(ws: Workspace, name: str, schema: pa.Schema, columns: list[str],
            filter: pc.Expression | None = None) -> Iterator[pa.RecordBatch]:
    """`columns` of the rows of `name/` passing `filter`, BATCH_ROWS at a time (nothing when absent)."""
    if not ws.exists(name):
        return
    for batch in ws.dataset(name, schema).to_batches(columns=columns, filter=filter, batch_size=BATCH_ROWS):
        if batch.num_rows:
            yield batch


def nested(series: pd.Series) -> Counts:
    """A (split, class) -> n series as split -> class -> n, splits in train/val/test order."""
    out: Counts = {}
    for (split, label), n in sorted(series.items()):
        if n:
            out.setdefault(split, {})[label] = int(n)
    return {s: out[s] for s in [*SPLITS, *sorted(set(out) - set(SPLITS))] if s in out}


def class_counts(manifest: pd.DataFrame, plan: pd.DataFrame | None) -> dict[str, Counts]:
    """{"before": counts, "after": counts} (see module doc); "after" is empty without a plan."""
    labelled = manifest[manifest["label"].notna()]
    before = nested(labelled.groupby([labelled["split"].fillna("train"), labelled["label"]]).size())
    after: Counts = {}
    if plan is not None:
        kept = plan[plan["keep"]]
        after = nested((kept["copies"] + kept["augment_copies"]).groupby([kept["split"], kept["label"]]).sum())
    return {"before": before, "after": after}


def embeddings_schema_of(ws: Workspace) -> pa.Schema:
    """The schema OUT/embeddings/ was written with (its dimension and model), from its first part."""
    with ws.fs.open(ws.parts("embeddings")[0], "rb") as f:
        return pq.read_schema(f)


def embedding_count(ws: Workspace) -> int:
    """Rows in OUT/embeddings/ (from the Parquet footers: nothing is read)."""
    return int(ws.dataset("embeddings", embeddings_schema_of(ws)).count_rows())


def read_embeddings(ws: Workspace, sample_ids: list[str] | None = None) -> Embeddings:
    """Every embedding in OUT/embeddings/, or only those of `sample_ids` (rows without one, whose
    image would not decode, left out)."""
    schema = embeddings_schema_of(ws)
    wanted = pc.is_valid(pc.field("embedding"))
    if sample_ids is not None:
        wanted &= pc.field("sample_id").isin(pa.array(sample_ids, pa.string()))
    table = ws.read("embeddings", schema, columns=["sample_id", "embedding"], filter=wanted)
    dim = schema.field("embedding").type.list_size
    flat = table["embedding"].combine_chunks().flatten().to_numpy(zero_copy_only=False)
    return Embeddings(table["sample_id"].to_pylist(), flat.astype(np.float32).reshape(len(table), dim),
                      (schema.metadata or {}).get(b"model", b"").decode())


def embeddings_for(ws: Workspace, sample_ids: list[str]) -> np.ndarray:
    """The embedding of each of `sample_ids` (distinct; float32, L2-normalised; a NaN row where there
    is none); only theirs are read, a record batch at a time into the one matrix returned."""
    dim = embeddings_schema_of(ws).field("embedding").type.list_size
    vectors = np.full((len(sample_ids), dim), np.nan, np.float32)
    embeddings_into(vectors, ws, pa.array(sample_ids, pa.string()))
    return vectors


@contextlib.contextmanager
def mapped_embeddings(ws: Workspace, sample_ids: pa.Array, scratch: str | None = None) -> Iterator[MappedMatrix]:
    """The embedding of each of `sample_ids` (distinct) as the rows of a `MappedMatrix` (float16 in a
    scratch file; a NaN row where there is none), for reads of a few rows at a time."""
    dim = embeddings_schema_of(ws).field("embedding").type.list_size
    with MappedMatrix(len(sample_ids), dim, scratch) as matrix:
        matrix.array[~embeddings_into(matrix.array, ws, sample_ids, matrix.release)] = np.nan
        matrix.release()
        yield matrix


def embeddings_into(matrix: np.ndarray, ws: Workspace, sample_ids: pa.Array,
                    after_batch: Callable[[], None] = lambda: None) -> np.ndarray:
    """Write the embedding of each of `sample_ids` that has one to its row of `matrix` (row k:
    sample_ids[k]; any float dtype, or a memory map), EMBEDDING_BATCH rows of OUT/embeddings/ at
    a time, calling `after_batch` after each; return which rows got one. Two passes over the
    parts: their sample ids (one lookup of all of them in `sample_ids`), then their vectors."""
    parts = ws.parts("embeddings")
    found = []
    for part in parts:
        with ws.fs.open(part, "rb") as f:
            found += pq.ParquetFile(f).read(columns=["sample_id"]).column(0).chunks
    where = (pc.fill_null(pc.index_in(pa.chunked_array(found, pa.string()), value_set=sample_ids), -1)
             .to_numpy().astype(np.int64) if found else np.zeros(0, np.int64))
    have = np.zeros(len(matrix), bool)
    at = 0
    for part in parts:
        with ws.fs.open(part, "rb") as f:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=EMBEDDING_BATCH, columns=["embedding"]):
                column, target = batch.column(0), where[at:at + batch.num_rows]
                at += batch.num_rows
                take = (target >= 0) & pc.is_valid(column).to_numpy(zero_copy_only=False)
                if take.any():
                    flat = column.filter(pa.array(take)).flatten().to_numpy(zero_copy_only=False)
                    matrix[target[take]] = flat.reshape(int(take.sum()), -1)
                    have[target[take]] = True
                    after_batch()
    return have


def add_counts(total: Counter[tuple[str, str]], counts: Counts) -> None:
    """Add `counts` (split -> class -> n) to a running total by (split, class)."""
    for split, by_class in counts.items():
        for label, n in by_class.items():
            total[(split, label)] += n


def summed(total: Counter[tuple[str, str]]) -> Counts:
    """A running total by (split, class) as split -> class -> n."""
    return nested(pd.Series(total, dtype=np.int64))


def counts_after(ws: Workspace) -> Counts:
    """The plan's kept copies per split and class (empty without a plan), one batch at a time."""
    after: Counter[tuple[str, str]] = Counter()
    no_manifest = pd.DataFrame({"label": pd.Series(dtype=object), "split": pd.Series(dtype=object)})
    for batch in batches(ws, "plan", PLAN, ["split", "label", "keep", "copies", "augment_copies"],
                         pc.field("keep")):
        add_counts(after, class_counts(no_manifest, batch.to_pandas())["after"])
    return summed(after)


def not_written_yet(ws: Workspace, stage: str) -> list[str]:
    """The entries `stage` reads where present that the default pipeline writes and OUT lacks
    (what publish and report say is missing; embeddings, which are opt-in, are not)."""
    spec = STAGES.get(stage)
    return [entry for entry in spec.uses if producer(entry).default and not ws.exists(entry)]


def excluded_ids(ws: Workspace, exclude: list[str]) -> set[str]:
    """sample_ids with an issue whose severity is in `exclude` (validate.exclude)."""
    issues = ws.read("issues", ISSUES, columns=["sample_id", "severity"])
    mask = pc.and_(pc.is_in(issues["severity"], pa.array(exclude, pa.string())), pc.is_valid(issues["sample_id"]))
    return set(issues.filter(mask)["sample_id"].to_pylist())
