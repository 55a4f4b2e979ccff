"""`curate augment OUT`: parse, run the augment stage, record it, report."""
from __future__ import annotations

import click

from curate import lineage
from curate.config import load_config, override
from curate.workspace import Workspace


def _class_list(text: str | None) -> list[str] | None:
    return None if text is None else [c.strip() for c in text.split(",") if c.strip()]


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
def augment(out: str, copies: int | None, classes: str | None, seed: int | None, device: str | None,
            batch_size: int | None, config_path: str | None) -> None:
    """Write augmented variants (Kornia) of the plan's images into OUT/augmented/<split>/ and the index."""
    from curate.augment.stage import augment as run_augment
    from curate.augment.stage import render, resolve

    cfg = override(load_config(config_path), "augment", copies=copies, classes=_class_list(classes), seed=seed,
                   device=device, batch_size=batch_size)
    resolve(cfg)
    ws = Workspace(out)
    src = lineage.source_of(ws)
    summary = run_augment(src, out, cfg)
    lineage.record(ws, "augment", src, cfg, summary)
    render(summary, out)
