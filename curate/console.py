"""Terminal rendering of stage views (the CLI's only output besides errors). Knows no stage."""
from __future__ import annotations

from typing import Any, Iterable, Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table as RichTable

from curate.view import Table, View, visible

console = Console()


def shown(text: Any) -> str:
    """`text` as the terminal prints it: hidden characters made visible, rich markup escaped."""
    return escape(visible(str(text)))


def table(title: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> RichTable:
    """A titled table: the first column left-aligned (names), the others right-aligned (numbers)."""
    out = RichTable(title=shown(title), title_justify="left")
    for i, name in enumerate(header):
        out.add_column(shown(name), justify="left" if i == 0 else "right")
    for row in rows:
        out.add_row(*(shown(cell) for cell in row))
    return out


def show(view: View) -> None:
    """Print a stage's view: bold stage name and headline, its blocks in order, its paths."""
    console.print(f"[bold]{view.stage}[/bold]: {shown(view.headline)}")
    for block in view.blocks:
        if isinstance(block, Table):
            console.print(table(block.title, block.header, block.rows))
        else:
            console.print(shown(block))
    if view.paths:
        console.print(shown(view.paths_line()))
    for line in view.next:
        console.print(shown(line))
