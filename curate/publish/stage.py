"""Publish: put OUT's curated collection into a FiftyOne dataset with saved views.

Reads the manifest and, where they exist, issues, duplicates, plan, index.parquet, the augmented
shards and the embeddings (see `curate.publish.select`, `curate.publish.table`,
`curate.publish.augmented` and `curate.publish.brain`). Writes the persistent FiftyOne dataset
`publish.name` (default "curate-" + OUT's folder name): one sample per selected image that is not
`removed` and does not now lead out of SRC through a symbolic link (originals by their source
path, a URL without its credentials; their augmented variants as files under
`OUT/publish/augmented/`), the saved views of `curate.publish.views`, the embedding map and
similarity index of those images, and in the dataset's info the class distribution before and
after curation of every image and what was selected. The selection is, by default, what needs
eyes (flagged images, duplicates, `publish.per_class_sample` images per class); with
`publish.all` (`--all`) every image, read and joined a range of sample ids at a time
(`curate.publish.table.originals_in_chunks`) and sent `publish.batch_size` at a time, so memory
does not follow the collection. Re-publishing the same OUT
updates the dataset in place (`curate.publish.sync`): images that left the selection are removed,
those that entered are added.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import pandas as pd

from curate import lineage
from curate.config import Config
from curate.errors import ConfigError
from curate.publish import backend
from curate.publish.augmented import sources, variants
from curate.publish.brain import index_embeddings
from curate.publish.dataset import INFO_KEY, default_name, describe, open_dataset
from curate.publish.select import select
from curate.publish.sync import sync
from curate.publish.table import originals_in_chunks, records
from curate.publish.views import save_views
from curate.storage import safe_url
from curate.tables import not_written_yet
from curate.view import Block, Table, View
from curate.workspace import Workspace

log = logging.getLogger(__name__)


@dataclass
class PublishSummary:
    dataset: str
    samples: int = 0
    selected: str = ""  # what was selected out of how many (`Selection.note`)
    selection: dict[str, int] = field(default_factory=dict)  # flagged / duplicates / sampled -> images
    augmented: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    views: dict[str, int] = field(default_factory=dict)  # saved view -> samples
    embeddings: dict[str, Any] = field(default_factory=dict)  # the map and similarity index, when OUT has embeddings
    missing: list[str] = field(default_factory=list)  # stages whose output OUT lacks
    elapsed_s: float = 0.0

    def view(self, out: str) -> View:
        """What was published, and how to open it."""
        rate = self.samples / self.elapsed_s if self.elapsed_s else 0.0
        blocks: list[Block] = []
        if self.missing:
            blocks.append(f"not in {out} yet (their fields are empty): {', '.join(self.missing)}")
        blocks.append(f"published {self.selected}")
        blocks.append(Table.of("saved views", ["view", "samples"], self.views.items()))
        if self.embeddings.get("map"):
            blocks.append(f"embeddings: a 2-D map ({self.embeddings['map']}, brain key {self.embeddings['map_key']}) "
                          f"and a similarity index ({self.embeddings['similarity_key']}) of "
                          f"{self.embeddings['points']} images")
        return View("publish", f"FiftyOne dataset {self.dataset!r}: {self.samples} samples ({self.augmented} "
                               f"augmented); {self.added} added, {self.updated} updated, {self.unchanged} unchanged, "
                               f"{self.removed} removed ({self.elapsed_s:.1f}s, {rate:.0f} samples/s)", blocks,
                    next=[f"open it: curate app --name {self.dataset}"])


def dataset_name(out: str, cfg: Config) -> str:
    return cfg.publish.name.strip() or default_name(out)


def resolve(cfg: Config) -> None:
    """Fail before any work when FiftyOne or its database is missing, or the name is unusable."""
    if cfg.publish.name and not any(ch.isalnum() for ch in cfg.publish.name):
        raise ConfigError(f"publish.name {cfg.publish.name!r} needs at least one letter or digit")
    backend.check_installed()


@dataclass
class Sent:
    """What the tables sent to FiftyOne held: samples, augmented variants, error codes, and the
    class weights of the images with augmented variants (`augmented.sources`)."""

    with_variants: set[str]
    samples: int = 0
    augmented: int = 0
    error_codes: set[str] = field(default_factory=set)
    source_weights: dict[str, float] = field(default_factory=dict)

    def add(self, table: pd.DataFrame, augmented: bool = False) -> None:
        self.samples += len(table)
        self.augmented += len(table) if augmented else 0
        self.error_codes.update(table["error_code"].dropna().tolist())
        sources = table[table["sample_id"].isin(self.with_variants)]
        self.source_weights.update(zip(sources["sample_id"], sources["weight"]))


def publish(src: str | None, out: str, cfg: Config) -> PublishSummary:
    """Publish OUT (images under SRC; default: the source OUT was scanned from) to FiftyOne.
    See module doc."""
    started = time.perf_counter()
    resolve(cfg)
    ws = Workspace(out)
    src = src if src is not None else lineage.source_of(ws)
    name = dataset_name(out, cfg)
    chosen = select(ws, cfg.publish.per_class_sample, cfg.publish.all)
    sent = Sent(sources(ws))

    def batches() -> Iterator[list[dict[str, Any]]]:
        for table in originals_in_chunks(ws, src, chosen.ids):
            sent.add(table)
            yield from records(table, cfg.publish.batch_size)
            del table  # before the next chunk is read: one chunk in memory at a time
        extra = variants(ws, sent.source_weights)
        sent.add(extra, augmented=True)
        yield from records(extra, cfg.publish.batch_size)

    fo = backend.connected()
    ds = open_dataset(fo, name, out)
    changes = sync(fo, ds, batches())
    summary = PublishSummary(dataset=name, samples=sent.samples, augmented=sent.augmented, added=changes.added,
                             updated=changes.updated, unchanged=changes.unchanged, removed=changes.removed,
                             selected=chosen.note(), selection=chosen.reasons, missing=not_written_yet(ws, "publish"))
    codes = sorted(sent.error_codes)
    recorded = (ds.info or {}).get(INFO_KEY, {})
    summary.views = save_views(fo, ds, codes, list(recorded.get("views", {})))
    summary.embeddings = index_embeddings(ds, ws, recorded.get("embeddings", {}))
    counts = chosen.counts
    classes = sorted({c for stage in counts.values() for by_class in stage.values() for c in by_class})
    describe(fo, ds, out, safe_url(src), classes, {"class_counts": counts, "views": summary.views,
                                                   "missing": summary.missing, "embeddings": summary.embeddings,
                                                   "selected": summary.selected, "selection": summary.selection})
    summary.elapsed_s = time.perf_counter() - started
    log.info("published %s to %s: %d samples in %.1fs", out, name, summary.samples, summary.elapsed_s)
    return summary
