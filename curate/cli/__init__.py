"""The `curate` command line: parse, call the library, show the result. No Prefect server needed.

Commands: one per stage (`curate.cli.stage_commands`, from the stage registry), `run` and
`schedule` (`curate.cli.runs`), `status`, `init`, `checks`, `quarantine`, `verify`
(`curate.cli.tools`) and `app` (`curate.cli.app`).
"""
from __future__ import annotations

import logging
import sys
from typing import Any

import click

from curate import storage
from curate.errors import CurateError


class CurateGroup(click.Group):
    """Lists commands in the order they were added (the stages in pipeline order first) and turns
    a `CurateError` into one line on stderr ("error: ..." or "failed: ...") and its exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CurateError as exc:
            click.echo(storage.safe_url(f"{exc.kind}: {exc}"), err=True)
            ctx.exit(exc.exit_code)
        except Exception as exc:  # from an object store: one line; anything else is a bug, raised
            error = storage.user_error(exc)
            if error is None:
                raise
            click.echo(storage.safe_url(f"{error.kind}: {error}"), err=True)
            ctx.exit(error.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted: rerun the same command to resume", err=True)
            ctx.exit(130)


@click.group(cls=CurateGroup)
@click.option("-v", "--verbose", count=True, help="more log output (-vv for debug)")
@click.version_option(package_name="curate")
def main(verbose: int) -> None:
    """Curate image collections for training: scan, validate, dedup, rebalance, shard, augment, publish, report."""
    level = max(logging.WARNING - 10 * verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    storage.scrub_log_records()
    if verbose < 2:
        for noisy in ("prefect", "fiftyone"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def _register() -> None:
    from curate.cli import app, runs, tools
    from curate.cli.stage_commands import stage_command
    from curate.stages import STAGES

    for spec in STAGES:
        main.add_command(stage_command(spec))
    for command in (runs.run, runs.schedule, tools.status, tools.init, tools.checks, tools.quarantine, tools.verify,
                    app.app):
        main.add_command(command)


_register()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
