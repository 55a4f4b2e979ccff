"""The stage registry and what derives from it: the commands and their options, the missing-input
messages, `curate status` (done / stale / not run) and `curate run` skipping current stages."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from curate.cli import main
from curate.stages import DASK, STAGES, producer, workspace_table
from curate.workspace import Workspace

from conftest import ROOT, encode, photo_like, write


@pytest.fixture
def config_file(tmp_path: Path) -> str:
    path = tmp_path / "c.toml"
    path.write_text('[engine]\nworkers = 1\n[run]\nstages = ["scan", "validate", "dedup", "rebalance", "shard"]\n')
    return str(path)


class Ran:
    """A CLI result with its output's whitespace collapsed (rich wraps lines at the terminal width)."""

    def __init__(self, result) -> None:
        self.exit_code = result.exit_code
        self.output = " ".join(result.output.split())


def invoke(runner, *args: object) -> Ran:
    return Ran(runner.invoke(main, [str(a) for a in args]))


def test_every_stage_has_a_command_with_config_and_its_engine_options():
    assert list(main.commands)[:len(STAGES.names())] == STAGES.names()  # `curate --help` lists them in order
    for spec in STAGES:
        params = {p.name for p in main.commands[spec.name].params}
        assert "config_path" in params, spec.name
        on_dask = all(o in spec.options for o in DASK)
        assert {"workers", "scheduler"} <= params if on_dask else "scheduler" not in params, spec.name
    on_dask = [s.name for s in STAGES if all(o in s.options for o in DASK)]
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert f"The stages that run their partitions on Dask — {', '.join(f'`{n}`' for n in on_dask)} —" in readme


def test_every_input_has_a_stage_that_writes_it():
    for spec in STAGES:
        for entry in (*spec.requires, *spec.uses):
            assert STAGES.names().index(producer(entry).name) <= STAGES.names().index(spec.name) or \
                producer(entry).name == spec.name, (spec.name, entry)


@pytest.mark.parametrize("stage, missing, command", [
    ("validate", "manifest/", "curate scan SRC -o {out}"),
    ("augment", "plan/", "curate rebalance {out}"),
    ("shard", "plan/", "curate rebalance {out}"),
])
def test_a_missing_input_names_the_command_that_makes_it(tree, tmp_path, runner, config_file, stage, missing,
                                                         command):
    out = tmp_path / "out"
    if stage != "validate":
        assert invoke(runner, "scan", tree, "-o", out, "--config", config_file).exit_code == 0
    result = invoke(runner, stage, out)
    expected = f"error: {out}/{missing} is missing: run `{command.format(out=out)}` first"
    assert result.exit_code == 2 and result.output.strip() == expected


def test_status_run_skips_current_stages_and_reruns_stale_ones(tree, tmp_path, runner, config_file):
    out = tmp_path / "out"
    status = invoke(runner, "status", out)
    total = len(STAGES.names())
    assert status.exit_code == 0 and f"0 of {total} stages done" in status.output

    first = invoke(runner, "run", tree, "-o", out, "--config", config_file)
    assert first.exit_code == 0, first.output
    status = invoke(runner, "status", out)
    assert f"5 of {total} stages done, 0 stale" in status.output and "manifest/ 8 rows" in status.output
    plan_parts = {p: p.stat().st_mtime_ns for p in (out / "plan").iterdir()}

    again = invoke(runner, "run", tree, "-o", out, "--config", config_file)
    assert again.exit_code == 0, again.output
    for name in ("validate", "dedup", "rebalance", "shard"):
        assert f"{name}: current, skipped" in again.output
    assert "decoded 0 (reused 8)" in again.output  # the scan always runs; nothing changed
    assert {p: p.stat().st_mtime_ns for p in (out / "plan").iterdir()} == plan_parts

    rebalance = invoke(runner, "rebalance", out, "--config", config_file, "--seed", "3")
    assert rebalance.exit_code == 0, rebalance.output
    status = invoke(runner, "status", out, "--config", config_file)
    assert "shard is stale: plan/ rewritten since" in status.output
    assert "rebalance.seed" in status.output  # ran with other settings than the config says

    rerun = invoke(runner, "run", tree, "-o", out, "--config", config_file)
    assert "validate: current, skipped" in rerun.output and "dedup: current, skipped" in rerun.output
    assert "rebalance: current" not in rerun.output and "shard: current" not in rerun.output  # seed 0 again
    assert "0 stale" in invoke(runner, "status", out).output

    write(Path(tree) / "train" / "b" / "new.jpg", encode(photo_like(99)))
    changed = invoke(runner, "run", tree, "-o", out, "--config", config_file)
    assert "decoded 1 (reused 8)" in changed.output and "skipped" not in changed.output

    forced = invoke(runner, "run", tree, "-o", out, "--config", config_file, "--force")
    assert forced.exit_code == 0 and "skipped" not in forced.output


