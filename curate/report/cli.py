"""`curate report`: parse, call the library, report."""
from __future__ import annotations

import click


@click.command()
@click.argument("out")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="TOML config (see `curate init`); embedded defaults when omitted")
def report(out: str, config_path: str | None) -> None:
    """Write OUT/report/index.html: class counts before/after, issues, duplicates, leaks, weights."""
    from curate import config as config_mod
    from curate.pipeline import run_stage
    from curate.report.stage import render

    render(run_stage("report", None, out, config_mod.load_config(config_path)), out)
