"""The `curate` command line: parse, call the library, report. No Prefect server needed."""
from __future__ import annotations

import functools
import inspect
import logging
import sys
from pathlib import Path
from typing import Any, Callable

import click

from curate import config as config_mod
from curate.engine import PartitionFailed
from curate.errors import CurateError


class CurateGroup(click.Group):
    """Turns user mistakes (`CurateError`) into one line on stderr and a non-zero exit."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CurateError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except PartitionFailed as exc:
            click.echo(f"failed: {exc}", err=True)
            ctx.exit(1)
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
        if "config_path" in inspect.signature(fn).parameters:
            kwargs["config_path"] = config_path
        return fn(cfg=cfg, **kwargs)

    return wrapper


@click.group(cls=CurateGroup)
@click.option("-v", "--verbose", count=True, help="more log output (-vv for debug)")
@click.version_option(package_name="curate")
def main(verbose: int) -> None:
    """Curate image collections for training: scan, validate, deduplicate, rebalance, shard."""
    level = max(logging.WARNING - 10 * verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if verbose < 2:
        for noisy in ("prefect", "fiftyone"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


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
    cfg = config_mod.override(cfg, "scan", labels=labels)
    _run_stage("scan", src, out, cfg)


def _run_stage(name: str, src: str | None, out: str, cfg: config_mod.Config) -> Any:
    from curate.console import show
    from curate.pipeline import preflight, run_stage

    preflight(cfg, src, stages=[name])
    summary = run_stage(name, src, out, cfg)
    show(name, summary, out)
    return summary


@main.command()
@click.argument("out")
@click.option("--fail-on", type=click.Choice(["error", "warning"]), default=None,
              help="exit 1 when issues of this severity (or worse) exist")
@click.option("--classes", default=None, help="file with the declared class list, one per line")
@engine_options
def validate(out: str, fail_on: str | None, classes: str | None, cfg: config_mod.Config) -> None:
    """Check OUT's manifest: integrity, image quality and labels; writes OUT/issues/."""
    from curate.validate.stage import fail_level_reached

    cfg = config_mod.override(cfg, "validate", classes=classes)
    summary = _run_stage("validate", None, out, cfg)
    if fail_on and fail_level_reached(summary, fail_on):
        click.echo(f"failing: issues of severity {fail_on} or worse were found", err=True)
        sys.exit(1)


@main.command()
@click.argument("out")
@click.option("--threshold", type=int, default=None, help="near-duplicate pHash distance in bits (default 8)")
@click.option("--dihedral/--no-dihedral", default=None, help="also match flipped and rotated copies")
@click.option("--conflicts", type=click.Choice(["drop", "keep-majority", "keep"]), default=None,
              help="what to keep of clusters whose members carry different labels")
@engine_options
def dedup(out: str, threshold: int | None, dihedral: bool | None, conflicts: str | None,
          cfg: config_mod.Config) -> None:
    """Find exact and near-duplicate clusters, leaks and label conflicts; writes OUT/duplicates/."""
    cfg = config_mod.override(cfg, "dedup", threshold=threshold, dihedral=dihedral, conflicts=conflicts)
    _run_stage("dedup", None, out, cfg)


@main.command()
@click.argument("out")
@click.option("--strategy", default=None, help="none | cap | floor | target")
@click.option("--cap", type=int, default=None, help="cap: at most N images per class")
@click.option("--floor", type=int, default=None, help="floor: at least N samples per class")
@click.option("--target", default=None, help="target: uniform | sqrt | power:ALPHA | CSV of class,count")
@click.option("--oversample", type=click.Choice(["repeat", "augment"]), default=None)
@click.option("--split", default=None, help="re-split as train,val,test fractions, e.g. 0.8,0.1,0.1")
@click.option("--keep-test/--no-keep-test", default=None, help="with --split: test images stay in test")
@click.option("--seed", type=int, default=None)
@engine_options
def rebalance(out: str, cfg: config_mod.Config, **options: Any) -> None:
    """Plan the final membership: splits, class balance, copies and class weights; writes OUT/plan/."""
    cfg = config_mod.override(cfg, "rebalance", **options)
    _run_stage("rebalance", None, out, cfg)


@main.command()
@click.argument("out")
@click.option("--shard-size", default=None, help="target shard size, e.g. 256MB")
@click.option("--min-shards", type=int, default=None, help="shard count is a multiple of this (nodes x workers)")
@click.option("--normalize/--no-normalize", default=None, help="re-encode images as RGB JPEG/PNG")
@click.option("--max-side", type=int, default=None, help="with --normalize: longest side at most this")
@engine_options
def shard(out: str, cfg: config_mod.Config, **options: Any) -> None:
    """Write the plan into Parquet shards, OUT/index.parquet and OUT/dataset.json."""
    cfg = config_mod.override(cfg, "shard", **options)
    _run_stage("shard", None, out, cfg)


