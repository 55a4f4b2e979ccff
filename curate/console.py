"""Terminal rendering of stage summaries (the CLI's only output besides errors)."""
from __future__ import annotations

from typing import Any, Iterable, Sequence

from rich.console import Console
from rich.table import Table

console = Console()


def table(title: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    """A titled table: the first column left-aligned (names), the others right-aligned (numbers)."""
    out = Table(title=title, title_justify="left")
    for i, name in enumerate(header):
        out.add_column(name, justify="left" if i == 0 else "right")
    for row in rows:
        out.add_row(*(str(cell) for cell in row))
    return out


def show_scan(summary: Any, out: str) -> None:
    console.print(f"[bold]scan[/bold]: {summary.files} files, {summary.ok} images ok, "
                  f"{sum(summary.errors.values())} errors, {summary.removed} removed; decoded {summary.decoded} "
                  f"(reused {summary.reused}) in {summary.elapsed_s:.1f}s = {summary.images_per_s:.0f} images/s")
    if summary.errors:
        console.print(table("errors by code", ["error_code", "count"], summary.errors.items()))
    console.print(table("images by class", ["class", "count"], summary.classes.items()))
    console.print(f"manifest: {out}/manifest/")


def show_validate(summary: Any, out: str) -> None:
    console.print(f"[bold]validate[/bold]: {summary.count('error')} errors, {summary.count('warning')} warnings, "
                  f"{summary.count('info')} info; {summary.excluded} images excluded "
                  f"({summary.elapsed_s:.1f}s)")
    console.print(table("issues by check", ["check", "severity", "count"],
                        ((check, severity, n) for severity, checks in summary.by_check.items()
                         for check, n in checks.items())))
    console.print(table("classes with the most flagged images", ["class", "flagged", "images"],
                        summary.worst_classes))
    console.print(f"issues: {out}/issues/")


def show_dedup(summary: Any, out: str) -> None:
    total = sum(summary.clusters.values())
    console.print(f"[bold]dedup[/bold]: {total} clusters, {sum(summary.images.values())} images in them, "
                  f"{summary.dropped} would be dropped; {summary.label_conflicts} label conflicts; "
                  f"largest cluster diameter {summary.max_diameter} bits ({summary.elapsed_s:.1f}s)")
    console.print(table("clusters by kind", ["kind", "clusters", "images"],
                        ((kind, n, summary.images[kind]) for kind, n in summary.clusters.items())))
    for pair, n in summary.leaks.items():
        console.print(f"leak: {n} clusters span {pair}")
    for example in summary.examples:
        console.print("example: " + "  ==  ".join(example))
    console.print(f"duplicates: {out}/duplicates/")


def show_rebalance(summary: Any, out: str) -> None:
    console.print(f"[bold]rebalance[/bold]: excluded {sum(summary.excluded.values())} "
                  f"({', '.join(f'{k} {v}' for k, v in summary.excluded.items()) or 'none'}) "
                  f"({summary.elapsed_s:.1f}s)")
    if summary.small_classes:
        console.print(f"classes below the minimum size: {', '.join(summary.small_classes)}")
    splits = list(summary.after) or list(summary.before)
    classes = sorted({c for counts in [*summary.before.values(), *summary.after.values()] for c in counts})
    rows = ([c, *(f"{summary.before.get(s, {}).get(c, 0)} -> {summary.after.get(s, {}).get(c, 0)}" for s in splits),
             *(f"{summary.weights[k].get(c, 0):.3f}" for k in summary.weights)] for c in classes)
    console.print(table("samples per class: before -> after",
                        ["class", *splits, *(f"w:{k}" for k in summary.weights)], rows))
    console.print(f"plan: {out}/plan/")


def show_shard(summary: Any, out: str) -> None:
    parts = ", ".join(f"{split}: {summary.samples[split]} samples in {n} shards" for split, n in summary.shards.items())
    console.print(f"[bold]shard[/bold]: {parts or 'nothing to write'}; {summary.bytes / 2**20:.1f} MiB, "
                  f"{summary.written} shards written this run; largest class-share deviation of a shard "
                  f"{summary.max_class_deviation:.3f} ({summary.elapsed_s:.1f}s)")
    console.print(f"shards: {out}/shards/  index: {out}/index.parquet  dataset: {out}/dataset.json")


def show_augment(summary: Any, out: str) -> None:
    from curate.augment.summary import render

    render(summary, out)


def show_publish(summary: Any, out: str) -> None:
    from curate.publish.stage import render

    render(summary, out)


def show_report(summary: Any, out: str) -> None:
    from curate.report.stage import render

    render(summary, out)


RENDERERS = {"scan": show_scan, "validate": show_validate, "dedup": show_dedup, "rebalance": show_rebalance,
             "shard": show_shard, "augment": show_augment, "publish": show_publish, "report": show_report}


def show(stage: str, summary: Any, out: str) -> None:
    RENDERERS[stage](summary, out)
