"""Duplicate clusters (issue 14): the invariants of `curate.dedup.cover`, as properties over random
collections (hypothesis) and on families of real photos.

- identical bytes and identical pixels are never split;
- no two kept images lie within the threshold of each other (images in no cluster are kept too);
- every member is within the threshold of its cluster's centre;
- re-ordering the input never changes the clusters or what is kept.
"""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

from curate.config import from_dict
from curate.dedup.stage import COLUMNS, _clusters, decide
from curate.imaging.hashes import hamming
from curate.pipeline import run_stage
from curate.schema import DUPLICATES, MANIFEST
from curate.workspace import Workspace

from conftest import SAMPLE, encode, write


def near(rows: pd.DataFrame, i: int, j: int, t: int, dihedral: bool) -> bool:
    """Within the threshold as the search defines it: any flip of one against the other's hash."""
    if not dihedral:
        return int(hamming(np.int64(rows.at[i, "phash"]), np.int64(rows.at[j, "phash"]))) <= t
    d8 = np.asarray(rows.at[i, "phash_d8"], np.int64), np.asarray(rows.at[j, "phash_d8"], np.int64)
    return min(int(hamming(d8[0], np.int64(rows.at[j, "phash"])).min()),
               int(hamming(d8[1], np.int64(rows.at[i, "phash"])).min())) <= t


