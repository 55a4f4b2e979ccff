"""Names as the report shows them: literally, every invisible or reordering character made visible.

A class or file name is data, never markup: the page HTML-escapes it, the plots draw it without
matplotlib's math text (`curate.report.plots`), and both show it through `visible`, so a control
character, a terminal escape or a bidi mark (which would reorder the text around it) reads as
its escape (`\\x01`, `\\u202e`) rather than acting.
"""
from __future__ import annotations

import unicodedata

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
