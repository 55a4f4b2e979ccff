"""Report: a self-contained HTML page with plots of what curation did to the collection.

Reads what `curate.report.facts` reads (manifest; issues, duplicates, plan and the rebalance
record where they exist) and, for a few duplicate examples, their source images under SRC.
Writes `OUT/report/index.html` (plots inlined, opens offline), the same plots as
`OUT/report/<plot>.png`, and a "report" block in `OUT/dataset.json` when that file exists.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from curate import lineage, storage
from curate.config import Config
from curate.report.facts import collect
from curate.source import Source
from curate.view import Block, View
from curate.workspace import Workspace

log = logging.getLogger(__name__)

FOLDER = "report"


@dataclass
class ReportSummary:
    page: str  # path of index.html
    plots: list[str] = field(default_factory=list)
    classes: int = 0
    before: int = 0  # labelled images as scanned
    after: int = 0  # samples in the curated set
    imbalance_before: float | None = None  # largest / smallest class over all splits
    imbalance_after: float | None = None
    issues: int = 0
    clusters: int = 0
    leaks: int = 0
    missing: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    def view(self, out: str) -> View:
        """Where the report is, and its headline numbers."""
        def ratio(value: float | None) -> str:
            return f"{value:.1f}x" if value is not None else "-"

        blocks: list[Block] = []
        if self.missing:
            blocks.append(f"not run yet, so not in the report: {', '.join(self.missing)}")
        return View("report", f"{self.classes} classes, {self.before} images as scanned -> {self.after} samples "
                              f"curated; imbalance {ratio(self.imbalance_before)} -> {ratio(self.imbalance_after)}; "
                              f"{self.issues} issue findings, {self.clusters} duplicate clusters, {self.leaks} leaks "
                              f"({self.elapsed_s:.1f}s)", blocks,
                    next=[f"report: {self.page} (+ {len(self.plots)} PNG plots beside it)"])


def source_reader(src: str) -> Callable[[str], bytes | None]:
    """path relative to SRC -> its bytes (None when it cannot be read)."""
    source = Source(src)

    def read(rel: str) -> bytes | None:
        try:
            return source.read(rel)
        except OSError:
            log.debug("cannot read %s for a thumbnail", rel)
            return None

    return read


def make_plots(facts: dict[str, Any], read: Callable[[str], bytes | None]) -> dict[str, bytes]:
    """Every plot, in the page's order."""
    from curate.report import plots

    classes = facts["classes"]
    dup = facts["duplicates"]
    return {
        "class_counts": plots.class_counts(facts["counts"], classes),
        "imbalance": plots.imbalance(facts["imbalance"]),
        "issues": plots.issues(facts["issues"]),
        "duplicates": plots.duplicates(dup["by_kind"]),
        "duplicate_examples": plots.duplicate_examples(dup["examples"], read),
        "leaks": plots.leaks(dup["leaks"]),
        "class_weights": plots.class_weights(facts["class_weights"], facts["weight_column"], classes),
        "embedding_map": plots.embedding_map(facts["embeddings"]),
        "embedding_findings": plots.embedding_findings(facts["embeddings"], read),
    }


def report(src: str | None, out: str, cfg: Config) -> ReportSummary:
    """Write OUT/report/ (and the "report" block of dataset.json). See module doc."""
    from curate.report.page import render_page

    started = time.perf_counter()
    ws = Workspace(out)
    src = src if src is not None else lineage.source_of(ws)
    facts = collect(ws, cfg)
    plots = make_plots(facts, source_reader(src))
    for name, png in plots.items():
        ws.write_bytes(f"{FOLDER}/{name}.png", png)
    ws.write_bytes(f"{FOLDER}/index.html", render_page(facts, plots, ws.url, storage.safe_url(src)).encode())
    pngs = [f"{FOLDER}/{name}.png" for name in plots]
    if ws.exists("dataset.json"):
        doc = ws.read_json("dataset.json")
        doc["report"] = {**facts, "page": f"{FOLDER}/index.html", "plots": pngs}
        ws.write_json("dataset.json", doc)
    counts = facts["counts"]
    return ReportSummary(
        page=ws.location(FOLDER, "index.html"), plots=pngs, classes=len(facts["classes"]),
        before=sum(n for c in counts["before"].values() for n in c.values()),
        after=sum(n for c in counts["after"].values() for n in c.values()),
        imbalance_before=facts["imbalance"]["before"].get("all"),
        imbalance_after=facts["imbalance"]["after"].get("all"),
        issues=sum(r["count"] for r in facts["issues"]),
        clusters=sum(k["clusters"] for k in facts["duplicates"]["by_kind"].values()),
        leaks=facts["duplicates"]["leaks"]["clusters"], missing=facts["missing"],
        elapsed_s=time.perf_counter() - started)
