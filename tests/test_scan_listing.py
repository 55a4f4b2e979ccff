"""The scan's listing and plan out of the driver (issue 24): SRC listed in rounds by listing tasks on
Dask workers (a local tree; an S3 prefix with more keys than one page, split into key ranges), the
plan made per group of path keys, and an incremental rescan that gives the manifest a full scan
gives, also when the number of groups changes. The budgets and group size are lowered so that a
tree of tens of files takes several rounds and groups (they are the driver's: tasks carry them)."""
from __future__ import annotations

import glob

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate import listing
from curate.config import from_dict
from curate.listing import split_range
from curate.scan import listed, plan
from curate.scan.listed import LISTING, list_source_into
from curate.scan.stage import scan
from curate.schema import MANIFEST
from curate.workspace import Workspace

from conftest import encode, photo_like, write


def small_tree(root, n_classes=3, per_class=7, flat=12):
    """Classes in nested folders, and one flat folder of `flat` files."""
    seed = 0
    for c in range(n_classes):
        for i in range(per_class):
            seed += 1
            write(root / "train" / f"c{c}" / f"sub{i % 2}" / f"{i}.jpg", encode(photo_like(seed, (24, 16))))
    for i in range(flat):
        seed += 1
        write(root / "flat" / f"img_{i:04d}.jpg", encode(photo_like(seed, (24, 16))))
    write(root / "train" / "c0" / "notes.jpg", b"not an image\n")
    return root


@pytest.fixture
def small_budgets(monkeypatch):
    monkeypatch.setattr(listed, "FIRST_BUDGET", 3)
    monkeypatch.setattr(listed, "TASK_BUDGET", 4)
    monkeypatch.setattr(listed, "CHUNK_ROWS", 3)
    monkeypatch.setattr(plan, "GROUP_ROWS", 8)


def manifest(out):
    return Workspace(str(out)).read("manifest", MANIFEST)


def listed_paths(out) -> list[str]:
    return sorted(p for f in glob.glob(f"{out}/{LISTING}/part-*.parquet") for p in pq.read_table(f)["path"].to_pylist())


def test_listing_runs_in_rounds_on_workers_and_the_manifest_is_the_one_process_one(tmp_path, small_budgets):
    src = small_tree(tmp_path / "src")
    cfg = from_dict({"engine": {"workers": 2, "partition_size": 3}})
    out = tmp_path / "out"
    Workspace(str(out)).claim()
    listing = list_source_into(str(src), str(out), cfg)
    files = sorted(p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file())
    assert listing.rounds >= 3 and listing.parts > 3 and listing.files == len(files)
    assert listed_paths(out) == files  # every file once, in parts

    summary = scan(str(src), str(out), cfg)
    assert summary.files == len(files) and not (out / "scan.work").exists()
    layout = Workspace(str(out)).read_json("manifest/_groups.json")
    assert layout["bits"] == 3 and sum(layout["parts"]) == len(list((out / "manifest").glob("part-*.parquet")))
    one = tmp_path / "one"
    scan(str(src), str(one), from_dict({"engine": {"workers": 1, "partition_size": 1000}}))
    assert manifest(out).sort_by("path").equals(manifest(one).sort_by("path"))  # same rows, other layout


def test_an_incremental_rescan_gives_the_full_scan_manifest_also_when_the_groups_change(tmp_path, small_budgets):
    src = small_tree(tmp_path / "src")
    cfg = from_dict({"engine": {"workers": 1, "partition_size": 4}})
    out = tmp_path / "out"
    scan(str(src), str(out), cfg)
    assert Workspace(str(out)).read_json("manifest/_groups.json")["bits"] == 3
    (src / "train" / "c1" / "sub0" / "0.jpg").unlink()
    write(src / "train" / "c2" / "sub1" / "1.jpg", encode(photo_like(500, (24, 16))))  # changed
    for i in range(40):  # crosses into more groups
        write(src / "new" / f"n{i}.jpg", encode(photo_like(600 + i, (24, 16))))
    again = scan(str(src), str(out), cfg)
    assert Workspace(str(out)).read_json("manifest/_groups.json")["bits"] == 4
    assert again.decoded == 41 and again.newly_removed == 1
    full = tmp_path / "full"
    scan(str(src), str(full), cfg)
    rescanned, fresh = manifest(out), manifest(full)
    status = rescanned["status"].to_pylist()
    assert [p for p, s in zip(rescanned["path"].to_pylist(), status) if s == "removed"] == ["train/c1/sub0/0.jpg"]
    kept = rescanned.filter(pa.array([s != "removed" for s in status]))
    assert kept.equals(fresh)  # the same rows in the same order as a full scan
    unchanged = scan(str(src), str(out), cfg)
    assert unchanged.decoded == 0 and unchanged.reused == kept.num_rows


def test_split_range_covers_the_rest_in_order():
    ranges = split_range("img_000000.jpg", "img_000999.jpg", None)
    assert ranges[0][0] == "img_000999.jpg\0" and ranges[-1][1] is None
    assert all(a < b for a, b in ranges if b is not None)
    assert all(b == a2 for (_, b), (a2, _) in zip(ranges, ranges[1:]))  # contiguous
    assert any(a.startswith("img_001") for a, _ in ranges)  # split where the names vary


@pytest.mark.slow
def test_a_flat_prefix_of_more_keys_than_one_page_is_listed_in_ranges_on_workers(s3, tmp_path, monkeypatch):
    monkeypatch.setattr(listed, "FIRST_BUDGET", 200)
    monkeypatch.setattr(listed, "TASK_BUDGET", 300)
    bucket = s3.bucket()
    keys = [f"photos/flat/img_{i:05d}.jpg" for i in range(2300)] + ["photos/top.jpg", "photos/sub/a/b.jpg"]
    s3.fs().pipe({f"{bucket}/{k}": b"x" for k in keys})
    out = tmp_path / "out"
    Workspace(str(out)).claim()
    cfg = from_dict({"engine": {"workers": 2}})
    listing = list_source_into(f"s3://{bucket}/photos", str(out), cfg)
    assert listing.rounds >= 2 and listing.parts >= 3
    assert listed_paths(out) == sorted(k.removeprefix("photos/") for k in keys)  # each key exactly once


def test_a_labels_file_is_split_by_group_a_chunk_at_a_time(tmp_path, small_budgets, monkeypatch, caplog):
    monkeypatch.setattr(listing, "LABEL_CHUNK_ROWS", 5)
    src = small_tree(tmp_path / "src")
    given = {f"flat/img_{i:04d}.jpg": (f"x{i % 3}", ("train", "val", "test")[i % 3]) for i in range(12)}
    given |= {"gone/a.jpg": ("x0", None), "gone/b.jpg": ("x1", None)}  # not in SRC
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label,split\n" + "".join(f"./{p},{lab},{s or ''}\n" for p, (lab, s) in given.items()))
    out = tmp_path / "out"
    scan(str(src), str(out), from_dict({"engine": {"workers": 2}, "scan": {"labels": str(labels)}}))
    assert Workspace(str(out)).read_json("manifest/_groups.json")["bits"] == 3  # 8 groups, 3 chunks of labels
    rows = manifest(out)
    found = {p: (lab, s) for p, lab, s in zip(*(rows[c].to_pylist() for c in ("path", "label", "split")))}
    assert {p: v for p, v in found.items() if p.startswith("flat/")} == {p: v for p, v in given.items()
                                                                          if p.startswith("flat/")}
    assert found["train/c0/sub0/0.jpg"] == (None, None)  # not in the labels file: no label, layout ignored
    assert "2 paths in" in caplog.text and "are not in the source" in caplog.text
