"""The whole pipeline in stage order; `curate run` and the flows call this."""
from __future__ import annotations

import logging
from typing import Any, Callable

from curate.config import Config
from curate.scan import scan

log = logging.getLogger(__name__)

# (stage name, function(src, out, cfg) -> summary), in the order they run.
STAGES: list[tuple[str, Callable[[str, str, Config], Any]]] = [
    ("scan", scan),
]


def run_pipeline(src: str, out: str, cfg: Config,
                 on_stage: Callable[[str, Any], None] | None = None) -> dict[str, Any]:
    """Run every stage on SRC into OUT; `on_stage(name, summary)` is called after each."""
    summaries = {}
    for name, stage in STAGES:
        log.info("stage %s", name)
        summaries[name] = stage(src, out, cfg)
        if on_stage:
            on_stage(name, summaries[name])
    return summaries
