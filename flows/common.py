"""What both flows share: the stage task, the run summary artifact and the command line."""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable

from prefect import task
from prefect.artifacts import create_markdown_artifact

from curate import lineage, storage
from curate.config import Config, from_dict, load_config, override
from curate.errors import CurateError
from curate.view import View
from flows.server import prefect_api


@dataclass
class StageResult:
    """What a stage task hands back to its flow: the summary as plain data, and its view."""

    summary: dict[str, Any]
    view: View


@task(name="curate-stage", task_run_name="{name}")
def stage_task(name: str, src: str | None, out: str, config: dict[str, Any]) -> StageResult:
    """Run one curate stage (partitions retried on the flow's Dask cluster)."""
    from curate.pipeline import run_stage

    summary = run_stage(name, src, out, from_dict(config))
    return StageResult(lineage.plain(summary), summary.view(out))


def resolve_run(src: str | None, out: str | None, config: str | None, scheduler: str | None) -> tuple[str, str, Config]:
    """SRC, OUT and the validated config of a flow run (SRC/OUT default to the config's [run])."""
    cfg = override(load_config(config), "engine", scheduler=scheduler)
    src, out = src or cfg.run.src, out or cfg.run.out
    if not src or not out:
        raise CurateError("give SRC and OUT, or set [run] src and out in the config")
    return src, out, cfg


def summary_markdown(out: str, results: dict[str, StageResult]) -> str:
    """The flow run's artifact: every stage's view, and a link to the report."""
    report = os.path.join(out, "report", "index.html")
    return "\n".join([f"# curate run: `{out}`", "", *(r.view.markdown() for r in results.values()),
                      f"Report: [{report}](file://{os.path.abspath(report)})"])


def publish_artifact(out: str, results: dict[str, StageResult], key: str) -> None:
    """The run summary as a Markdown artifact on the Prefect server, URLs without their credentials."""
    create_markdown_artifact(key=key, markdown=storage.safe_url(summary_markdown(out, results)),
                             description="curate run summary")


def main(flow_fn: Callable[..., Any], description: str) -> int:
    """`python -m flows.<flow> [SRC] [-o OUT] [--config FILE] [--scheduler ADDRESS]`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("src", nargs="?", help="source folder or fsspec URL (default: [run] src of the config)")
    parser.add_argument("-o", "--out", help="output folder (default: [run] out of the config)")
    parser.add_argument("--config", help="TOML config (curate init)")
    parser.add_argument("--scheduler", help="address of an existing Dask scheduler")
    args = parser.parse_args()
    storage.scrub_log_records()
    try:
        for url, what in ((args.src, "SRC"), (args.out, "OUT")):
            storage.refuse_credentials(url or "", what)
        with prefect_api() as ready:
            ready()
            flow_fn(args.src, args.out, args.config, args.scheduler)
    except CurateError as exc:
        print(storage.safe_url(f"error: {exc}"), file=sys.stderr)
        return exc.exit_code
    return 0
