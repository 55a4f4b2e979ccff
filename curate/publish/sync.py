"""Make a FiftyOne dataset hold exactly the published table, in place and in batches.

Samples are matched by `sample_id`: new rows are inserted, rows whose `curate_hash` changed
are rewritten (their FiftyOne id, tags and any fields the user added stay), unchanged rows are
not touched and samples whose row is gone are deleted. Each batch is one database round trip.

Speed: FiftyOne's `Dataset.add_samples` turns every sample into a mongoengine document and
back (under 1,000 samples/s on a 2-core machine: benchmarks/RESULTS.md, "Publish"), so
batches are written the way FiftyOne's own dataset importer writes them: as sample documents
straight into the dataset's sample collection. The documents are built from FiftyOne's own template for an empty sample,
and the fields they fill are declared on the dataset beforehand (`dataset.declare_fields`);
tests/test_publish.py checks that a document written here reads back like one FiftyOne writes.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Iterable

import xxhash

from curate.publish.fields import FIELDS

log = logging.getLogger(__name__)

DELETE_BATCH = 10_000  # ids per delete query (a query document must stay under MongoDB's 16 MB)


@dataclass
class Changes:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0


class SampleWriter:
    """Sample documents for one dataset, from FiftyOne's template for an empty image sample.

    Like FiftyOne's own documents, they leave out null fields (a field that becomes null on an
    update is unset)."""

    def __init__(self, fo: ModuleType, ds: Any) -> None:
        from bson import ObjectId

        self._object_id = ObjectId
        self._collection = ds._sample_collection  # what FiftyOne's importers insert into
        template = fo.Sample(filepath="template.jpg").to_mongo_dict()
        self._template = {k: v for k, v in template.items() if v is not None and k not in ("_id", "filepath", "_rand")}
        self._template["_dataset_id"] = ds._doc.id
        self._label_cls = fo.Classification(label="template").to_mongo()["_cls"]

    def fields(self, row: dict[str, Any]) -> dict[str, Any]:
        """The document fields curate owns for one table row (None where the row has no value)."""
        doc = {f.name: row[f.name] for f in FIELDS}
        label = row["ground_truth"]
        doc["ground_truth"] = None if label is None else {
            "_id": self._object_id(), "_cls": self._label_cls, "tags": [], "label": label}
        doc["filepath"] = row["filepath"]
        return doc

    def insert(self, rows: list[dict[str, Any]], now: dt.datetime) -> None:
        docs = []
        for row in rows:
            fields = {k: v for k, v in self.fields(row).items() if v is not None}
            docs.append({**self._template, **fields, "_id": self._object_id(), "_rand": _rand(row["sample_id"]),
                         "created_at": now, "last_modified_at": now})
        if docs:
            self._collection.insert_many(docs, ordered=False)

    def update(self, rows: list[tuple[Any, dict[str, Any]]], now: dt.datetime) -> None:
        """Rewrite curate's fields of existing samples, given as (FiftyOne _id, row)."""
        from pymongo import UpdateOne

        ops = []
        for oid, row in rows:
            fields = self.fields(row)
            change: dict[str, Any] = {"$set": {**{k: v for k, v in fields.items() if v is not None},
                                               "last_modified_at": now}}
            unset = {k: "" for k, v in fields.items() if v is None}
            if unset:
                change["$unset"] = unset
            ops.append(UpdateOne({"_id": oid}, change))
        if ops:
            self._collection.bulk_write(ops, ordered=False)


def _rand(sample_id: str) -> float:
    """FiftyOne's per-sample random key (in [0.999, 1)), derived from the id so reruns agree."""
    return 0.999 + 0.001 * (xxhash.xxh3_64_intdigest(sample_id.encode()) / 2**64)


def sync(fo: ModuleType, ds: Any, batches: Iterable[list[dict[str, Any]]]) -> Changes:
    """Write `batches` of table rows (with `curate_hash`) into `ds`; see module doc."""
    ids, sample_ids, hashes = ds.values(["_id", "sample_id", "curate_hash"])
    existing = {s: (oid, h) for oid, s, h in zip(ids, sample_ids, hashes)}
    writer = SampleWriter(fo, ds)
    changes = Changes()
    seen: set[str] = set()
    for batch in batches:
        now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        new, changed = [], []
        for row in batch:
            found = existing.get(row["sample_id"])
            if found is None:
                new.append(row)
                continue
            seen.add(row["sample_id"])  # only samples already there: the rest cannot be gone
            if found[1] != row["curate_hash"]:
                changed.append((found[0], row))
        writer.insert(new, now)
        writer.update(changed, now)
        changes.added += len(new)
        changes.updated += len(changed)
        changes.unchanged += len(batch) - len(new) - len(changed)
    gone = [str(oid) for oid, s in zip(ids, sample_ids) if s not in seen]
    for start in range(0, len(gone), DELETE_BATCH):
        ds.delete_samples(gone[start:start + DELETE_BATCH])
    changes.removed = len(gone)
    ds.reload()
    log.info("synced %s: %s", ds.name, changes)
    return changes
