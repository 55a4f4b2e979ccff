"""Validate: read `OUT/manifest/`, write `OUT/issues/` (one row per (sample, check) that fired).

No image is decoded again: every score comes from the scan's manifest columns.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate.config import Config
from curate.engine import dask_client, run_tasks
from curate.errors import ConfigError, CurateError
from curate.labelled import labelled_embeddings
from curate.schema import ISSUES, MANIFEST, Severity, Status
from curate.tables import batches, excluded_ids
from curate.validate.checks import CHECKS, Check, Context, Level, of_level
from curate.view import Table, View
from curate.workspace import Workspace

STAGING = "issues.new"
_ROW_COLUMNS = [n for n in MANIFEST.names if n not in ("phash_d8",)]


@dataclass(frozen=True)
class Settings:
    """Resolved thresholds and severities, checked against the registries before any work."""

    thresholds: dict[str, float]
    severities: dict[str, str]
    disabled: frozenset[str]
    classes: frozenset[str] | None

    def threshold(self, name: str, default: float) -> float:
        return float(self.thresholds.get(name, default))

    def severity(self, name: str, default: Severity) -> str:
        return self.severities.get(name, default.value)


def resolve(cfg: Config) -> Settings:
    """Check the [validate] check names against the registered checks; fail with the valid names.
    (Severities, thresholds' types and `exclude` are checked when the config loads.)"""
    v = cfg.validate
    known = set(CHECKS.names())
    for key, names in (("validate.thresholds", v.thresholds), ("validate.severities", v.severities),
                       ("validate.disabled", v.disabled)):
        unknown = sorted(set(names) - known)
        if unknown:
            raise ConfigError(f"{key}: unknown check {unknown[0]!r}; valid checks: {', '.join(sorted(known))}")
    classes = None
    if v.classes:
        p = Path(v.classes)
        if not p.is_file():
            raise CurateError(f"class list {v.classes} not found")
        classes = frozenset(line.strip() for line in p.read_text().splitlines() if line.strip())
    return Settings(dict(v.thresholds), dict(v.severities), frozenset(v.disabled), classes)


@dataclass(frozen=True)
class ValidateTask:
    out: str
    part: str  # manifest part file name
    index: int
    settings: Settings
    context: Context


def _issues_for(rows: pd.DataFrame, chk: Check, settings: Settings, ctx: Context) -> pd.DataFrame:
    score = chk.score(rows, ctx)
    threshold = settings.threshold(chk.name, chk.threshold)
    fired = (score < threshold) if chk.fires_below else (score > threshold)
    fired &= score.notna()
    hit = rows.loc[fired.to_numpy(), ["sample_id", "path", "label"]].copy()
    scores = score[fired.to_numpy()]
    hit["check"] = chk.name
    hit["severity"] = settings.severity(chk.name, chk.severity)
    hit["score"] = scores.to_numpy(dtype="float64")
    hit["threshold"] = threshold
    hit["message"] = [chk.message.format(score=s, threshold=threshold) for s in scores]
    hit["suggested"] = None
    return hit


def validate_partition(task: ValidateTask) -> int:
    """Run every enabled per-image check on one manifest part; write its issues part."""
    ws = Workspace(task.out)
    rows = _read_part(ws, task.part)
    rows = rows[rows["status"] != Status.REMOVED.value].reset_index(drop=True)
    frames = [_issues_for(rows, chk, task.settings, task.context) for chk in of_level(Level.IMAGE)
              if chk.name not in task.settings.disabled]
    found = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=ISSUES.names)
    ws.write_table(f"{STAGING}/part-{task.index:05d}.parquet",
                   pa.Table.from_pandas(found, schema=ISSUES, preserve_index=False), ISSUES)
    return len(found)


def _read_part(ws: Workspace, part: str) -> pd.DataFrame:
    with ws.fs.open(ws.path("manifest", part), "rb") as f:
        return pq.read_table(f, columns=_ROW_COLUMNS, schema=MANIFEST).to_pandas()


