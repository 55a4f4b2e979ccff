"""`curate augment OUT`: parse, run the augment stage (under OUT's lock, recorded), report."""
from __future__ import annotations

import click

from curate.augment.summary import render
from curate.config import load_config, override


def _class_list(text: str | None) -> list[str] | None:
    return None if text is None else [c.strip() for c in text.split(",") if c.strip()]


def _list_ops(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from curate.augment.ops import describe_ops

    click.echo("\n".join(describe_ops()))
    ctx.exit()


@click.command()
@click.argument("out")
@click.option("--copies", type=int, default=None,
              help="variants per image of --classes (default: augment_copies from the plan)")
@click.option("--classes", default=None, help="with --copies: comma-separated classes, e.g. cat,dog (default: all)")
@click.option("--seed", type=int, default=None, help="seed of every sampled parameter")
@click.option("--device", default=None, help="auto (cuda when present) | cpu | cuda | cuda:N")
@click.option("--batch-size", type=int, default=None, help="images per batch on the device")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="TOML config (see `curate init`); embedded defaults when omitted")
@click.option("--list-ops", is_flag=True, is_eager=True, expose_value=False, callback=_list_ops,
              help="list the ops [augment] ops can name, with their parameters, and exit")
def augment(out: str, copies: int | None, classes: str | None, seed: int | None, device: str | None,
            batch_size: int | None, config_path: str | None) -> None:
    """Write augmented variants (Kornia) of the plan's images into OUT/augmented/<split>/ and the index."""
    from curate.pipeline import preflight, run_stage

    cfg = override(load_config(config_path), "augment", copies=copies, classes=_class_list(classes), seed=seed,
                   device=device, batch_size=batch_size)
    preflight(cfg, stages=["augment"])
    render(run_stage("augment", None, out, cfg), out)
