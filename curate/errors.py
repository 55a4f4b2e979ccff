"""User-facing errors.

A `CurateError` is a mistake the user can fix (missing folder, bad config key, out-of-range
threshold). The CLI prints its message as one line and exits non-zero; it never shows a
traceback. Anything else that escapes is a bug in `curate`.
"""
from __future__ import annotations


class CurateError(Exception):
    """A bad command or input: one clear line that says what to do."""

    exit_code = 2


class ConfigError(CurateError):
    """An unknown config key or a value outside its allowed range."""


class WorkspaceLocked(CurateError):
    """Another run holds the output folder's lock."""

    exit_code = 3
