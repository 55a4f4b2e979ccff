"""Rebalance: strategies, splits, weights, edge cases and a property test over random collections."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curate.config import from_dict
from curate.errors import ConfigError
from curate.pipeline import run_stage
from curate.rebalance.stage import rebalance
from curate.rebalance.weights import class_weights
from curate.schema import DUPLICATES, ISSUES, MANIFEST, PLAN
from curate.workspace import Workspace

from conftest import SAMPLE


def workspace(out: Path, rows: list[tuple[str, str | None]], clusters: list[list[int]] = ()) -> Workspace:
    """A workspace whose manifest has one ok image per (label, split) row, plus duplicate clusters
    (each cluster: row indices; the first is kept)."""
    ws = Workspace(str(out))
    ws.claim()  # as a run's lock does
    manifest = [{"sample_id": f"s{i:05d}", "path": f"{split}/{label}/{i:05d}.jpg", "label": label, "split": split,
                 "status": "ok"} for i, (label, split) in enumerate(rows)]
    ws.write_dataset("manifest", pa.Table.from_pylist(manifest, schema=MANIFEST), MANIFEST)
    dups = []
    for members in clusters:
        for k, i in enumerate(members):
            dups.append({"sample_id": f"s{i:05d}", "path": manifest[i]["path"], "label": rows[i][0],
                         "split": rows[i][1], "cluster_id": members[0], "kind": "near", "distance": 1,
                         "keep": k == 0, "reason": "test", "leak": False, "label_conflict": False})
    ws.write_dataset("duplicates", pa.Table.from_pylist(dups, schema=DUPLICATES), DUPLICATES)
    return ws


def plan(ws: Workspace, **options) -> pd.DataFrame:
    rebalance(None, ws.url, from_dict({"rebalance": options}))
    return ws.read("plan", PLAN).to_pandas()


def counts(p: pd.DataFrame, split: str = "train") -> dict[str, int]:
    kept = p[p["keep"] & (p["split"] == split)]
    return (kept["copies"] + kept["augment_copies"]).groupby(kept["label"]).sum().to_dict()


def imbalanced(tmp_path) -> Workspace:
    rows = [("big", "train")] * 40 + [("mid", "train")] * 12 + [("tiny", "train")] * 3 + [("big", "test")] * 5
    return workspace(tmp_path / "out", rows, clusters=[[0, 1, 2]])


def test_none_cap_floor_target(tmp_path):
    ws = imbalanced(tmp_path)
    assert counts(plan(ws)) == {"big": 38, "mid": 12, "tiny": 3}  # two cluster members dropped
    p = plan(ws, strategy="cap", cap=10)
    assert counts(p) == {"big": 10, "mid": 10, "tiny": 3}
    assert counts(p, "test") == {"big": 5}  # val/test keep natural counts
    dropped_big = p[(p["label"] == "big") & (p["split"] == "train") & p["reason"].str.startswith("cap", na=False)]
    assert "s00000" in set(dropped_big["sample_id"])  # a duplicate-cluster member is dropped first
    p = plan(ws, strategy="floor", floor=20)
    assert counts(p) == {"big": 38, "mid": 20, "tiny": 20}
    tiny = p[(p["label"] == "tiny") & p["keep"]]
    assert sorted(tiny["copies"]) == [6, 7, 7] and (tiny["augment_copies"] == 0).all()
    p = plan(ws, strategy="floor", floor=20, oversample="augment")
    tiny = p[(p["label"] == "tiny") & p["keep"]]
    assert (tiny["copies"] == 1).all() and tiny["augment_copies"].sum() == 17
    p = plan(ws, strategy="target", target="uniform")
    assert counts(p) == {"big": 18, "mid": 18, "tiny": 17}
    p = plan(ws, strategy="target", target="sqrt")
    c = counts(p)
    assert sum(c.values()) == 53 and c["big"] > c["mid"] > c["tiny"] > 3
    targets = tmp_path / "targets.csv"
    targets.write_text("class,count\nbig,7\ntiny,9\n")
    assert counts(plan(ws, strategy="target", target=str(targets))) == {"big": 7, "mid": 12, "tiny": 9}


def test_edge_cases(tmp_path):
    one = workspace(tmp_path / "one", [("only", "train")] * 5)
    assert counts(plan(one, strategy="target", target="uniform")) == {"only": 5}
    above = imbalanced(tmp_path)
    assert counts(plan(above, strategy="cap", cap=1000)) == {"big": 38, "mid": 12, "tiny": 3}
    # a class emptied by dedup: every member of its only cluster but one dropped -> 1 left
    emptied = workspace(tmp_path / "emptied", [("a", "train")] * 4 + [("b", "train")] * 2, clusters=[[4, 5]])
    assert counts(plan(emptied, strategy="floor", floor=4)) == {"a": 4, "b": 4}
    # a class smaller than the requested split can hold stays whole and in one piece
    small = workspace(tmp_path / "small", [("a", "train")] * 20 + [("b", "train")] * 2)
    p = plan(small, split="0.8,0.1,0.1")
    assert p[p["label"] == "b"]["keep"].sum() == 2
    assert set(p["split"]) <= {"train", "val", "test"}
    p = plan(small, min_class_size=3, small_classes="drop")
    assert not p[p["label"] == "b"]["keep"].any() and "below minimum" in p[p["label"] == "b"]["reason"].iloc[0]
    with pytest.raises(ConfigError, match="valid: cap, clamp, floor, none, target"):
        plan(small, strategy="oversample")


def test_keep_test_and_group_aware_split(tmp_path):
    rows = [("a", "train")] * 30 + [("a", "test")] * 4 + [("b", "train")] * 30
    ws = workspace(tmp_path / "out", rows, clusters=[[0, 1, 2, 3], [31, 5]])
    p = plan(ws, split="0.7,0.15,0.15", keep_test=True, seed=3)
    assert (p.loc[p["sample_id"].isin([f"s{i:05d}" for i in range(30, 34)]), "split"] == "test").all()
    assert p.loc[p["sample_id"] == "s00005", "split"].item() == "test"  # clustered with a test image
    assert p.dropna(subset=["cluster_id"]).groupby("cluster_id")["split"].nunique().max() == 1


def test_class_weights():
    w = class_weights({"a": 100, "b": 10}, beta=0.99)
    assert w["inverse"] == pytest.approx({"a": 110 / 200, "b": 110 / 20})
    assert w["median"]["b"] / w["median"]["a"] == pytest.approx(10)
    assert sum(w["effective"].values()) == pytest.approx(2) and w["effective"]["b"] > w["effective"]["a"]
    eff_a = (1 - 0.99) / (1 - 0.99**100)
    eff_b = (1 - 0.99) / (1 - 0.99**10)
    assert w["effective"]["b"] / w["effective"]["a"] == pytest.approx(eff_b / eff_a)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_property_plans(tmp_path_factory, data):
    n_classes = data.draw(st.integers(1, 4))
    rows = []
    for c in range(n_classes):
        for _ in range(data.draw(st.integers(1, 25))):
            rows.append((f"c{c}", data.draw(st.sampled_from(["train", "train", "val", "test", None]))))
    n = len(rows)
    clusters, used = [], set()
    for _ in range(data.draw(st.integers(0, 4))):
        members = sorted(set(data.draw(st.lists(st.integers(0, n - 1), min_size=2, max_size=4))) - used)
        if len(members) >= 2:
            clusters.append(members)
            used |= set(members)
    ws = workspace(tmp_path_factory.mktemp("prop"), rows, clusters)
    strategy = data.draw(st.sampled_from(["none", "cap", "floor", "target"]))
    options = {"strategy": strategy, "cap": 5, "floor": 8, "target": "uniform", "seed": data.draw(st.integers(0, 9)),
               "split": data.draw(st.sampled_from(["", "0.6,0.2,0.2"]))}
    p1 = plan(ws, **options)
    assert (p1.dropna(subset=["cluster_id"]).groupby("cluster_id")["split"].nunique() == 1).all()
    usable = p1[p1["keep"] | p1["reason"].str.startswith(strategy, na=False)]
    before = usable[usable["split"] == "train"].groupby("label").size().to_dict()
    after = counts(p1)
    if strategy == "none":
        assert after == before
    elif strategy == "cap":
        assert after == {c: min(v, 5) for c, v in before.items()}
    elif strategy == "floor":
        assert after == {c: max(v, 8) for c, v in before.items()}
    else:
        assert sum(after.values()) == sum(before.values())
        assert not after or max(after.values()) - min(after.values()) <= 1  # no train rows: nothing to balance
    p2 = plan(ws, **options)
    assert p1.equals(p2)


def test_sample_data_plan_counts(tmp_path, expected):
    cfg = from_dict({})
    for stage in ("scan", "validate", "dedup", "rebalance"):
        summary = run_stage(stage, str(SAMPLE), str(tmp_path / "out"), cfg)
    assert summary.after == expected["plan_counts_default"]


def test_cli_rebalance(tmp_path, runner):
    from curate.cli import main

    ws = imbalanced(tmp_path)
    ws.write_json("runs/scan.json", {"source": str(tmp_path / "src")})
    r = runner.invoke(main, ["rebalance", ws.url, "--strategy", "cap", "--cap", "10"])
    assert r.exit_code == 0, r.output
    assert "38 -> 10" in r.output and "12 -> 10" in r.output
    bad = runner.invoke(main, ["rebalance", ws.url, "--split", "0.9,0.9,0.1"])
    assert bad.exit_code == 2 and "sum to 1" in bad.output


def split_workspace(out: Path, rows: list[tuple[str, str | None]], clusters: list[list[int]], rows_per_file: int
                    ) -> Workspace:
    """`workspace`, with the manifest split into parts of `rows_per_file` rows and a warning issue
    on every fifth image."""
    ws = workspace(out, rows, clusters)
    manifest = ws.read("manifest", MANIFEST)
    ws.write_dataset("manifest", manifest, MANIFEST, rows_per_file=rows_per_file)
    warned = [{"sample_id": f"s{i:05d}", "path": manifest["path"][i].as_py(), "label": rows[i][0], "check": "dark",
               "severity": "warning", "score": 0.0, "threshold": 1.0, "message": "dark"}
              for i in range(0, len(rows), 5)]
    ws.write_dataset("issues", pa.Table.from_pylist(warned, schema=ISSUES), ISSUES)
    return ws


@pytest.mark.slow
def test_plan_is_the_same_whatever_the_partitioning_and_cluster(tmp_path):
    rows = ([("big", "train")] * 900 + [("mid", "train")] * 300 + [("tiny", "train")] * 20
            + [("big", "test")] * 60 + [("mid", None)] * 40)
    clusters = [[0, 1, 2], [3, 950], [1200, 1201, 1230], [905, 1225]]
    one = split_workspace(tmp_path / "one", rows, clusters, rows_per_file=10_000)
    many = split_workspace(tmp_path / "many", rows, clusters, rows_per_file=97)
    assert len(list((tmp_path / "many" / "manifest").glob("part-*.parquet"))) == 14
    options = [{"strategy": "cap", "cap": 150}, {"strategy": "floor", "floor": 500, "oversample": "augment"},
               {"strategy": "target", "target": "sqrt", "split": "0.7,0.15,0.15", "keep_test": True, "seed": 4},
               {"strategy": "none", "split": "0.8,0.1,0.1", "seed": 9}]
    for opts in options:
        expected = plan(one, **opts).sort_values("path", ignore_index=True)
        got = plan(many, **opts).sort_values("path", ignore_index=True)
        pd.testing.assert_frame_equal(expected, got)
        if opts.get("split"):  # a re-split gives every class its share of each split, to one image
            ratios = dict(zip(("train", "val", "test"), map(float, opts["split"].split(","))))
            usable = expected[expected["keep"] | expected["reason"].str.startswith(opts["strategy"], na=False)]
            for _label, g in usable.groupby("label"):
                if not opts.get("keep_test"):
                    share = g["split"].value_counts()
                    assert all(abs(share.get(s, 0) - r * len(g)) <= 1 + len(clusters) * 3 for s, r in ratios.items())
    # a real Dask cluster of two worker processes gives the same plan as in-process
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1") as cluster:
        cfg = from_dict({"rebalance": options[0], "engine": {"scheduler": cluster.scheduler_address}})
        summary = rebalance(None, many.url, cfg)
    pd.testing.assert_frame_equal(plan(one, **options[0]).sort_values("path", ignore_index=True),
                                  many.read("plan", PLAN).to_pandas().sort_values("path", ignore_index=True))
    assert summary.after["train"] == {"big": 150, "mid": 150, "tiny": 19}  # one tiny duplicate dropped
    capped = plan(one, **options[0])
    big = capped[(capped["label"] == "big") & (capped["split"] == "train")]
    warned = {f"s{i:05d}" for i in range(0, len(rows), 5)}
    assert not (big["keep"] & big["sample_id"].isin(warned)).any()  # warned images are dropped first
    assert not (tmp_path / "many" / "plan.work").exists()


def test_rank_cuts_match_a_sort():
    from curate.rebalance import ranks

    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"label": rng.choice(["a", "b"], 5000),
                          "order": rng.integers(0, 2**63, 5000, dtype=np.int64).astype(np.uint64),
                          "path": [f"p{i:05d}" for i in range(5000)]})
    frame.loc[10:20, "order"] = frame.loc[5, "order"]  # ties: broken by path
    parts = [frame.iloc[i::7] for i in range(7)]
    hist = ranks.merge_histograms(ranks.histogram(p, ["label"]) for p in parts)
    wanted = {"a": [0, 1, 1234, 2000], "b": [17, 10**6]}
    cuts, boundaries = ranks.locate(hist, wanted)
    cells = ranks.wanted_cells(boundaries, ["label"])
    rows = pd.concat(ranks.boundary_rows(p, ["label"], cells) for p in parts)
    assert len(rows) < len(frame) / 20
    cuts |= ranks.resolve(boundaries, rows, ["label"])
    for label, rks in wanted.items():
        g = frame[frame["label"] == label].sort_values(["order", "path"])
        for k in rks:
            front = ranks.in_front(g["order"].to_numpy(), g["path"], cuts[(label, k)])
            assert front.sum() == min(k, len(g)) and front[:min(k, len(g))].all()


def test_clamp_raises_the_small_classes_and_caps_the_largest(tmp_path):
    cfg = from_dict({"engine": {"workers": 1}, "rebalance": {"strategy": "clamp", "floor": 4, "cap": 10}})
    for stage in ("scan", "validate", "dedup", "rebalance"):
        summary = run_stage(stage, str(SAMPLE), str(tmp_path / "out"), cfg)
    assert summary.after["train"] == {c: min(max(n, 4), 10) for c, n in summary.before["train"].items()}
    with pytest.raises(ConfigError, match=r"rebalance.cap \(3\) is below rebalance.floor \(4\)"):
        run_stage("rebalance", None, str(tmp_path / "out"), from_dict({"rebalance": {"strategy": "clamp", "floor": 4,
                                                                                   "cap": 3}}))


def test_routed_rows_of_a_part_are_exactly_its_samples_rows(tmp_path, monkeypatch):
    from curate import by_part
    from curate.rebalance import routes

    monkeypatch.setattr(by_part, "ROW_GROUP", 7)  # many row groups, each part's rows spanning some
    monkeypatch.setattr(by_part, "PARTS_PER_FILE", 3)  # 10 parts in 4 files
    rows = [("big", "train")] * 300 + [("mid", "test")] * 90
    ws = split_workspace(tmp_path / "out", rows, [[0, 389], [5, 150, 151]], rows_per_file=41)
    stray = {"sample_id": "not-in-the-manifest", "check": "dark", "severity": "warning"}
    ws.write_dataset("issues", pa.concat_tables([ws.read("issues", ISSUES), pa.Table.from_pylist([stray], ISSUES)]),
                     ISSUES)
    parts = [p.rpartition("/")[2] for p in ws.parts("manifest")]
    routes.route(ws, routes.manifest_ids(ws, parts), len(parts), "issues", ISSUES, ["sample_id", "check"], "routed")
    assert len(ws.fs.ls(ws.path("routed", "issues"))) == 4
    assert len(parts) == 10 and routes.rows_of_part(ws, "routed", "duplicates", 0) is None
    seen = []
    for index, part in enumerate(parts):
        ids = set(pq.read_table(ws.path("manifest", part), columns=["sample_id"])["sample_id"].to_pylist())
        got = routes.rows_of_part(ws, "routed", "issues", index)
        assert got.column_names == ["sample_id", "check"]
        assert set(got["sample_id"].to_pylist()) == {f"s{i:05d}" for i in range(0, len(rows), 5)} & ids
        seen += got["sample_id"].to_pylist()
    assert sorted(seen) == [f"s{i:05d}" for i in range(0, len(rows), 5)]  # each once; the stray row dropped


def test_by_part_gives_each_part_its_rows_from_its_own_file(tmp_path, monkeypatch):
    from curate import by_part

    monkeypatch.setattr(by_part, "ROW_GROUP", 2)
    monkeypatch.setattr(by_part, "PARTS_PER_FILE", 3)
    ws = Workspace(str(tmp_path / "out"))
    ws.claim()
    part = np.array([5, 1, 2, 1, 5, 1, 2], dtype=np.int32)  # parts 0, 3, 4, 6 and 7 have no rows
    table = pa.table({"v": np.arange(len(part))})
    by_part.write_by_part(ws, "work/rows", table, part, parts=8)
    assert sorted(p.rpartition("/")[2] for p in ws.fs.ls(ws.path("work", "rows"))) == [
        "00000.parquet", "00001.parquet", "00002.parquet"]  # parts 0-2, 3-5, 6-7: the last one empty
    got = {i: by_part.read_part(ws, "work/rows", i) for i in range(8)}
    assert {i: t["v"].to_pylist() for i, t in got.items()} == {
        0: [], 1: [1, 3, 5], 2: [2, 6], 3: [], 4: [], 5: [0, 4], 6: [], 7: []}  # in their written order
    assert all(t.column_names == ["v"] for t in got.values())
    by_part.write_by_part(ws, "work/rows", table.slice(1, 1), part[1:2], parts=2)  # a rewrite leaves no old file
    assert len(ws.fs.ls(ws.path("work", "rows"))) == 1 and by_part.read_part(ws, "work/rows", 1)["v"].to_pylist() == [1]
    with pytest.raises(ValueError, match=r"part numbers must lie in \[0, 5\): 1..5"):
        by_part.write_by_part(ws, "work/rows", table, part, parts=5)
