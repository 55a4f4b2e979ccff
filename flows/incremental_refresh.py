"""Incremental refresh, meant for a schedule: rescan, and when files were added, changed or
removed, update issues, duplicates (new hashes against the existing index), the plan, the
shards that changed, and everything after; otherwise do nothing and say so.

    python -m flows.incremental_refresh SRC -o OUT [--config FILE]
"""
from __future__ import annotations

import dataclasses
import sys
from typing import Any

from prefect import flow, get_run_logger

from curate.engine import shared_cluster
from curate.pipeline import preflight, selected_stages
from flows.common import StageResult, main, publish_artifact, resolve_run, stage_task


@flow(name="curate-incremental-refresh")
def incremental_refresh(src: str | None = None, out: str | None = None, config: str | None = None,
                        scheduler: str | None = None) -> dict[str, Any]:
    """Rescan SRC into OUT; rerun the later stages only if something changed."""
    src, out, cfg = resolve_run(src, out, config, scheduler)
    preflight(cfg, src)
    logger = get_run_logger()
    results: dict[str, StageResult] = {}
    with shared_cluster(cfg.engine) as engine:
        cfg = dataclasses.replace(cfg, engine=engine)
        results["scan"] = scan = stage_task("scan", src, out, cfg.to_record())
        changed = scan.summary["decoded"] + scan.summary["newly_removed"]
        if changed == 0:
            logger.info("nothing changed in %s since the last scan: nothing to do", src)
            return {"scan": scan.summary, "changed": 0}
        logger.info("%d new or changed files, %d removed: updating", scan.summary["decoded"],
                    scan.summary["newly_removed"])
        for spec in selected_stages(cfg):
            if spec.name != "scan":
                results[spec.name] = stage_task(spec.name, src, out, cfg.to_record())
    publish_artifact(out, results, key="curate-incremental-refresh-summary")
    return {**{name: result.summary for name, result in results.items()}, "changed": changed}

if __name__ == "__main__":
    sys.exit(main(incremental_refresh, __doc__.splitlines()[0]))