@dataclass
class ValidateSummary:
    by_check: dict[str, dict[str, int]] = field(default_factory=dict)  # severity -> check -> count
    worst_classes: list[tuple[str, int, int]] = field(default_factory=list)  # (class, images with issues, images)
    excluded: int = 0
    unscored_blur: int = 0  # ok images without edge_sharpness (scanned by an older curate)
    elapsed_s: float = 0.0

    def count(self, severity: str) -> int:
        return sum(self.by_check.get(severity, {}).values())

    def view(self, out: str) -> View:
        notes = [f"{self.unscored_blur} images have no edge_sharpness (scanned by an older curate), so `blurry` "
                 "did not score them: rerun `curate scan` (it decodes only those again)"] if self.unscored_blur else []
        return View("validate", f"{self.count('error')} errors, {self.count('warning')} warnings, "
                                f"{self.count('info')} info; {self.excluded} images excluded ({self.elapsed_s:.1f}s)",
                    [*notes, Table.of("issues by check", ["check", "severity", "count"],
                              ((check, severity, n) for severity, checks in self.by_check.items()
                               for check, n in checks.items())),
                     Table.of("classes with the most flagged images", ["class", "flagged", "images"],
                              self.worst_classes)],
                    {"issues": f"{out}/issues/"})


def validate(src: str | None, out: str, cfg: Config) -> ValidateSummary:
    """Validate OUT's manifest (src is unused: validation reads only the manifest)."""
    started = time.perf_counter()
    settings = resolve(cfg)
    ws = Workspace(out)
    facts = collection_facts(ws)
    ctx = Context(median_area=facts.median_area, classes=settings.classes)
    parts = sorted(p.rpartition("/")[2] for p in ws.fs.glob(ws.path("manifest", "part-*.parquet")))
    ws.remove(STAGING)
    tasks = [ValidateTask(out, p, i, settings, ctx) for i, p in enumerate(parts)]
    with dask_client(cfg.engine, len(tasks), (out,)) as client:
        run_tasks(client, validate_partition, tasks, label="validate", retries=cfg.engine.retries)
    collection = [dict(r, severity=settings.severity(c.name, c.severity)) for c in of_level(Level.COLLECTION)
                  if c.name not in settings.disabled
                  for r in c.score(facts.counts, settings.threshold(c.name, c.threshold))]
    ws.write_table(f"{STAGING}/part-collection.parquet", pa.Table.from_pylist(collection, schema=ISSUES), ISSUES)
    if ws.exists("embeddings"):
        found = embedding_issues(ws, settings)
        ws.write_table(f"{STAGING}/part-embedding.parquet", pa.Table.from_pylist(found, schema=ISSUES), ISSUES)
    ws.swap_in(STAGING, "issues")
    summary = summarize(ws, cfg)
    if "blurry" not in settings.disabled:
        summary.unscored_blur = facts.unscored_blur
    summary.elapsed_s = time.perf_counter() - started
    return summary


@dataclass
class Facts:
    """What validate needs of the whole collection (its ok images)."""

    median_area: float  # pixels (1 without images)
    counts: pd.DataFrame  # label, split, n: the labelled images
    unscored_blur: int  # images without a blur score (scanned before it existed)


def collection_facts(ws: Workspace) -> Facts:
    """Count OUT/manifest/'s ok images a record batch at a time (the areas as a histogram of
    distinct values, the labels by (label, split)), so that the driver's memory does not grow with
    the number of images."""
    areas: Counter[float] = Counter()
    counts: Counter[tuple[str, str | None]] = Counter()
    unscored = 0
    for batch in batches(ws, "manifest", MANIFEST, ["width", "height", "label", "split", "edge_sharpness"],
                         pc.field("status") == Status.OK.value):
        area = pc.multiply(pc.cast(batch["width"], pa.float64()), batch["height"]).to_numpy(zero_copy_only=False)
        values, n = np.unique(area, return_counts=True)
        areas.update(dict(zip(values.tolist(), n.tolist())))
        labelled = pa.Table.from_batches([batch]).filter(pc.is_valid(batch["label"]))
        for row in labelled.group_by(["label", "split"], use_threads=False).aggregate([([], "count_all")]).to_pylist():
            counts[row["label"], row["split"]] += row["count_all"]
        unscored += batch["edge_sharpness"].null_count
    return Facts(_median(areas), pd.DataFrame([(label, split, n) for (label, split), n in sorted(
        counts.items(), key=lambda kv: (kv[0][0], kv[0][1] or ""))], columns=["label", "split", "n"]), unscored)


