"""`curate publish` and `curate app`: parse, call the library, report."""
from __future__ import annotations

import os
import sys

import click

from curate import config as config_mod


def _config(config_path: str | None, **publish_options: object) -> config_mod.Config:
    return config_mod.override(config_mod.load_config(config_path), "publish", **publish_options)


config_option = click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
                             help="TOML config (see `curate init`); embedded defaults when omitted")


@click.command()
@click.argument("out")
@click.option("--name", default=None, help="FiftyOne dataset name (default: curate-<OUT folder name>-<6 hex of its path>)")
@click.option("--batch-size", type=int, default=None, help="samples written to FiftyOne per batch")
@config_option
def publish(out: str, name: str | None, batch_size: int | None, config_path: str | None) -> None:
    """Put OUT into a FiftyOne dataset: one sample per image, saved views for every decision."""
    from curate.pipeline import preflight, run_stage
    from curate.publish.stage import render

    cfg = _config(config_path, name=name, batch_size=batch_size)
    preflight(cfg, stages=["publish"])
    render(run_stage("publish", None, out, cfg), out)


@click.command()
@click.argument("out", required=False)
@click.option("--name", default=None, help="the published dataset (default: the one publish made for OUT)")
@click.option("--port", type=int, default=None, help="port to serve the app on (default 5151)")
@click.option("--address", default=None, help="address to bind (default 127.0.0.1; 0.0.0.0 = every interface)")
@config_option
def app(out: str | None, name: str | None, port: int | None, address: str | None, config_path: str | None) -> None:
    """Open the FiftyOne app on a published dataset: prints the URL and serves until Ctrl-C."""
    from curate.errors import CurateError
    from curate.publish.app import launch_app
    from curate.publish.stage import dataset_name, resolve

    cfg = _config(config_path, name=name, port=port, address=address)
    resolve(cfg)
    if not cfg.publish.name and out is None:
        raise CurateError("which dataset? give OUT (the folder you published) or --name")
    launch_app(dataset_name(out or "", cfg), cfg.publish.address, cfg.publish.port)
    # Exit now: FiftyOne's exit handlers wait on its services without a limit. The app server is
    # stopped; the database service sees this process's pipe close, as on any exit.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
