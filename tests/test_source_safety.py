"""SRC is only ever read: OUT (and quarantine's --to) never overlaps it, and the workspace never
replaces or deletes a folder in an OUT that curate did not make its own."""
from __future__ import annotations

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