@main.command()
@click.argument("out")
def verify(out: str) -> None:
    """Check every shard: checksum, every image decodes, counts and histograms match the index."""
    from curate.shards.verify import verify as run_verify

    report = run_verify(out)
    for shard_path, problem in report.failures.items():
        click.echo(f"FAILED {shard_path}: {problem}", err=True)
    if not report.ok:
        click.echo(f"verify: {len(report.failures)} of {report.shards} shards failed", err=True)
        sys.exit(1)
    click.echo(f"verify: {report.shards} shards, {report.samples} samples: all ok")


@main.command("checks")
def list_checks() -> None:
    """List every validation check with its severity, default threshold and meaning."""
    from curate.validate.checks import CHECKS
    from curate.validate.collection import COLLECTION_CHECKS

    for c in [*CHECKS, *COLLECTION_CHECKS]:
        click.echo(f"{c.name:20s} {c.severity.value:8s} {c.threshold:>8g}  {c.help}")


@main.command()
@click.argument("out")
@click.option("--to", "to", required=True, help="folder for quarantine.csv (and copies with --copy)")
@click.option("--copy", is_flag=True, help="also copy (never move) the excluded files there")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None)
def quarantine(out: str, to: str, copy: bool, config_path: str | None) -> None:
    """List the files that validation excludes, with reasons; sources stay untouched."""
    from curate.quarantine import quarantine as run_quarantine

    n = run_quarantine(out, to, config_mod.load_config(config_path), copy=copy)
    click.echo(f"{n} files listed in {to}/quarantine.csv" + (f", copied under {to}/files/" if copy else ""))


@main.command()
@click.argument("src")
@click.option("-o", "--out", required=True, help="output folder (local path or fsspec URL)")
@click.option("--flow", is_flag=True, help="run as a Prefect flow run (no server needed; PREFECT_API_URL is used if set)")
@engine_options
def run(src: str, out: str, flow: bool, cfg: config_mod.Config, config_path: str | None) -> None:
    """Run every stage on SRC into OUT, with the config's settings."""
    if flow:
        from flows.common import prefect_api
        from flows.curate_pipeline import curate_pipeline

        try:
            with prefect_api():
                curate_pipeline(src, out, config_path, cfg.engine.scheduler or None)
        except RuntimeError as exc:  # e.g. Prefect's temporary server did not come up
            raise CurateError(f"the flow run failed: {str(exc).splitlines()[0]}") from exc
        click.echo(f"flow run finished: outputs in {out}")
        return
    from curate.console import show
    from curate.pipeline import run_pipeline

    run_pipeline(src, out, cfg, on_stage=lambda name, summary: show(name, summary, out))


@main.command()
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False, exists=True))
@click.option("--cron", required=True, help='cron schedule, e.g. "0 2 * * *" (every day at 02:00)')
@click.option("--name", default="curate-incremental-refresh", help="deployment name")
def schedule(config_path: str, cron: str, name: str) -> None:
    """Serve the incremental refresh of CONFIG's [run] src/out on a cron schedule (needs a Prefect server)."""
    import os

    cfg = config_mod.load_config(config_path)
    if not cfg.run.src or not cfg.run.out:
        raise CurateError(f"{config_path}: set [run] src and out to schedule a refresh")
    if not os.environ.get("PREFECT_API_URL"):
        raise CurateError("schedules live in a Prefect server: run `prefect server start`, then "
                          "export PREFECT_API_URL=http://127.0.0.1:4200/api and retry")
    from prefect.client.schemas.schedules import CronSchedule

    try:
        CronSchedule(cron=cron)
    except ValueError as exc:
        raise CurateError(f"--cron {cron!r} is not a valid cron expression") from exc
    from flows.incremental_refresh import incremental_refresh

    click.echo(f"serving {name} ({cron}) for {cfg.run.src} -> {cfg.run.out}; Ctrl-C stops")
    incremental_refresh.serve(name=name, cron=cron, parameters={"config": str(Path(config_path).resolve())})


def _register_plugins() -> None:
    from curate.augment.cli import augment
    from curate.publish.cli import app, publish
    from curate.report.cli import report

    for command in (augment, publish, app, report):
        main.add_command(command)


_register_plugins()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
