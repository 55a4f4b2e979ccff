"""`curate run` (every stage, in-process or as a Prefect flow run) and `curate schedule`."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from curate import config as config_mod
from curate.cli.stage_commands import apply_options, click_option, config_option
from curate.errors import CurateError, RunFailed
from curate.stages import DASK


@click.command()
@click.argument("src")
@click.option("-o", "--out", required=True, help="output folder (local path or fsspec URL)")
@click.option("--flow", is_flag=True,
              help="run as a Prefect flow run (no server needed; PREFECT_API_URL is used if set)")
@click.option("--force", is_flag=True, help="rerun every stage, also those whose last run is current")
@config_option
@click_option(DASK[0])
@click_option(DASK[1])
def run(src: str, out: str, flow: bool, force: bool, config_path: str | None, **engine: Any) -> None:
    """Run every stage on SRC into OUT, with the config's settings. A stage whose last run is
    current (same settings and source, no input rewritten since: see `curate status`) is
    skipped unless --force; the scan and publish always run."""
    cfg = apply_options(config_mod.load_config(config_path), DASK, engine)
    from curate.pipeline import load, run_pipeline, selected_stages

    if flow:
        from curate.storage import refuse_credentials
        from flows.server import prefect_api

        refuse_credentials(src, "SRC")
        refuse_credentials(out, "OUT")
        with prefect_api() as ready:  # a temporary server starts in the background
            from flows.curate_pipeline import curate_pipeline

            for spec in selected_stages(cfg):  # import the stages while it starts
                load(spec.run)
            ready()
            curate_pipeline(src, out, config_path, cfg.engine.scheduler or None)
        click.echo(f"flow run finished: outputs in {out}")
        return
    from curate.cli.run_display import RunDisplay
    from curate.console import console
    from curate.progress import reporting_to

    with RunDisplay([s.name for s in selected_stages(cfg)], console) as display, reporting_to(display):
        run_pipeline(src, out, cfg, on_start=display.start, on_stage=lambda name, summary: display.finish(
            summary.view(out)), on_skip=display.skip, force=force)


@click.command()
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False, exists=True))
@click.option("--cron", required=True, help='cron schedule, e.g. "0 2 * * *" (every day at 02:00)')
@click.option("--name", default="curate-incremental-refresh", help="deployment name")
def schedule(config_path: str, cron: str, name: str) -> None:
    """Serve the incremental refresh of CONFIG's [run] src/out on a cron schedule (needs a Prefect server)."""
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
    from flows.serve import serve

    def serving() -> None:
        click.echo(f"serving {name} ({cron}) for {cfg.run.src} -> {cfg.run.out}; Ctrl-C stops")

    if serve(incremental_refresh, name, cron, {"config": str(Path(config_path).resolve())}, on_serving=serving):
        click.echo(f"stopped serving {name}: its schedule is paused")
    else:
        raise RunFailed(f"stopped serving {name}, but the Prefect server could not be reached to pause its "
                        "schedule: pause it in the UI or with `prefect deployment pause`")
