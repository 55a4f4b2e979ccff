"""SRC is only ever read: OUT (and quarantine's --to) never overlaps it, and the workspace never
replaces or deletes a folder in an OUT that curate did not make its own."""
from __future__ import annotations

import json
import os

import pytest

from curate.cli import main
from curate.errors import CurateError
from curate.source import refuse_overlap
from curate.workspace import WORKSPACE_MARK, Workspace

from conftest import encode, photo_like, tree_digest, write


@pytest.fixture
def planned(tmp_path):
    """A class folder named like a workspace entry (`plan`), next to an ordinary one."""
    src = tmp_path / "photos"
    for cls in ("plan", "cat"):
        for i in range(3):
            write(src / cls / f"{i}.jpg", encode(photo_like(hash(cls) % 1000 + i)))
    return src


def _one_line_refusal(result, *words):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output
    for word in words:
        assert word in result.output


@pytest.mark.parametrize("where", ["same", "inside", "contains", "link"])
def test_an_out_overlapping_src_is_refused_before_any_work(runner, planned, tmp_path, where):
    out = {"same": planned, "inside": planned / "out", "contains": tmp_path, "link": tmp_path / "alias"}[where]
    if where == "link":
        os.symlink(planned, out)
    before = tree_digest(tmp_path)
    for args in (["run", str(planned), "-o", str(out)], ["scan", str(planned), "-o", str(out)]):
        _one_line_refusal(runner.invoke(main, args), "never writes into its source")
    assert tree_digest(tmp_path) == before  # not even a lock or an empty OUT


@pytest.mark.parametrize("src, out, overlaps", [
    ("s3://bucket/photos", "s3://bucket/photos", True),
    ("s3://bucket/photos", "s3a://bucket/photos/curated", True),
    ("s3://bucket/photos/", "s3://bucket", True),
    ("gs://bucket/photos", "gcs://bucket/photos/out", True),
    ("s3://bucket/photos", "s3://bucket/photos-curated", False),
    ("s3://bucket/photos", "s3://other/photos", False),
    ("s3://bucket/photos", "gs://bucket/photos", False),
    ("s3://bucket/photos", "/tmp/bucket/photos", False),
])
def test_object_store_urls_overlap_by_bucket_and_prefix(src, out, overlaps):
    if overlaps:
        with pytest.raises(CurateError, match="never writes into its source"):
            refuse_overlap(src, out)
    else:
        refuse_overlap(src, out)


def test_an_object_store_out_inside_src_is_refused_by_the_cli_before_any_request(runner):
    # No server is running: the refusal comes before curate talks to any store.
    refused = runner.invoke(main, ["run", "s3://bucket/photos", "-o", "s3a://bucket/photos/out"])
    _one_line_refusal(refused, "lies inside")


def test_quarantine_to_inside_src_is_refused(runner, planned, tmp_path):
    out = tmp_path / "out"
    for args in (["scan", str(planned), "-o", str(out)], ["validate", str(out)]):
        assert runner.invoke(main, args).exit_code == 0
    before = tree_digest(planned)
    _one_line_refusal(runner.invoke(main, ["quarantine", str(out), "--to", str(planned / "q"), "--copy"]),
                      "--to", "lies inside")
    assert tree_digest(planned) == before


def test_an_out_holding_someone_elses_files_is_not_claimed(runner, planned, tmp_path):
    mine = tmp_path / "mine"
    write(mine / "plan" / "notes.txt", b"my own plan\n")
    before = tree_digest(mine)
    _one_line_refusal(runner.invoke(main, ["run", str(planned), "-o", str(mine)]), "did not write", "'plan'")
    assert tree_digest(mine) == before and not (mine / ".lock").exists()


def test_the_workspace_replaces_and_removes_only_in_a_claimed_out(planned, tmp_path):
    ws = Workspace(str(planned))
    with pytest.raises(CurateError, match="not a curate workspace"):
        ws.remove("plan")
    write(planned / "staging" / "x.parquet", b"")
    with pytest.raises(CurateError, match="not a curate workspace"):
        ws.swap_in("staging", "plan")
    assert sorted(p.name for p in (planned / "plan").iterdir()) == ["0.jpg", "1.jpg", "2.jpg"]


def test_a_new_out_is_claimed_and_an_earlier_curates_out_is_adopted(runner, planned, tmp_path):
    out = tmp_path / "out"
    assert runner.invoke(main, ["scan", str(planned), "-o", str(out)]).exit_code == 0
    assert (out / WORKSPACE_MARK).is_file()
    (out / WORKSPACE_MARK).unlink()  # as an OUT that a curate without the marker wrote
    assert runner.invoke(main, ["scan", str(planned), "-o", str(out)]).exit_code == 0
    assert runner.invoke(main, ["rebalance", str(out)]).exit_code == 0
    assert (out / WORKSPACE_MARK).is_file() and (out / "plan").is_dir()


# -- shards, augment and publish hold only what the scan saw ------------------------------------