@st.composite
def collections(draw: st.DrawFn) -> tuple[pd.DataFrame, int, bool]:
    """Families of near hashes (a base plus a few flipped bits), with exact copies (same bytes) and
    re-encodes (same pixels), random labels, splits and sizes."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    t = draw(st.integers(1, 12))
    dihedral = draw(st.booleans())
    rows = []
    for family in range(draw(st.integers(1, 6))):
        base = int(rng.integers(-(2**63), 2**63 - 1, dtype=np.int64))
        for k in range(draw(st.integers(1, 8))):
            bits = rng.choice(64, size=int(rng.integers(0, 2 * t + 2)), replace=False)
            phash = base ^ int(np.bitwise_or.reduce(np.left_shift(np.int64(1), bits.astype(np.int64)), initial=0))
            flips = rng.integers(-(2**63), 2**63 - 1, 7, dtype=np.int64).tolist()
            row = {"bytes_hash": f"b{family}-{k}", "pixel_hash": f"p{family}-{k}", "phash": phash,
                   "phash_d8": [phash, *flips], "width": int(rng.integers(10, 100)), "height": 50,
                   "size_bytes": int(rng.integers(1, 1000)), "format": "PNG", "extension": "png",
                   "label": str(rng.choice(["cat", "dog"])) if rng.random() < 0.3 else "cat",
                   "split": str(rng.choice(["train", "val", "test"], p=[0.8, 0.1, 0.1]))}
            rows.append(row)
            for copy in range(int(rng.integers(0, 3))):  # same bytes, or same pixels in another file
                same_bytes = rng.random() < 0.5
                rows.append({**row, "bytes_hash": row["bytes_hash"] if same_bytes else f"{row['bytes_hash']}-re{copy}",
                             "size_bytes": row["size_bytes"] if same_bytes else int(rng.integers(1, 1000)),
                             "split": str(rng.choice(["train", "val", "test"]))})
    frame = pd.DataFrame(rows)
    frame["path"] = [f"{i:04d}.png" for i in range(len(frame))]
    frame["sample_id"] = [f"s{i}" for i in range(len(frame))]
    return frame[COLUMNS], t, dihedral


def outcome(rows: pd.DataFrame, cfg) -> tuple[set[frozenset[str]], set[str]]:
    """The clusters (as sets of paths) and the kept paths (kept in a cluster, or in none)."""
    rows = rows.sort_values("path", kind="stable").reset_index(drop=True)
    decided = decide(rows, cfg).table.to_pandas()
    clusters = {frozenset(g["path"]) for _, g in decided.groupby("cluster_id")}
    dropped = set(decided.loc[~decided["keep"], "path"])
    return clusters, set(rows["path"]) - dropped


@settings(max_examples=60, deadline=None)
@given(case=collections(), conflicts=st.sampled_from(["drop", "keep-majority", "keep"]), seed=st.integers(0, 99))
def test_cluster_invariants(case, conflicts, seed):
    rows, t, dihedral = case
    cfg = from_dict({"dedup": {"threshold": t, "dihedral": dihedral, "conflicts": conflicts}})
    clusters, kept = outcome(rows, cfg)
    cluster_of = {p: c for c in clusters for p in c}
    by_path = rows.set_index("path")
    for column in ("bytes_hash", "pixel_hash"):
        for _, same in by_path.groupby(column):
            assert len({cluster_of.get(p) for p in same.index}) == 1 or len(same) == 1, column
    ordered = rows.sort_values("path").reset_index(drop=True)
    index = {p: i for i, p in enumerate(ordered["path"])}
    kept_rows = sorted(index[p] for p in kept)
    for a in range(len(kept_rows)):
        for b in range(a + 1, len(kept_rows)):
            i, j = kept_rows[a], kept_rows[b]
            assert not near(ordered, i, j, t, dihedral), (ordered.at[i, "path"], ordered.at[j, "path"])
    found = _clusters(ordered, cfg)
    for c in found.clusters:
        assert all(near(ordered, c.centre, m, t, dihedral) or ordered.at[m, "phash"] == ordered.at[c.centre, "phash"]
                   or any(near(ordered, k, m, t, dihedral) for k in [c.keeper] if k is not None)
                   for m in c.members)
    shuffled = rows.sample(frac=1.0, random_state=seed)
    assert outcome(shuffled, cfg) == (clusters, kept)


def pad(im: Image.Image, share: float) -> Image.Image:
    """A copy with a border of `share` of each side, at higher resolution."""
    bw, bh = int(im.width * share), int(im.height * share)
    return ImageOps.expand(im, (bw, bh, bw, bh), fill=(255, 255, 255))


FAMILY = {
    "original.jpg": lambda im: im,
    "lossless.png": lambda im: im,
    "padded_5pct.png": lambda im: pad(im, 0.05).resize((im.width * 3 // 2, im.height * 3 // 2)),
    "bigger.png": lambda im: im.resize((im.width * 5 // 4, im.height * 5 // 4), Image.Resampling.LANCZOS),
    "half.jpg": lambda im: im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS),
    "q50.jpg": lambda im: Image.open(io.BytesIO(encode(im, "JPEG", quality=50))),
    "q20.jpg": lambda im: Image.open(io.BytesIO(encode(im, "JPEG", quality=20))),
    "crop_3pct.jpg": lambda im: im.crop((im.width * 3 // 100, im.height * 3 // 100, im.width, im.height)),
    "copy.jpg": lambda im: im,
}


def test_one_photo_is_kept_once_whatever_copy_anchors_it(tmp_path):
    """Families of real photos with a padded copy at the highest resolution (the keep policy's
    favourite) and a lossless PNG of the original: every family ends as one cluster with one
    keeper, and exact copies share a cluster."""
    originals = sorted(p for p in (SAMPLE / "train").rglob("*.jpg") if "planted" not in p.name)[:10]
    src = tmp_path / "src"
    for k, p in enumerate(originals):
        im = Image.open(p).convert("RGB")
        data = encode(im, "JPEG", quality=90)
        for name, fn in FAMILY.items():
            path = src / "train" / "x" / f"f{k}_{name}"
            write(path, data if name in ("original.jpg", "copy.jpg") else
                  encode(fn(im).convert("RGB"), "PNG" if name.endswith(".png") else "JPEG", quality=90))
    cfg = from_dict({"engine": {"workers": 1}, "dedup": {"keep_policy": ["resolution", "file_size", "format", "path"]}})
    out = tmp_path / "out"
    run_stage("scan", str(src), str(out), cfg)
    run_stage("dedup", str(src), str(out), cfg)
    ws = Workspace(str(out))
    dups = ws.read("duplicates", DUPLICATES).to_pandas()
    manifest = ws.read("manifest", MANIFEST).to_pandas().sort_values("path").reset_index(drop=True)
    row = {p: i for i, p in enumerate(manifest["path"])}
    padded_anchored = 0
    for k in range(len(originals)):
        g = dups[dups["path"].str.contains(f"/f{k}_")]
        assert g["cluster_id"].nunique() == 1 and g["keep"].sum() == 1, g[["path", "cluster_id", "keep"]].to_string()
        assert {f"train/x/f{k}_{n}" for n in ("original.jpg", "copy.jpg", "lossless.png")} <= set(g["path"])
        for name in set(FAMILY) - {p.split("_", 1)[1] for p in g["path"]}:  # left out: near none of the cluster
            assert not any(near(manifest, row[f"train/x/f{k}_{name}"], row[p], 8, False) for p in g["path"])
        padded_anchored += bool(g.loc[g["keep"], "path"].str.endswith("padded_5pct.png").any())
    assert padded_anchored >= 1  # the case the old guard got wrong: the padded copy is kept, no second cluster


@pytest.mark.parametrize("n", [2, 7])
def test_a_group_of_equal_hashes_is_one_unit(n):
    """Rows with the same hash are near the same rows: a group of them is never split."""
    rows = pd.DataFrame({"sample_id": [f"s{i}" for i in range(n + 1)], "path": [f"{i}.png" for i in range(n + 1)],
                         "label": "x", "split": "train", "bytes_hash": [f"b{i}" for i in range(n + 1)],
                         "pixel_hash": [f"p{i}" for i in range(n + 1)], "phash": [0] * n + [0xFF],
                         "phash_d8": [[0] * 8] * n + [[0xFF] * 8], "width": 10, "height": 10, "size_bytes": 1,
                         "format": "PNG", "extension": "png"})
    found = _clusters(rows, from_dict({"dedup": {"threshold": 8}}))
    assert [c.members for c in found.clusters] == [list(range(n + 1))]


@settings(max_examples=40, deadline=None)
@given(case=collections())
def test_deciding_on_the_rows_the_hash_edges_join_gives_the_whole_collection_s_rows(case):
    """The stage reads whole rows only for images with an edge (`DupEdges.rows`): the same
    duplicates rows, cluster ids included, as deciding on every row."""
    from curate.dedup.measures import Measures
    from curate.dedup.stage import DupEdges

    rows, t, dihedral = case
    cfg = from_dict({"dedup": {"threshold": t, "dihedral": dihedral}})
    rows = rows.sort_values("path", kind="stable").reset_index(drop=True)
    edges = DupEdges.of(rows, cfg, None, Measures.of(rows, t, dihedral))
    joined = edges.rows()
    subset = rows.iloc[joined].reset_index(drop=True)
    assert decide(subset, cfg, edges=edges.among(joined, len(rows)), ids=joined).table.equals(decide(rows, cfg).table)
