"""Semantic dedup: embeddings join what the 64-bit hash cannot (crops, a watermark bar, a small
rotation), through the CLI, on distinct real photos, without joining different photos."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from package_photos import package_photographs
from PIL import Image, ImageDraw

from curate.cli import main
from curate.config import from_dict
from curate.pipeline import selected_stages
from curate.schema import DUPLICATES, PLAN
from curate.workspace import Workspace

from conftest import encode, write

pytestmark = pytest.mark.slow


def distinct_photos() -> dict[str, Image.Image]:
    """Real colour photographs that ship inside installed packages, each a different scene."""
    import scipy.datasets

    photos = package_photographs()
    try:
        photos["raccoon"] = Image.fromarray(scipy.datasets.face()).convert("RGB")
    except Exception:  # noqa: BLE001  (scipy's copy may need a download: go without it)
        pass
    return photos


def watermark(im: Image.Image) -> Image.Image:
    out = im.copy()
    ImageDraw.Draw(out).rectangle((0, int(im.height * 0.85), im.width, im.height), fill=(255, 255, 255))
    return out


TRANSFORMS = {
    "crop_10pct": lambda im: im.crop((im.width // 10, im.height // 10, im.width, im.height)),
    "watermark": watermark,
    "rotate_5": lambda im: im.rotate(5, resample=Image.Resampling.BICUBIC, expand=False),
}


def test_semantic_dedup_joins_what_the_hash_misses(tmp_path, runner):
    src = tmp_path / "src"
    photos = distinct_photos()
    for name, im in photos.items():
        im = im.resize((512, int(512 * im.height / im.width)))
        write(src / "photos" / f"{name}.jpg", encode(im))
        for t, fn in TRANSFORMS.items():
            write(src / "photos" / f"{name}--{t}.jpg", encode(fn(im)))
    out = tmp_path / "out"
    assert runner.invoke(main, ["scan", str(src), "-o", str(out)]).exit_code == 0
    missing = runner.invoke(main, ["dedup", str(out), "--semantic"])
    assert missing.exit_code == 2 and f"run `curate embed {out}` first" in missing.output
    hashed = runner.invoke(main, ["dedup", str(out)])
    assert hashed.exit_code == 0, hashed.output
    by_hash = Workspace(str(out)).read("duplicates", DUPLICATES).to_pandas()
    assert runner.invoke(main, ["embed", str(out)]).exit_code == 0
    semantic = runner.invoke(main, ["dedup", str(out), "--semantic"])
    assert semantic.exit_code == 0, semantic.output
    dups = Workspace(str(out)).read("duplicates", DUPLICATES).to_pandas()
    family = dups["path"].str.extract(r"photos/([a-z_]+)")[0]
    assert (dups.groupby("cluster_id").apply(lambda g: family[g.index].nunique()) == 1).all()  # no false pairs

    def recall(table: pd.DataFrame, t: str) -> float:
        return float(np.mean([f"photos/{n}--{t}.jpg" in set(table["path"]) for n in photos]))

    for t in TRANSFORMS:
        assert recall(dups, t) >= 0.9, (t, recall(dups, t))
    assert recall(by_hash, "crop_10pct") < recall(dups, "crop_10pct")
    semantic_rows = dups[dups["kind"] == "semantic"]
    assert len(semantic_rows) and semantic_rows["similarity"].between(0.8, 1.0).all()
    assert semantic_rows["reason"].str.contains(r"duplicate \(semantic, similarity 0\.\d\d\)|kept:").all()


def test_run_brings_in_embed_when_dedup_is_semantic():
    names = [s.name for s in selected_stages(from_dict({"dedup": {"semantic": True}}))]
    assert names[:3] == ["scan", "embed", "validate"]


def test_semantic_pairs_are_exact_below_the_index_size_and_near_exact_above():
    from curate.search import similar_pairs

    rng = np.random.default_rng(3)
    centres = rng.normal(size=(500, 64)).astype(np.float32)
    x = centres[rng.integers(0, 500, 4000)] + 0.25 * rng.normal(size=(4000, 64)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    exact = similar_pairs(x, 0.8)
    truth = {(a, b) for a, b in zip(*exact[:2]) if a < b}
    brute = {(a, b) for a, b in zip(*np.nonzero(np.triu(x @ x.T >= 0.8, 1)))}
    assert truth == brute
    approx = similar_pairs(x, 0.8, exact_max=0)
    found = set(zip(*approx[:2]))
    assert found <= truth and len(found) / len(truth) >= 0.99
    assert len(found) == len(approx[0])  # a pair reached from both of its members is reported once


def test_cap_prefer_diverse_drops_the_most_redundant_first(tmp_path, runner):
    """One class of 8 photos, 4 of them with 3 close variants each: a cap of 8 keeps one image of
    each photo when it prefers diverse images; the seeded order does not."""
    photos = distinct_photos()
    names = sorted(photos)[:8]
    src = tmp_path / "src"
    for i, name in enumerate(names):
        im = photos[name].resize((384, int(384 * photos[name].height / photos[name].width)))
        write(src / "train" / "x" / f"{name}.jpg", encode(im))
        if i < 4:
            for t, fn in TRANSFORMS.items():
                write(src / "train" / "x" / f"{name}--{t}.jpg", encode(fn(im)))
    write(src / "train" / "y" / "one.jpg", encode(photos[sorted(photos)[-1]]))
    out = tmp_path / "out"
    for args in (["scan", str(src), "-o", str(out)], ["embed", str(out)]):
        assert runner.invoke(main, args).exit_code == 0
    kept = {}
    for prefer in ("order", "diverse"):
        r = runner.invoke(main, ["rebalance", str(out), "--strategy", "cap", "--cap", "8", "--prefer", prefer])
        assert r.exit_code == 0, r.output
        plan = Workspace(str(out)).read("plan", PLAN).to_pandas()
        x = plan[(plan["label"] == "x") & plan["keep"]]
        kept[prefer] = x["path"].str.extract(r"x/([a-z_]+)")[0].nunique()
        assert len(x) == 8
    assert kept["diverse"] == 8 and kept["order"] < 8
