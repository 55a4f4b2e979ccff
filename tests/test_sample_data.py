"""The golden run: every planted case in sample_data/ gets the expected manifest row and checks."""
from __future__ import annotations

import pytest

from curate.config import Config
from curate.pipeline import run_stage
from curate.schema import ISSUES, MANIFEST
from curate.workspace import Workspace

from conftest import SAMPLE


@pytest.fixture(scope="module")
def golden(tmp_path_factory) -> Workspace:
    out = tmp_path_factory.mktemp("golden")
    cfg = Config()
    for stage in ("scan", "validate"):
        run_stage(stage, str(SAMPLE), str(out), cfg)
    return Workspace(str(out))


def test_counts_per_split_and_class(golden, expected):
    rows = golden.read("manifest", MANIFEST).to_pylist()
    counts: dict = {}
    for r in rows:
        counts.setdefault(r["split"], {}).setdefault(r["label"], 0)
        counts[r["split"]][r["label"]] += 1
    assert counts == expected["counts"]


def test_every_planted_file_has_its_row(golden, expected):
    rows = {r["path"]: r for r in golden.read("manifest", MANIFEST).to_pylist()}
    assert set(rows) == {f["path"] for f in expected["files"]}
    for f in expected["files"]:
        row = rows[f["path"]]
        assert row["error_code"] == f["error_code"], f["path"]
        assert row["status"] == ("error" if f["error_code"] else "ok"), f["path"]
        for key in ("format", "width", "height", "mode", "n_frames", "bit_depth"):
            if f.get(key) is not None:
                assert row[key] == f[key], (f["path"], key, row[key], f[key])
        if f.get("exif_orientation"):
            assert row["exif_orientation"] == f["exif_orientation"], f["path"]


def test_every_planted_case_is_flagged_and_clean_images_are_not(golden, expected):
    issues = golden.read("issues", ISSUES).to_pylist()
    fired: dict[str, dict[str, str]] = {}
    for i in issues:
        if i["path"]:
            fired.setdefault(i["path"], {})[i["check"]] = i["severity"]
    for f in expected["files"]:
        got = fired.get(f["path"], {})
        want = set(f["checks"]) | ({f["error_code"]} if f["error_code"] else set())
        assert want <= set(got), (f["path"], want, got)
        if f["error_code"]:
            assert got[f["error_code"]] == "error"
        if f["case"] == "ordinary":
            assert got == {}, (f["path"], got)


def test_label_checks_on_sample(golden, expected):
    issues = [i for i in golden.read("issues", ISSUES).to_pylist() if i["sample_id"] is None]
    imbalance = [i for i in issues if i["check"] == "imbalance"]
    totals = {c: sum(expected["counts"][s].get(c, 0) for s in expected["counts"]) for c in expected["classes"]}
    assert max(totals.values()) >= 8 * min(totals.values())
    assert len(imbalance) == (1 if max(totals.values()) > 10 * min(totals.values()) else 0)
    assert {i["label"] for i in issues if i["check"] == "small_class"} >= {c for c, n in totals.items() if n < 5}