def test_a_killed_stage_leaves_no_record(tree, tmp_path, runner, config_file, monkeypatch):
    out = tmp_path / "out"
    assert invoke(runner, "run", tree, "-o", out, "--config", config_file).exit_code == 0
    import curate.dedup.stage

    def killed(*_args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(curate.dedup.stage, "dedup", killed)
    assert invoke(runner, "dedup", out).exit_code == 130
    assert not (out / "runs" / "dedup.json").exists()
    assert "dedup │ not run" in invoke(runner, "status", out).output


def test_records_keep_what_each_stage_read_and_wrote(tree, tmp_path, runner, config_file):
    out = tmp_path / "out"
    assert invoke(runner, "run", tree, "-o", out, "--config", config_file).exit_code == 0
    ws = Workspace(str(out))
    rebalance = json.loads((out / "runs" / "rebalance.json").read_text())
    assert {entry for entry, version in rebalance["read"].items() if version} == {"manifest", "issues", "duplicates"}
    assert rebalance["read"]["embeddings"] is None  # absent: its appearing makes rebalance stale
    assert rebalance["read"]["manifest"] == ws.fingerprint("manifest")
    assert rebalance["wrote"] == {"plan": ws.fingerprint("plan")}
    scan = json.loads((out / "runs" / "scan.json").read_text())
    assert scan["read"] == {} and set(scan["wrote"]) == {"manifest"}  # its own previous manifest cannot stale it


class RecordingConfig:
    """A config that records which of its sections are read (any attribute that names one)."""

    def __init__(self, cfg) -> None:
        self._cfg, self.read = cfg, set()

    def __getattr__(self, name: str):
        self.read.add(name)
        return getattr(self._cfg, name)


@pytest.mark.slow
def test_each_stage_reads_only_the_config_sections_it_declares(tree, tmp_path, fodb):
    import dataclasses

    from curate.config import Config, from_dict
    from curate.pipeline import run_stage

    sections = {f.name for f in dataclasses.fields(Config)}
    cfg = from_dict({"engine": {"workers": 1}, "dedup": {"semantic": True}, "publish": {"name": "curate-test-reads"},
                     "rebalance": {"strategy": "floor", "floor": 3, "oversample": "augment", "prefer": "diverse"},
                     "augment": {"size": 16, "device": "cpu"}, "shard": {"shard_size": "4KB"}})
    for spec in STAGES:
        recording = RecordingConfig(cfg)
        run_stage(spec.name, str(tree), str(tmp_path / "out"), recording)
        read = recording.read & sections - {"engine", "run", "storage"}  # how it runs, not what it writes
        assert read <= set(spec.sections), (spec.name, read - set(spec.sections))


def test_a_setting_of_one_stage_leaves_the_others_current(tree, tmp_path, runner, config_file):
    out = tmp_path / "out"
    assert invoke(runner, "run", tree, "-o", out, "--config", config_file).exit_code == 0
    changed = tmp_path / "publish.toml"
    changed.write_text(Path(config_file).read_text() + "[publish]\nbatch_size = 7\n[shard]\nmin_shards = 2\n")
    status = invoke(runner, "status", out, "--config", changed)
    assert "shard is not current for the given config (`curate run` reruns it): it ran with other " \
           "shard.min_shards" in status.output
    assert "validate is not current" not in status.output and "publish.batch_size" not in status.output
    again = invoke(runner, "run", tree, "-o", out, "--config", changed)
    for name in ("validate", "dedup", "rebalance"):
        assert f"{name}: current, skipped" in again.output
    assert "shard: current" not in again.output


@pytest.mark.slow
def test_an_input_used_where_present_that_appears_later_makes_its_readers_stale(tree, tmp_path, runner,
                                                                                config_file):
    out = tmp_path / "out"
    assert invoke(runner, "run", tree, "-o", out, "--config", config_file).exit_code == 0
    assert invoke(runner, "embed", out, "--batch", "4").exit_code == 0
    status = invoke(runner, "status", out)
    for name in ("validate", "dedup", "rebalance"):
        assert f"{name} is stale: embeddings/ appeared since" in status.output, status.output
    rerun = invoke(runner, "run", tree, "-o", out, "--config", config_file)
    assert rerun.exit_code == 0 and "validate: current" not in rerun.output and "dedup: current" not in rerun.output
    for name in ("validate", "dedup", "rebalance"):  # now run with the embeddings (outlier, label_suspect, ...)
        read = json.loads((out / "runs" / f"{name}.json").read_text())["read"]
        assert read["embeddings"] == Workspace(str(out)).fingerprint("embeddings"), name
    assert "0 stale" in invoke(runner, "status", out).output


def test_architecture_md_shows_the_registry():
    """ARCHITECTURE.md's workspace table is the registry's, as `workspace_table` renders it."""
    assert workspace_table() in (ROOT / "ARCHITECTURE.md").read_text(), \
        "ARCHITECTURE.md's workspace table is not current: paste `curate.stages.workspace_table()` over it"