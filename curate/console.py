"""Terminal rendering of stage summaries (the CLI's only output besides errors)."""
from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()


def _counts_table(title: str, counts: dict[str, int], key: str = "name") -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column(key)
    table.add_column("count", justify="right")
    for k, v in counts.items():
        table.add_row(str(k), str(v))
    return table


def show_scan(summary: Any, out: str) -> None:
    console.print(f"[bold]scan[/bold]: {summary.files} files, {summary.ok} images ok, "
                  f"{sum(summary.errors.values())} errors, {summary.removed} removed; decoded {summary.decoded} "
                  f"(reused {summary.reused}) in {summary.elapsed_s:.1f}s = {summary.images_per_s:.0f} images/s")
    if summary.errors:
        console.print(_counts_table("errors by code", summary.errors, "error_code"))
    console.print(_counts_table("images by class", summary.classes, "class"))
    console.print(f"manifest: {out}/manifest/")


def show_validate(summary: Any, out: str) -> None:
    console.print(f"[bold]validate[/bold]: {summary.count('error')} errors, {summary.count('warning')} warnings, "
                  f"{summary.count('info')} info; {summary.excluded} images excluded "
                  f"({summary.elapsed_s:.1f}s)")
    table = Table(title="issues by check", title_justify="left")
    for col in ("check", "severity", "count"):
        table.add_column(col, justify="right" if col == "count" else "left")
    for (check, severity), n in summary.by_check.items():
        table.add_row(check, severity, str(n))
    console.print(table)
    worst = Table(title="classes with the most flagged images", title_justify="left")
    for col in ("class", "flagged", "images"):
        worst.add_column(col, justify="left" if col == "class" else "right")
    for cls, flagged, n in summary.worst_classes:
        worst.add_row(cls, str(flagged), str(n))
    console.print(worst)
    console.print(f"issues: {out}/issues/")


RENDERERS = {"scan": show_scan, "validate": show_validate}


def show(stage: str, summary: Any, out: str) -> None:
    RENDERERS[stage](summary, out)
