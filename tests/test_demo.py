"""The first hour: `make demo`'s run (sample_data/curate.toml) rebalances with a val split and
augmented variants, publishes the `augmented` view, reports the imbalance going down, and ends
by saying what to open."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from curate.config import load_config
from curate.pipeline import selected_stages
from curate.schema import PLAN
from curate.workspace import Workspace

from conftest import ROOT

pytestmark = pytest.mark.slow


def test_demo_shows_the_whole_tool(tmp_path, fodb):
    out = tmp_path / "demo"
    curate = Path(sys.executable).parent / "curate"
    run = subprocess.run([str(curate), "run", "sample_data", "-o", str(out), "--config", "sample_data/curate.toml"],
                         cwd=ROOT, env={**os.environ, "FIFTYONE_DATABASE_URI": fodb}, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    stages = selected_stages(load_config(ROOT / "sample_data" / "curate.toml"))
    starts = [line for line in lines if line.startswith("[")]
    assert [s.split("]")[0] for s in starts] == [f"[{i}/{len(stages)}" for i in range(1, len(stages) + 1)]
    dataset = json.loads((out / "runs" / "publish.json").read_text())["summary"]["dataset"]
    assert lines[-2:] == [f"open it: curate app --name {dataset}",
                          f"report: {out}/report/index.html (+ 9 PNG plots beside it)"]

    plan = Workspace(str(out)).read("plan", PLAN).to_pandas()
    kept = plan[plan["keep"]]
    assert set(kept["split"]) == {"train", "val", "test"}
    assert kept["augment_copies"].sum() > 0
    report = json.loads((out / "dataset.json").read_text())["report"]
    before, after = report["imbalance"]["before"]["train"], report["imbalance"]["after"]["train"]
    assert after < before / 2, (before, after)
    views = json.loads((out / "runs" / "publish.json").read_text())["summary"]["views"]
    assert views["augmented"] == kept["augment_copies"].sum() > 0 and views["val"] > 0
