"""Report: facts and plots of sample_data/'s curation, the offline page, dataset.json, the
command, and the page rendered by headless Chromium."""
from __future__ import annotations

import base64
import html
import io
import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from curate.cli import CurateGroup, main
from curate.config import from_dict
from curate.pipeline import run_stage
from curate.report.facts import collect
from curate.report.page import render_page
from curate.report.plots import STAGE_COLORS
from curate.report.stage import make_plots, source_reader
from curate.report.stage import report as run_report
from curate.schema import ISSUES
from curate.view import visible
from curate.workspace import Workspace

from conftest import SAMPLE

PLOTS = ["class_counts", "imbalance", "issues", "duplicates", "duplicate_examples", "leaks", "class_weights",
         "embedding_map", "embedding_findings"]


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    out = tmp_path_factory.mktemp("reported")
    cfg = from_dict({})
    for stage in ("scan", "validate", "dedup", "rebalance", "shard"):
        run_stage(stage, str(SAMPLE), str(out), cfg)
    return out, run_report(None, str(out), cfg)


def test_page_and_plots_are_written(reported):
    out, summary = reported
    page = (out / "report" / "index.html").read_text()
    assert summary.page == str(out / "report" / "index.html")
    inlined = dict(re.findall(r'id="plot-(\w+)"[^>]*src="data:image/png;base64,([^"]+)"', page))
    assert list(inlined) == PLOTS and summary.plots == [f"report/{p}.png" for p in PLOTS]
    for name, data in inlined.items():
        png = (out / "report" / f"{name}.png").read_bytes()
        assert base64.b64decode(data) == png
        with Image.open(io.BytesIO(png)) as img:
            assert img.format == "PNG" and img.width >= 400 and np.asarray(img.convert("L")).std() > 5, name
    assert not re.search(r'(src|href)="(https?:)?//', page)  # opens offline: nothing to fetch


def test_facts_match_the_ground_truth(reported, expected):
    out, summary = reported
    facts = json.loads((out / "dataset.json").read_text())["report"]
    assert facts["counts"]["before"] == expected["counts"]
    assert facts["counts"]["after"] == expected["plan_counts_default"]
    assert facts["imbalance"]["before"]["train"] == 27 / 2 and summary.imbalance_before == 33 / 3
    assert facts["classes"] == expected["classes"] and facts["missing"] == []
    issues = Workspace(str(out)).read("issues", ISSUES).to_pandas()
    per_check = {r["check"]: r["count"] for r in facts["issues"]}
    assert per_check == issues.groupby("check").size().to_dict()
    assert {r["check"] for r in facts["issues"] if r["severity"] == "error"} == {"zero_byte", "truncated", "not_image"}
    found = [d for d in expected["duplicates"] if not d.get("needs_dihedral")]
    dup = facts["duplicates"]
    assert sum(k["clusters"] for k in dup["by_kind"].values()) == len(found) == summary.clusters
    assert sum(k["images"] for k in dup["by_kind"].values()) == sum(len(d["paths"]) for d in found)
    assert dup["label_conflicts"] == 1 and dup["leaks"]["by_splits"] == {"test/train": 1}
    leak = next(d for d in found if d["leak"])
    assert {m["path"] for m in dup["leaks"]["listed"][0]["members"]} == set(leak["paths"])
    assert facts["class_weights"] == json.loads((out / "dataset.json").read_text())["class_weights"]
    assert facts["excluded"] == {"duplicate": 7, "error": 3}


def test_plots_are_deterministic(reported):
    out, _summary = reported
    ws = Workspace(str(out))
    again = make_plots(collect(ws, from_dict({})), source_reader(str(SAMPLE)))
    assert all(again[name] == (out / "report" / f"{name}.png").read_bytes() for name in PLOTS)


def test_names_are_drawn_and_shown_literally(reported):
    """A class name is text: `$...$` is no math text for the plots (an unknown command made them
    raise), markup is escaped and hidden characters are shown as escapes on the page."""
    out, _summary = reported
    facts = json.loads((out / "dataset.json").read_text())["report"]
    names = {c: f"{c} x$\\undefinedcmd{{$y <b>\u202e\x1b[31m" for c in facts["classes"]}
    text = json.dumps(facts)
    for old, new in names.items():  # every label, as a key or a value
        text = text.replace(json.dumps(old), json.dumps(new))
    hostile = json.loads(text)
    assert hostile["classes"] == sorted(names.values())
    page = render_page(hostile, make_plots(hostile, source_reader(str(SAMPLE))), str(out), str(SAMPLE))
    assert all(html.escape(visible(name)) in page for name in names.values())
    assert "<b>" not in page and not {"\u202e", "\x1b"} & set(page)


def test_report_before_later_stages_ran(reported, tmp_path):
    out, _summary = reported
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    for name in ("issues", "duplicates", "plan", "shards", "report"):
        shutil.rmtree(copy / name)
    for name in ("index.parquet", "dataset.json", "runs/rebalance.json"):
        (copy / name).unlink()
    summary = run_report(None, str(copy), from_dict({}))
    assert summary.missing == ["issues", "duplicates", "plan"] and summary.after == 0 and summary.before == 69
    assert len(list((copy / "report").glob("*.png"))) == len(PLOTS) and not (copy / "dataset.json").exists()
    assert "not run yet: issues, duplicates, plan" in (copy / "report" / "index.html").read_text()


def test_cli_report_and_one_line_errors(reported, tmp_path):
    out, _summary = reported
    cli = CurateGroup(commands={"report": main.commands["report"]})
    result = CliRunner().invoke(cli, ["report", str(out)])
    assert result.exit_code == 0, result.output
    assert "report:" in result.output and "index.html" in result.output
    assert json.loads((out / "runs" / "report.json").read_text())["summary"]["classes"] == 6
    missing = CliRunner().invoke(cli, ["report", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and missing.output.count("\n") == 1 and missing.output.startswith("error: ")


def chromium() -> str:
    """The Chromium binary; skipped where it is missing, except in CI, where it must be there."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI: .ci/setup-system.sh installs it")
        pytest.skip("chromium is not installed (apt-get install chromium, or run .ci/setup-system.sh)")
    return exe


def screenshot(exe: str, page: Path, shot: Path, profile: Path) -> None:
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri()]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        proc.wait(timeout=180)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # its helper processes too
        except ProcessLookupError:
            pass
        proc.wait()


@pytest.mark.slow
def test_page_renders_in_headless_chromium(reported, tmp_path):
    exe = chromium()
    out, _summary = reported
    shot = tmp_path / "shot.png"
    screenshot(exe, out / "report" / "index.html", shot, tmp_path / "profile")
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert pixels.shape == (2000, 1280, 3)
    assert pixels.std() > 20 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 500  # not blank
    after = np.array([int(STAGE_COLORS["after"][i:i + 2], 16) for i in (1, 3, 5)])
    bars = (np.abs(pixels - after).max(axis=2) <= 8).sum()
    assert bars > 2000, f"the class-count bars are not on screen ({bars} pixels of their colour)"
