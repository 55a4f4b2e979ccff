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


RENDERERS = {"scan": show_scan}


def show(stage: str, summary: Any, out: str) -> None:
    RENDERERS[stage](summary, out)
