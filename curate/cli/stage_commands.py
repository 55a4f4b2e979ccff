"""One command per stage, made from its `StageSpec`: every stage command takes `--config`, its
own options (which override config keys) and, for the stages whose spec lists them,
`--workers`/`--scheduler`. The command checks the settings, runs the stage through
`curate.pipeline.run_stage` and shows the stage's view."""
from __future__ import annotations

import importlib
import sys
from typing import Any, Callable

import click

from curate import config as config_mod
from curate.stages import Option, StageSpec


def config_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
                        help="TOML config (see `curate init`); embedded defaults when omitted")(fn)


def _param_name(option: Option) -> str:
    return option.flags.split("/")[0].lstrip("-").replace("-", "_")


def click_option(option: Option) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The click option of `option`: a keyed one takes its help, type, allowed values and default
    from its config field (`curate.config.setting`) and, with `names`, its allowed values from that
    registry; what `option` itself says overrides them."""
    help, kind, choices = option.help, option.type, option.choices
    if option.key is not None:
        field = config_mod.setting(option.key)
        help = f"{help or field.help} (config {field.key}; default {field.default!r})"
        kind = kind or (None if "/" in option.flags else field.type)
        choices = choices or field.choices
    if option.names:  # a light registry module (curate.pipeline would bring pyarrow to every command)
        module, _, name = option.names.partition(":")
        choices = tuple(getattr(importlib.import_module(module), name).names())
    param: Any = click.Choice(choices) if choices else kind
    return click.option(option.flags, _param_name(option), type=param, default=None, help=help, metavar=option.metavar)


def apply_options(cfg: config_mod.Config, options: tuple[Option, ...], values: dict[str, Any]) -> config_mod.Config:
    """`cfg` with the given (not None) option values set on their config keys, validated like the file."""
    by_section: dict[str, dict[str, Any]] = {}
    for option in options:
        value = values.get(_param_name(option))
        if option.key is None or value is None:
            continue
        section, key = option.key.split(".")
        by_section.setdefault(section, {})[key] = option.convert(value) if option.convert else value
    for section, given in by_section.items():
        cfg = config_mod.override(cfg, section, **given)
    return cfg


def _listing_option(spec: StageSpec) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    assert spec.listing is not None
    lines_ref = spec.listing.lines

    def show(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if not value or ctx.resilient_parsing:
            return
        from curate.pipeline import load

        click.echo("\n".join(load(lines_ref)()))
        ctx.exit()

    return click.option(spec.listing.flag, is_flag=True, is_eager=True, expose_value=False, callback=show,
                        help=spec.listing.help)


def stage_command(spec: StageSpec) -> click.Command:
    """The `curate <stage>` command of `spec`."""

    def command(config_path: str | None, out: str, src: str | None = None, **values: Any) -> None:
        from curate.console import show
        from curate.pipeline import load, preflight, run_stage

        cfg = apply_options(config_mod.load_config(config_path), spec.options, values)
        preflight(cfg, src, stages=[spec])
        summary = run_stage(spec.name, src, out, cfg)
        show(summary.view(out))
        if spec.verdict:
            keyless = {_param_name(o): values.get(_param_name(o)) for o in spec.options if o.key is None}
            failure = load(spec.verdict)(summary, **keyless)
            if failure:
                click.echo(failure, err=True)
                sys.exit(1)

    decorated: Callable[..., Any] = command
    for option in reversed(spec.options):
        decorated = click_option(option)(decorated)
    decorated = config_option(decorated)
    if spec.listing:
        decorated = _listing_option(spec)(decorated)
    if spec.takes_source:
        decorated = click.option("-o", "--out", required=True, help="output folder (local path or fsspec URL)")(
            decorated)
        decorated = click.argument("src")(decorated)
    else:
        decorated = click.argument("out")(decorated)
    return click.command(spec.name, help=spec.help)(decorated)