def _scanned_and_planned(src, out):
    from curate.config import from_dict
    from curate.pipeline import run_stage

    cfg = from_dict({"engine": {"workers": 1}, "shard": {"shard_size": "1KB"}})
    for stage in ("scan", "rebalance"):
        run_stage(stage, str(src), str(out), cfg)
    return cfg


def test_shards_leave_out_a_file_changed_since_the_scan_or_now_linked_out_of_src(runner, planned, tmp_path):
    import pyarrow.parquet as pq

    from curate.pipeline import run_stage

    out = tmp_path / "out"
    cfg = _scanned_and_planned(planned, out)
    changed, linked = planned / "cat" / "0.jpg", planned / "cat" / "1.jpg"
    original = changed.read_bytes()
    changed.write_bytes(encode(photo_like(999)))  # rewritten after the scan
    outside = write(tmp_path / "elsewhere" / "1.jpg", linked.read_bytes())  # the very bytes the scan saw ...
    linked.unlink()
    linked.symlink_to(outside)  # ... but now read from outside SRC
    summary = run_stage("shard", None, str(out), cfg)
    assert summary.left_out == {"changed_since_scan": 1, "outside_source": 1}
    assert {"cat/0.jpg (changed_since_scan)", "cat/1.jpg (outside_source)"} == set(summary.left_out_examples)
    listed = json.loads(pq.read_schema(out / "index.parquet").metadata[b"shards"])  # counts only: a footer stays small
    assert all("left_out" not in st for st in listed)
    assert sum(n for st in listed for n in st.get("left_out_by_reason", {}).values()) == 2
    sharded = {p for f in out.glob("shards/*/*.parquet") for p in pq.read_table(f)["source_path"].to_pylist()}
    assert sharded == {f"{c}/{i}.jpg" for c in ("cat", "plan") for i in range(3)} - {"cat/0.jpg", "cat/1.jpg"}
    shown = runner.invoke(main, ["verify", str(out)])
    assert shown.exit_code == 1 and "LEFT OUT cat/0.jpg: changed_since_scan" in shown.output
    assert "LEFT OUT cat/1.jpg: outside_source" in shown.output and "Traceback" not in shown.output
    changed.write_bytes(original)  # put back: the next shard run takes it again
    linked.unlink()
    linked.write_bytes(outside.read_bytes())
    assert run_stage("shard", None, str(out), cfg).left_out == {}
    assert runner.invoke(main, ["verify", str(out)]).exit_code == 0


def test_follow_symlinks_keeps_targets_inside_src(planned, tmp_path):
    from curate.config import from_dict
    from curate.pipeline import run_stage
    from curate.schema import MANIFEST

    outside = tmp_path / "elsewhere"
    write(outside / "secret.jpg", encode(photo_like(500)))
    (planned / "cat" / "out.jpg").symlink_to(outside / "secret.jpg")
    (planned / "cat" / "dir").symlink_to(outside)
    (planned / "cat" / "inside.jpg").symlink_to(planned / "plan" / "0.jpg")
    out = tmp_path / "out"
    run_stage("scan", str(planned), str(out), from_dict({"scan": {"follow_symlinks": True}}))
    rows = {r["path"]: r for r in Workspace(str(out)).read("manifest", MANIFEST).to_pylist()}
    assert rows["cat/out.jpg"]["error_code"] == rows["cat/dir"]["error_code"] == "outside_source"
    assert not any(p.startswith("cat/dir/") for p in rows)
    assert rows["cat/inside.jpg"]["status"] == "ok"


def test_augment_uses_no_file_changed_since_the_scan(planned, tmp_path):
    from curate.config import from_dict
    from curate.pipeline import run_stage

    out = tmp_path / "out"
    _scanned_and_planned(planned, out)
    (planned / "cat" / "2.jpg").write_bytes(encode(photo_like(777)))
    cfg = from_dict({"engine": {"workers": 1}, "augment": {"copies": 1, "size": 16, "device": "cpu"}})
    summary = run_stage("augment", None, str(out), cfg)
    assert list(summary.failed) == ["cat/2.jpg"] and "changed since the scan" in summary.failed["cat/2.jpg"]
    assert summary.made == 5


def test_publish_shows_no_file_that_now_leads_out_of_src(fodb, planned, tmp_path):
    from curate.config import from_dict
    from curate.pipeline import run_stage
    from curate.publish.backend import fiftyone

    fo = fiftyone()  # the way curate imports it: after Dask's importlib_metadata backport too

    out = tmp_path / "out"
    _scanned_and_planned(planned, out)
    target = planned / "plan" / "2.jpg"
    outside = write(tmp_path / "elsewhere" / "2.jpg", target.read_bytes())
    target.unlink()
    target.symlink_to(outside)
    summary = run_stage("publish", None, str(out), from_dict({"publish": {"name": "curate-test-outside"}}))
    paths = fo.load_dataset("curate-test-outside").values("filepath")
    assert summary.samples == 5 and str(target) not in paths and len(paths) == 5
