"""Every exception a user of `curate` can see, with the exit code the CLI gives it.

A `CurateError` is something the user can act on. The CLI prints its message as one line,
prefixed by its `kind` ("error" for a mistake to fix, "failed" for work that failed), and exits
with its `exit_code`; it never shows a traceback. Anything else that escapes is a bug in `curate`.

| exception         | exit | meaning                                                            |
|-------------------|------|--------------------------------------------------------------------|
| CurateError       | 2    | a bad command or input: missing folder, bad labels file, ...       |
| ConfigError       | 2    | an unknown config key or a value outside its allowed range         |
| MissingInput      | 2    | a stage's input is not in OUT yet: names the command that makes it |
| WorkspaceLocked   | 3    | another run holds OUT's lock                                       |
| RunFailed         | 1    | the work itself failed (a service did not start, ...)              |
| PartitionFailed   | 1    | a partition kept failing after its retries; names the partition    |
"""
from __future__ import annotations


class CurateError(Exception):
    """A bad command or input: one clear line that says what to do."""

    exit_code = 2
    kind = "error"


class ConfigError(CurateError):
    """An unknown config key or a value outside its allowed range."""


class MissingInput(CurateError):
    """A stage's input table is not in the output folder: run the stage that writes it first."""


class WorkspaceLocked(CurateError):
    """Another run holds the output folder's lock."""

    exit_code = 3


class RunFailed(CurateError):
    """The work failed for a reason other than the user's input (reported, exit 1)."""

    exit_code = 1
    kind = "failed"


class PartitionFailed(RunFailed):
    """A partition kept failing after its retries."""
