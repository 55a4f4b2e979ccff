"""The commands around the stages: `status`, `init`, `checks`, `quarantine`, `verify`."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from curate import config as config_mod
from curate.cli.stage_commands import config_option
from curate.errors import CurateError


@click.command()
@click.argument("out")
@config_option
def status(out: str, config_path: str | None) -> None:
    """Where every stage stands in OUT: done / stale / not run, when, with which settings, what it wrote."""
    from curate.console import show
    from curate.status import status as workspace_status

    cfg = config_mod.load_config(config_path) if config_path else None
    show(workspace_status(out, cfg))


@click.command()
@click.argument("path", type=click.Path(dir_okay=False), default="curate.toml")
@click.option("--force", is_flag=True, help="overwrite an existing file")
def init(path: str, force: bool) -> None:
    """Write a commented default config (TOML) to PATH."""
    p = Path(path)
    if p.exists() and not force:
        raise CurateError(f"{p} exists; use --force to overwrite")
    p.write_text(config_mod.default_toml())
    click.echo(f"wrote {p}")


@click.command()
def checks() -> None:
    """List every validation check with its severity, default threshold and meaning."""
    from curate.validate.checks import CHECKS

    for c in CHECKS:
        click.echo(f"{c.name:20s} {c.severity.value:8s} {c.threshold:>8g}  {c.help}")


@click.command()
@click.argument("out")
@click.option("--to", "to", required=True, help="folder for quarantine.csv (and copies with --copy)")
@click.option("--copy", is_flag=True, help="also copy (never move) the excluded files there")
@config_option
def quarantine(out: str, to: str, copy: bool, config_path: str | None) -> None:
    """List the files that validation excludes, with reasons; sources stay untouched."""
    from curate.quarantine import quarantine as run_quarantine

    done = run_quarantine(out, to, config_mod.load_config(config_path), copy=copy)
    copied = f", {done.listed - done.not_copied} of them copied under {to}/files/" if copy else ""
    click.echo(f"{done.listed} files listed in {to}/quarantine.csv{copied}")


@click.command()
@click.argument("out")
def verify(out: str) -> None:
    """Check every shard: checksum, every image decodes, counts and histograms match the index."""
    from curate.shards.verify import verify as run_verify

    report = run_verify(out)
    for shard_path, problem in report.failures.items():
        click.echo(f"FAILED {shard_path}: {problem}", err=True)
    for sample in report.left_out:
        click.echo(f"LEFT OUT {sample['path']}: {sample['reason']} (from {sample['shard']})", err=True)
    if not report.ok:
        click.echo(f"verify: {len(report.failures)} of {report.shards} shards failed, {len(report.left_out)} "
                   "samples left out (rescan and reshard to include them)", err=True)
        sys.exit(1)
    click.echo(f"verify: {report.shards} shards, {report.samples} samples: all ok")
