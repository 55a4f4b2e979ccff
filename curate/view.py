"""What a stage shows a person: a plain summary view that any front end renders.

Every stage summary has a `view(out)` method returning a `View`: a headline, then blocks in
order (tables and lines of text), then the paths of what it wrote. The terminal (`curate.console`)
and the Prefect run artifact (`View.markdown`) render the same views; neither knows any stage.
Plain data only: nothing here imports rich, click or Prefect.

A class or file name is data, never markup or a terminal command: every front end shows it
through `visible`, so a control character, a terminal escape or a bidi mark (which would reorder
the text around it) reads as its escape (`\\x01`, `\\u202e`) rather than acting.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence, Union

HIDDEN = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}  # control, format (bidi marks), surrogate, private, unassigned


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def visible(text: str, limit: int = 0) -> str:
    """`text` with every hidden character written as its escape; longer than `limit` characters
    (when `limit` > 0), cut in the middle with an ellipsis so both ends stay readable."""
    shown = "".join(_escape(c) if unicodedata.category(c) in HIDDEN else c for c in text)
    if 0 < limit < len(shown):
        head = (limit - 1) // 2
        shown = shown[:head] + "…" + shown[len(shown) - (limit - 1 - head):]
    return shown


@dataclass
class Table:
    """A titled table: the first column names things, the others hold numbers."""

    title: str
    header: list[str]
    rows: list[list[str]]

    @classmethod
    def of(cls, title: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
        return cls(title, list(header), [[str(cell) for cell in row] for row in rows])


Block = Union[Table, str]


@dataclass
class View:
    """One stage's summary for a person: `headline`, `blocks` (tables and lines), `paths`
    (label -> where it wrote), and `next`: what to open now (a page, a command)."""

    stage: str
    headline: str
    blocks: list[Block] = field(default_factory=list)
    paths: dict[str, str] = field(default_factory=dict)
    next: list[str] = field(default_factory=list)

    def paths_line(self) -> str:
        return "  ".join(f"{label}: {path}" for label, path in self.paths.items())

    def markdown(self) -> str:
        """The view as Markdown (the flow run's artifact)."""
        lines = [f"**{self.stage}**: {self.headline}", ""]
        for block in self.blocks:
            if isinstance(block, Table):
                lines += [f"*{block.title}*", "", "| " + " | ".join(block.header) + " |",
                          "|" + "---|" * len(block.header)]
                lines += ["| " + " | ".join(row) + " |" for row in block.rows]
            else:
                lines.append(block)
            lines.append("")
        if self.paths:
            lines += [", ".join(f"{label}: `{path}`" for label, path in self.paths.items()), ""]
        lines += [*self.next, ""] if self.next else []
        return "\n".join(lines)
