"""The full pipeline as a Prefect flow: scan -> validate -> dedup -> rebalance -> shard -> … .

    python -m flows.curate_pipeline SRC -o OUT [--config FILE] [--scheduler tcp://…]
"""
from __future__ import annotations

import dataclasses
import sys
from typing import Any

from prefect import flow

from curate.engine import shared_cluster
from curate.pipeline import preflight, selected_stages
from flows.common import StageResult, main, publish_artifact, resolve_run, stage_task


@flow(name="curate-pipeline")
def curate_pipeline(src: str | None = None, out: str | None = None, config: str | None = None,
                    scheduler: str | None = None) -> dict[str, Any]:
    """Every stage in order on one shared Dask cluster; publishes a markdown summary artifact.
    Returns each stage's summary (plain data) by stage name."""
    src, out, cfg = resolve_run(src, out, config, scheduler)
    preflight(cfg, src, out=out)
    results: dict[str, StageResult] = {}
    with shared_cluster(cfg.engine) as engine:
        cfg = dataclasses.replace(cfg, engine=engine)
        for spec in selected_stages(cfg):
            results[spec.name] = stage_task(spec.name, src, out, cfg.to_record())
    publish_artifact(out, results, key="curate-pipeline-summary")
    return {name: result.summary for name, result in results.items()}


if __name__ == "__main__":
    sys.exit(main(curate_pipeline, __doc__.splitlines()[0]))
