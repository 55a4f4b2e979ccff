"""`curate app`: open the FiftyOne app on a published dataset."""
from __future__ import annotations

import os
import sys

import click

from curate import config as config_mod
from curate.cli.stage_commands import config_option
from curate.errors import CurateError


@click.command()
@click.argument("out", required=False)
@click.option("--name", default=None, help="the published dataset (default: the one publish made for OUT)")
@click.option("--port", type=int, default=None, help="port to serve the app on (default 5151)")
@click.option("--address", default=None, help="address to bind (default 127.0.0.1; 0.0.0.0 = every interface)")
@config_option
def app(out: str | None, name: str | None, port: int | None, address: str | None, config_path: str | None) -> None:
    """Open the FiftyOne app on a published dataset: prints the URL and serves until Ctrl-C."""
    from curate.console import console
    from curate.publish.app import launch_app
    from curate.publish.stage import dataset_name, resolve

    cfg = config_mod.override(config_mod.load_config(config_path), "publish", name=name, port=port, address=address)
    resolve(cfg)
    if not cfg.publish.name and out is None:
        raise CurateError("which dataset? give OUT (the folder you published) or --name")
    launch_app(dataset_name(out or "", cfg), cfg.publish.address, cfg.publish.port, say=console.print)
    # Exit now: FiftyOne's exit handlers wait on its services without a limit. The app server is
    # stopped; the database service sees this process's pipe close, as on any exit.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
