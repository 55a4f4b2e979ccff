"""benchmarks/RESULTS.md, one `## ` section per benchmark: each script rewrites its own section."""
from __future__ import annotations

from pathlib import Path

from hostinfo import cpu_model, ram_gib

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def write_section(heading: str, body: str, keep_notes: bool = False, notes: str = "### Notes") -> None:
    """Replace the section that starts with `heading` (a `## ` line; `body` starts with it too) by
    `body`, or append it. With `keep_notes`, the old section's hand-written part, from its first
    line starting with `notes` (a `### Notes` heading; "### " for every subsection of a script
    that writes none) to its end, stays below the new body."""
    text = RESULTS.read_text()
    start = text.find(heading + "\n")
    if start < 0:
        RESULTS.write_text(text.rstrip("\n") + "\n\n" + body.rstrip("\n") + "\n")
        return
    end = text.find("\n## ", start + len(heading))
    end = len(text) if end < 0 else end + 1
    old = text[start:end]
    at = old.find("\n" + notes)
    kept = old[at + 1:].rstrip("\n") + "\n" if keep_notes and at >= 0 else ""
    parts = [body.rstrip("\n") + "\n"] + (["\n" + kept] if kept else [])
    RESULTS.write_text(text[:start] + "".join(parts) + ("\n" if end < len(text) else "") + text[end:])


def write_table(heading: str, command: str, columns: str, align: str, rows: list[str], write: bool) -> None:
    """Print a section of one table: `heading`, the `command` that made it on this machine, the
    table's `columns` and `align` lines and its rows; and with `write`, make it the section of
    RESULTS.md (its "### Notes" kept)."""
    body = "\n".join([heading, "", f"`{command}` on {cpu_model()}, {ram_gib():.0f} GiB (data and measures: the "
                      "script's docstring).", "", columns, align, *rows])
    print(body)
    if write:
        write_section(heading, body, keep_notes=True)
