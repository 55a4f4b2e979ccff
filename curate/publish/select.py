"""Which images publish sends to FiftyOne: by default what needs eyes, with `--all` every one.

The default selection is every image that is flagged (a row of `OUT/issues/`, which holds the
`outlier` and `label_suspect` findings too, or a scan error), every member of a duplicate cluster
(`OUT/duplicates/`) and a stratified sample of `[publish] per_class_sample` images per class:
those with the smallest seeded key of their sample_id (`curate.seeds`, seed SEED), so the same
OUT gives the same sample whatever the row order or partitioning.

Memory stays bounded by the selection, not the collection: the manifest is read
`curate.tables.BATCH_ROWS` rows at a time (sample_id, label, split, status only), the issues and duplicates
tables one batch of their sample_id column at a time, the plan's count columns likewise. The
same pass counts the classes before and after curation over every row (what the dataset's info
records, `curate.tables.class_counts` per batch, summed).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from curate.schema import DUPLICATES, ISSUES, MANIFEST, Status
from curate.seeds import seeded_keys
from curate.tables import Counts, add_counts, batches, class_counts, counts_after, summed
from curate.workspace import Workspace

SEED = 0  # of the per-class sample: the same images on every publish of the same OUT
_NO_LABEL = "\0unlabelled"  # the stratum of images without a label (no label can be this)


@dataclass
class Selection:
    """The sample_ids to publish (`ids`; None = every image) and what the summary says of them."""

    ids: set[str] | None
    total: int  # images in the manifest (not removed)
    per_class: int | None = None  # the per-class sample size; None with --all
    reasons: dict[str, int] = field(default_factory=dict)  # flagged / duplicates / sampled -> images
    counts: dict[str, Counts] = field(default_factory=dict)  # class counts before and after, every row

    def note(self) -> str:
        """One line: what was selected out of how many."""
        if self.ids is None:
            return f"all {self.total:,} images (--all)"
        return (f"{len(self.ids):,} of {self.total:,} images: flagged, duplicates, and up to {self.per_class:,} "
                f"per class; --all for every one")


def select(ws: Workspace, per_class: int, everything: bool) -> Selection:
    """The selection of OUT's manifest (see module doc); with `everything`, every image."""
    issues = set() if everything else column_ids(ws, "issues", ISSUES)
    duplicates = set() if everything else column_ids(ws, "duplicates", DUPLICATES)
    manifest = _Manifest(0 if everything else per_class, issues | duplicates)
    for batch in batches(ws, "manifest", MANIFEST, ["sample_id", "label", "split", "status"],
                         pc.field("status") != Status.REMOVED.value):
        manifest.add(batch)
    counts = {"before": manifest.before(), "after": counts_after(ws)}
    if everything:
        return Selection(None, manifest.total, counts=counts)
    flagged = issues & manifest.found | manifest.errors  # findings on images since removed are left out
    duplicates &= manifest.found
    sampled = manifest.sampled()
    reasons = {"flagged": len(flagged), "duplicates": len(duplicates), "sampled": len(sampled)}
    return Selection(flagged | duplicates | sampled, manifest.total, per_class, reasons, counts)


def column_ids(ws: Workspace, name: str, schema: pa.Schema) -> set[str]:
    """The distinct sample_ids of `name/` (empty when OUT lacks it)."""
    ids: set[str] = set()
    for batch in batches(ws, name, schema, ["sample_id"], pc.is_valid(pc.field("sample_id"))):
        ids.update(batch.column("sample_id").to_pylist())
    return ids


class _Manifest:
    """What one pass over the manifest's batches gathers: the ids of images that are scan errors,
    which of `candidates` are in it, the class counts and, when `per_class` > 0, the running
    per-class sample."""

    def __init__(self, per_class: int, candidates: set[str]) -> None:
        self.per_class = per_class
        self.candidates = pa.array(list(candidates), pa.string())
        self.total = 0
        self.errors: set[str] = set()
        self.found: set[str] = set()
        self._before: Counter[tuple[str, str]] = Counter()
        self._sample = pd.DataFrame({"sample_id": pd.Series(dtype=object), "stratum": pd.Series(dtype=object),
                                     "key": pd.Series(dtype=np.int64)})

    def add(self, batch: pa.RecordBatch) -> None:
        self.total += batch.num_rows
        ids = batch.column("sample_id")
        self.errors.update(ids.filter(pc.equal(batch.column("status"), Status.ERROR.value)).to_pylist())
        add_counts(self._before, class_counts(batch.select(["label", "split"]).to_pandas(), None)["before"])
        if len(self.candidates):
            self.found.update(ids.filter(pc.is_in(ids, value_set=self.candidates)).to_pylist())
        if self.per_class:
            self._sample = smallest_keys(self._sample, keyed(batch), self.per_class)

    def before(self) -> Counts:
        return summed(self._before)

    def sampled(self) -> set[str]:
        return set(self._sample["sample_id"].tolist())


def keyed(batch: pa.RecordBatch) -> pd.DataFrame:
    """sample_id, stratum (the label) and seeded key of each row of a manifest batch."""
    ids = batch.column("sample_id").to_pylist()
    keys = (seeded_keys(SEED, ids) >> np.uint64(1)).astype(np.int64)
    strata = pc.fill_null(batch.column("label"), _NO_LABEL).to_pylist()
    return pd.DataFrame({"sample_id": pd.Series(ids, dtype=object), "stratum": pd.Series(strata, dtype=object),
                         "key": keys})


def smallest_keys(kept: pd.DataFrame, batch: pd.DataFrame, size: int) -> pd.DataFrame:
    """The `size` rows per stratum with the smallest keys among `kept` and `batch` (ties: by sample_id).
    Rows of `batch` above the cutoff of a stratum that `kept` already fills are dropped first, so
    a batch costs about its own size once the sample is full."""
    by_stratum = kept.groupby("stratum")["key"]
    full = by_stratum.max()[by_stratum.size() >= size].to_dict()
    codes, strata = pd.factorize(batch["stratum"])
    cutoff = np.array([full.get(s, np.iinfo(np.int64).max) for s in strata], np.int64)[codes]
    batch = batch[batch["key"].to_numpy() <= cutoff]
    both = pd.concat([kept, batch], ignore_index=True) if len(kept) else batch
    return both.sort_values(["key", "sample_id"], kind="stable").groupby("stratum", sort=False).head(size)
