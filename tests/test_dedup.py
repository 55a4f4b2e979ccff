"""Dedup: the planted duplicates in sample_data/, transform families, chaining, keep policy."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageEnhance, ImageFilter, ImageOps
from test_search import brute

from curate.config import from_dict
from curate.dedup.search import Bands, choose_bands, plan_bands, query_pairs, radius_pairs
from curate.dedup.stage import _clusters
from curate.imaging.hashes import hamming
from curate.pipeline import run_stage
from curate.schema import DUPLICATES
from curate.workspace import Workspace

from conftest import SAMPLE, encode, photo_like, write

ACCEPT = {"bytes": {"bytes"}, "pixels": {"pixels"}, "near": {"near", "phash"}}


def run(src, out, **dedup):
    cfg = from_dict({"dedup": dedup})
    run_stage("scan", str(src), str(out), cfg)
    run_stage("dedup", str(src), str(out), cfg)
    return pd.DataFrame(Workspace(str(out)).read("duplicates", DUPLICATES).to_pylist())


@pytest.mark.parametrize("dihedral", [True, False])
def test_sample_data_duplicates(tmp_path, expected, dihedral):
    dups = run(SAMPLE, tmp_path / "out", dihedral=dihedral)
    by_path = dups.set_index("path")
    wanted = [d for d in expected["duplicates"] if dihedral or not d.get("needs_dihedral")]
    for d in wanted:
        a, b = d["paths"]
        assert a in by_path.index and b in by_path.index, d
        assert by_path.at[a, "cluster_id"] == by_path.at[b, "cluster_id"], d
        dropped = by_path.loc[[a, b]].query("not keep")
        assert {k for k in dropped["kind"]} <= ACCEPT[d["kind"]] | ({"near", "phash"} if d["kind"] == "near" else set())
        assert bool(by_path.at[a, "leak"]) == d["leak"] and bool(by_path.at[a, "label_conflict"]) == d["label_conflict"]
    # nothing else is clustered: each cluster is exactly one planted pair
    assert len(dups) == 2 * len(wanted)
    leak = next(d for d in wanted if d["leak"])
    test_copy = next(p for p in leak["paths"] if p.startswith("test/"))
    assert by_path.at[test_copy, "keep"] and not by_path.at[next(p for p in leak["paths"] if p != test_copy), "keep"]
    conflict = next(d for d in wanted if d["label_conflict"])
    assert not by_path.loc[conflict["paths"], "keep"].any()  # default: label conflicts are dropped entirely
    assert (dups.groupby("cluster_id")["keep"].sum() <= 1).all()


TRANSFORMS = {
    "resize_0.5": lambda im: im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS),
    "jpeg_q30": lambda im: Image.open(io.BytesIO(encode(im, "JPEG", quality=30))),
    "jpeg_q70": lambda im: Image.open(io.BytesIO(encode(im, "JPEG", quality=70))),
    "crop_3pct": lambda im: im.crop((im.width * 3 // 100, im.height * 3 // 100, im.width, im.height)),
    "brightness_1.2": lambda im: ImageEnhance.Brightness(im).enhance(1.2),
    "blur_1": lambda im: im.filter(ImageFilter.GaussianBlur(1)),
    "grayscale": lambda im: ImageOps.grayscale(im).convert("RGB"),
    "flip": ImageOps.mirror,
    "rotate_90": lambda im: im.transpose(Image.Transpose.ROTATE_90),
}


def test_transform_families_recall_and_no_false_positives(tmp_path):
    originals = sorted(p for p in (SAMPLE / "train").rglob("*.jpg") if "planted" not in p.name)[:12]
    src = tmp_path / "src"
    for k, p in enumerate(originals):
        im = Image.open(p).convert("RGB")
        write(src / f"o{k}" / "original.png", encode(im, "PNG"))
        for name, fn in TRANSFORMS.items():
            write(src / f"o{k}" / f"{name}.png", encode(fn(im).convert("RGB"), "PNG"))
    dups = run(src, tmp_path / "out", dihedral=True)
    family = dups["path"].str.split("/").str[0]
    assert (dups.groupby("cluster_id").apply(lambda g: family[g.index].nunique()) == 1).all()  # no false positives
    found = set(dups["path"])
    for name in TRANSFORMS:
        recall = sum(f"o{k}/{name}.png" in found for k in range(len(originals))) / len(originals)
        assert recall >= (0.75 if name == "crop_3pct" else 1.0), (name, recall)


def chain(n: int) -> pd.DataFrame:
    """n images in a line, each 8 pHash bits from the next (so 16+ bits from all but its
    neighbours); widths fall along the line, so the keep policy prefers the first."""
    hashes = [(1 << (8 * k)) - 1 for k in range(n)]  # k*8 low bits set
    return pd.DataFrame({"sample_id": [f"s{k}" for k in range(n)], "path": [f"{k}.png" for k in range(n)],
                         "label": "x", "split": "train", "bytes_hash": [f"b{k}" for k in range(n)],
                         "pixel_hash": [f"p{k}" for k in range(n)], "phash": hashes,
                         "phash_d8": [[v] * 8 for v in hashes], "width": [100 - 10 * k for k in range(n)],
                         "height": 100, "size_bytes": 1, "format": "PNG", "extension": "png"})


def test_chaining_guard_clusters_around_centres_not_the_preferred_member():
    found = _clusters(chain(5), from_dict({"dedup": {"threshold": 8}}))
    # 0-1-2-3-4: 1, 2 and 3 are the most connected; 1 comes first by the keep policy: {0,1,2} around 1,
    # then {3,4} around 3. Every member is within 8 bits of its centre, though 0 and 2 are 16 apart.
    assert [(c.centre, c.members, c.keeper) for c in found.clusters] == [(1, [0, 1, 2], 0), (3, [3, 4], 3)]
    three = _clusters(chain(3), from_dict({"dedup": {"threshold": 8}}))
    assert [(c.centre, c.members, c.keeper) for c in three.clusters] == [(1, [0, 1, 2], 0)]


def test_keep_policy_and_conflict_modes(tmp_path):
    base = photo_like(5, (128, 96))
    write(tmp_path / "src" / "train" / "cat" / "big.png", encode(base, "PNG"))
    write(tmp_path / "src" / "train" / "cat" / "small.png", encode(base.resize((64, 48)), "PNG"))
    write(tmp_path / "src" / "val" / "cat" / "copy.png", encode(base.resize((96, 72)), "PNG"))
    dups = run(tmp_path / "src", tmp_path / "out").set_index("path")
    assert dups.at["val/cat/copy.png", "keep"] and dups["keep"].sum() == 1  # held-out split first
    assert "held-out" in dups.at["val/cat/copy.png", "reason"]
    dups = run(tmp_path / "src", tmp_path / "out2", keep_policy=["resolution"]).set_index("path")
    assert dups.at["train/cat/big.png", "keep"] and "highest resolution" in dups.at["train/cat/big.png", "reason"]

    write(tmp_path / "src" / "train" / "dog" / "x.png", encode(base, "PNG"))
    for mode, kept in [("drop", set()), ("keep-majority", {"val/cat/copy.png"}), ("keep", {"val/cat/copy.png"})]:
        dups = run(tmp_path / "src", tmp_path / f"out-{mode}", conflicts=mode)
        assert set(dups.loc[dups["keep"], "path"]) == kept, mode
        assert dups["label_conflict"].all()


def test_cli_dedup(tmp_path, runner):
    from curate.cli import main

    out = tmp_path / "out"
    assert runner.invoke(main, ["scan", str(SAMPLE), "-o", str(out)]).exit_code == 0
    r = runner.invoke(main, ["dedup", str(out), "--dihedral"])
    assert r.exit_code == 0, r.output
    assert "leak: 1 clusters span test+train" in r.output and "1 label conflicts" in r.output
    bad = runner.invoke(main, ["dedup", str(out), "--threshold", "99"])
    assert bad.exit_code == 2 and "dedup.threshold" in bad.output


@pytest.mark.parametrize("dihedral", [False, True])
def test_incremental_pairs_equal_a_full_search(dihedral):
    from curate.dedup.cluster import key_pairs

    rng = np.random.default_rng(4)
    keys = rng.integers(-(2**62), 2**62, (400, 8 if dihedral else 1), dtype=np.int64)
    keys[1::2, 0] = keys[::2, 0] ^ 0b111  # near pairs
    keys = np.unique(keys, axis=0)
    old, new = keys[:300], keys[250:]  # 50 removed, 100 added, 50 kept... overlapping rows
    from curate.dedup.cluster import KeyPairs

    previous = KeyPairs(old, key_pairs(old, 6))
    assert np.array_equal(key_pairs(new, 6, previous), key_pairs(new, 6))


def skewed_hashes(n: int, t: int, seed: int) -> np.ndarray:
    """Hashes like real pHashes at their worst: 8 constant top bits, 16 low bits taking only 4
    values (clip art), the rest resampled from 40 scenes with 5% bit flips; near pairs planted at
    every distance 0..t."""
    rng = np.random.default_rng(seed)
    scenes = rng.integers(0, 2**64, 40, dtype=np.uint64)
    h = scenes[rng.integers(0, 40, n)] ^ np.packbits(rng.random((n, 64)) < 0.05, axis=1).view(">u8").reshape(-1)
    h = (h & np.uint64(0x00FF_FFFF_FFFF_0000)) | np.uint64(0x5A << 56)
    h |= np.array([0x0000, 0x00FF, 0xF0F0, 0xFFFF], dtype=np.uint64)[rng.integers(0, 4, n)]
    for a in range(0, n - 1, 7):
        flips = rng.choice(64, size=a % (t + 1), replace=False)
        h[a + 1] = h[a] ^ np.uint64(sum(1 << int(b) for b in flips))
    return h.view(np.int64)


def test_skewed_hashes_are_searched_exactly_with_balanced_bands():
    t = 8
    h = skewed_hashes(2500, t, 3)
    bands = plan_bands(h, t)
    assert sorted(b for band in bands.bits for b in band) == list(range(64))
    assert bands != choose_bands(len(h), t)  # the crowded neighbouring-bit bands were not kept
    assert bands != Bands.contiguous(bands.widths, bands.radius)
    truth = brute(h, t)
    assert len(truth) > len(h) // 7  # the planted pairs and more
    i, j, d = radius_pairs(h, t)
    assert set(zip(i.tolist(), j.tolist())) == truth and (d == hamming(h[i], h[j])).all()
    qi, qj, _ = query_pairs(h[:1000], h[1000:1400], t)
    assert set(zip((qi + 1000).tolist(), qj.tolist())) == {(q, x) for x, q in truth if x < 1000 <= q < 1400}
