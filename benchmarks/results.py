"""benchmarks/RESULTS.md, one `## ` section per benchmark: each script rewrites its own section."""
from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def write_section(heading: str, body: str, keep_notes: bool = False) -> None:
    """Replace the section that starts with `heading` (a `## ` line; `body` starts with it too) by
    `body`, or append it. With `keep_notes`, a hand-written `### Notes` part of the old section
    stays below the new body."""
    text = RESULTS.read_text()
    start = text.find(heading + "\n")
    if start < 0:
        RESULTS.write_text(text.rstrip("\n") + "\n\n" + body.rstrip("\n") + "\n")
        return
    end = text.find("\n## ", start + len(heading))
    end = len(text) if end < 0 else end + 1
    old = text[start:end]
    notes = old[old.find("### Notes"):].rstrip("\n") + "\n" if keep_notes and "\n### Notes" in old else ""
    parts = [body.rstrip("\n") + "\n"] + (["\n" + notes] if notes else [])
    RESULTS.write_text(text[:start] + "".join(parts) + ("\n" if end < len(text) else "") + text[end:])