def _median(histogram: Counter[float]) -> float:
    """The median of the values a histogram counts (np.median of them all; 1.0 when empty)."""
    values = np.array(sorted(histogram))
    if not len(values):
        return 1.0
    ends = np.cumsum([histogram[v] for v in values])
    total = int(ends[-1])
    low, high = (values[np.searchsorted(ends, k, side="right")] for k in ((total - 1) // 2, total // 2))
    return float((low + high) / 2)


def embedding_issues(ws: Workspace, settings: Settings) -> list[dict[str, object]]:
    """The issues the embedding checks find among the labelled ok images that have an embedding
    (their vectors out of core: `curate.labelled`)."""
    found: list[dict[str, object]] = []
    with labelled_embeddings(ws) as (images, sample_ids):
        for chk in of_level(Level.EMBEDDING):
            if chk.name in settings.disabled or not len(sample_ids):
                continue
            scored = chk.score(images)
            threshold = settings.threshold(chk.name, chk.threshold)
            fires = scored.score < threshold if chk.fires_below else scored.score > threshold
            for i in np.flatnonzero(fires & ~np.isnan(scored.score)):
                found.append({"sample_id": sample_ids[i].as_py(), "label": images.labels[i], "check": chk.name,
                              "severity": settings.severity(chk.name, chk.severity),
                              "score": float(scored.score[i]), "threshold": threshold,
                              "message": chk.message.format(score=scored.score[i], threshold=threshold,
                                                            label=images.labels[i], suggested=scored.suggested[i]),
                              "suggested": scored.suggested[i]})
    paths = _paths_of(ws, {str(f["sample_id"]) for f in found})
    return [dict(f, path=paths[str(f["sample_id"])]) for f in found]


def _paths_of(ws: Workspace, sample_ids: set[str]) -> dict[str, str]:
    """sample id -> path, for `sample_ids` only."""
    if not sample_ids:
        return {}
    rows = ws.read("manifest", MANIFEST, columns=["sample_id", "path"],
                   filter=pc.field("sample_id").isin(pa.array(sorted(sample_ids), pa.string())))
    return dict(zip(rows["sample_id"].to_pylist(), rows["path"].to_pylist()))


def summarize(ws: Workspace, cfg: Config) -> ValidateSummary:
    """The counts of OUT/issues/ by severity and check, and the classes with the largest share of
    flagged images, counted in Arrow (the manifest a record batch at a time)."""
    issues = ws.read("issues", ISSUES, columns=["sample_id", "label", "check", "severity"])
    by_check: dict[str, dict[str, int]] = {}
    for r in sorted(issues.group_by(["check", "severity"], use_threads=False).aggregate([([], "count_all")]
                                                                                         ).to_pylist(),
                    key=lambda r: (r["check"], r["severity"])):
        by_check.setdefault(r["severity"], {})[r["check"]] = r["count_all"]
    per_class: Counter[str] = Counter()
    for batch in batches(ws, "manifest", MANIFEST, ["label"], pc.field("status") != Status.REMOVED.value):
        per_class.update(_count_by_label(pa.Table.from_batches([batch])))
    flagged = _count_by_label(issues.filter(pc.is_valid(issues["sample_id"])).group_by(
        ["sample_id", "label"], use_threads=False).aggregate([]))
    worst = sorted(((c, flagged.get(c, 0), n) for c, n in per_class.items()),
                   key=lambda t: (-t[1] / max(t[2], 1), t[0]))[:5]
    return ValidateSummary(by_check=by_check, worst_classes=worst,
                           excluded=len(excluded_ids(ws, cfg.validate.exclude)))


def _count_by_label(table: pa.Table) -> Counter[str]:
    """Rows per non-null label."""
    counted = table.filter(pc.is_valid(table["label"])).group_by("label", use_threads=False).aggregate(
        [([], "count_all")])
    return Counter(dict(zip(counted["label"].to_pylist(), counted["count_all"].to_pylist())))


def fail_verdict(summary: ValidateSummary, fail_on: str | None = None) -> str | None:
    """`curate validate --fail-on`: why the command fails when issues at `fail_on` severity (or
    worse) exist; None otherwise."""
    levels = {"error": ["error"], "warning": ["error", "warning"]}.get(fail_on or "", [])
    if any(summary.count(s) for s in levels):
        return f"failing: issues of severity {fail_on} or worse were found"
    return None
