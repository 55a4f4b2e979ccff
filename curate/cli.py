"""The `curate` command line: parse, call the library, report. No Prefect server needed."""
from __future__ import annotations

import functools
import logging
import sys
from pathlib import Path
from typing import Any, Callable

import click

from curate import config as config_mod
from curate.errors import CurateError


class CurateGroup(click.Group):
    """Turns user mistakes (`CurateError`) into one line on stderr and a non-zero exit."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CurateError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted: rerun the same command to resume", err=True)
            ctx.exit(130)


def engine_options(fn: Callable) -> Callable:
    """--config, --workers and --scheduler, merged into a validated `Config` passed as `cfg`."""

    @click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
                  help="TOML config (see `curate init`); embedded defaults when omitted")
    @click.option("--workers", type=int, default=None, help="local Dask worker processes (0 = one per core)")
    @click.option("--scheduler", default=None, help="address of an existing Dask scheduler, tcp://host:8786")
    @functools.wraps(fn)
    def wrapper(config_path: str | None, workers: int | None, scheduler: str | None, **kwargs: Any) -> Any:
        cfg = config_mod.override(config_mod.load_config(config_path), "engine", workers=workers,
                                  scheduler=scheduler)
        return fn(cfg=cfg, **kwargs)

    return wrapper


@click.group(cls=CurateGroup)
@click.option("-v", "--verbose", count=True, help="more log output (-vv for debug)")
@click.version_option(package_name="curate")
def main(verbose: int) -> None:
    """Curate image collections for training: scan, validate, deduplicate, rebalance, shard."""
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(levelname)s %(name)s: %(message)s")


@main.command()
@click.argument("path", type=click.Path(dir_okay=False), default="curate.toml")
@click.option("--force", is_flag=True, help="overwrite an existing file")
def init(path: str, force: bool) -> None:
    """Write a commented default config (TOML) to PATH."""
    p = Path(path)
    if p.exists() and not force:
        raise CurateError(f"{p} exists; use --force to overwrite")
    p.write_text(config_mod.default_toml())
    click.echo(f"wrote {p}")


@main.command()
@click.argument("src")
@click.option("-o", "--out", required=True, help="output folder (local path or fsspec URL)")
@click.option("--labels", default=None, help="CSV/Parquet with path,label[,split] (paths relative to SRC)")
@engine_options
def scan(src: str, out: str, labels: str | None, cfg: config_mod.Config) -> None:
    """Scan SRC once: one manifest row per file, with hashes, facts and errors."""
    from curate.console import show
    from curate.scan import scan as run_scan

    cfg = config_mod.override(cfg, "scan", labels=labels)
    show("scan", run_scan(src, out, cfg), out)


@main.command()
@click.argument("src")
@click.option("-o", "--out", required=True, help="output folder (local path or fsspec URL)")
@engine_options
def run(src: str, out: str, cfg: config_mod.Config) -> None:
    """Run every stage on SRC into OUT, with the config's settings."""
    from curate.console import show
    from curate.pipeline import run_pipeline

    run_pipeline(src, out, cfg, on_stage=lambda name, summary: show(name, summary, out))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
