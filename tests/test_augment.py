"""Augment on sample_data/: counts from the plan, decodable variants at the configured size,
provenance, byte-identical reruns, resume, copies mode, bad configs, the index and the CLI."""
from __future__ import annotations

import io
import json
import shutil
from collections import Counter
from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from curate.augment import stage as augment_stage
from curate.augment.ops import OPS, resolve_ops
from curate.augment.pipeline import Pipeline, Sampler
from curate.augment.stage import augment, resolve
from curate.augment.variants import variant_seed
from curate.cli import main
from curate.config import default_toml, from_dict, load_config
from curate.errors import ConfigError
from curate.pipeline import run_stage
from curate.schema import PLAN
from curate.workspace import TMP_MARK, Workspace

from conftest import SAMPLE

augment_command = main.commands["augment"]

SIZE = 64
PLAN_CFG = {"engine": {"workers": 1}, "rebalance": {"strategy": "floor", "floor": 6, "oversample": "augment"}}
DEFAULT_OPS = [op["name"] for op in from_dict({}).augment.ops]


def config(**augment: object) -> dict:
    return {**PLAN_CFG, "augment": {"size": SIZE, **augment}}


@pytest.fixture(scope="module")
def planned(tmp_path_factory) -> Path:
    """sample_data scanned, validated, deduplicated, rebalanced (floor 6 by augmentation) and sharded."""
    out = tmp_path_factory.mktemp("planned")
    for stage in ("scan", "validate", "dedup", "rebalance", "shard"):
        run_stage(stage, str(SAMPLE), str(out), from_dict(PLAN_CFG))
    return out


def fresh(planned: Path, tmp_path: Path, name: str = "out") -> Path:
    """A copy of the planned workspace, so each test augments its own."""
    return Path(shutil.copytree(planned, tmp_path / name))


def variants(out: Path) -> list[dict]:
    return ds.dataset(str(out / "augmented"), format="parquet").to_table().to_pylist()


def plan_of(out: Path):
    return Workspace(str(out)).read("plan", PLAN).to_pandas().set_index("sample_id")


@pytest.fixture(scope="module")
def augmented(planned, tmp_path_factory) -> tuple[Path, object]:
    """The plan's variants, made once at SIZE with the default ops."""
    out = fresh(planned, tmp_path_factory.mktemp("augmented"))
    return out, augment(str(SAMPLE), str(out), from_dict(config(seed=7)))


def test_counts_per_class_and_source_match_the_plan(augmented):
    out, summary = augmented
    plan = plan_of(out)
    asked = plan[plan["augment_copies"] > 0]
    assert len(asked) and asked["keep"].all()
    rows = variants(out)
    assert Counter(r["source_sample_id"] for r in rows) == dict(asked["augment_copies"])
    per_class = asked.groupby("label")["augment_copies"].sum().to_dict()
    assert summary.variants == per_class and summary.made == sum(per_class.values())
    assert {r["sample_id"] for r in rows} == {f"{s}-aug{k}" for s, n in asked["augment_copies"].items()
                                             for k in range(n)}
    assert summary.device == "cpu" and summary.images_per_s > 0


def test_a_variant_decodes_at_the_size_and_names_its_source_and_parameters(augmented):
    out, _ = augmented
    plan = plan_of(out)
    names = [c["name"] for c in json.loads((out / "dataset.json").read_text())["classes"]]
    for r in variants(out):
        with Image.open(io.BytesIO(r["image"]["bytes"])) as im:
            assert im.format == "JPEG" and im.mode == "RGB" and im.size == (SIZE, SIZE)
        assert (r["width"], r["height"]) == (SIZE, SIZE)
        source = plan.loc[r["source_sample_id"]]
        assert r["source_path"] == source["path"] and r["label_name"] == source["label"] == names[r["label"]]
        assert r["image"]["path"] == f"augmented/{Path(source['path']).with_suffix('')}-aug{r['copy_index']}.jpg"
        assert r["augment_seed"] == variant_seed(7, r["sample_id"])
        ops = json.loads(r["augment_ops"])
        assert [op["name"] for op in ops] == DEFAULT_OPS
        drawn = {op["name"]: op for op in ops if op["applied"]}
        assert drawn["resized_crop"]["src"] and drawn["color_jitter"]  # p = 1: always applied
        if "rotation" in drawn:
            assert abs(drawn["rotation"]["degrees"]) <= 15
        jitter = drawn["color_jitter"]
        assert all(0.8 <= jitter[f"{k}_factor"] <= 1.2 for k in ("brightness", "contrast", "saturation"))
        assert abs(jitter["hue_factor"]) <= 0.02
        if "gaussian_blur" in drawn:
            assert 0.1 <= drawn["gaussian_blur"]["sigma"] <= 1.0
        xs = [x for corner in drawn["resized_crop"]["src"] for x in corner]
        assert all(0 <= x <= SIZE - 1 for x in xs)


def test_recorded_parameters_replay_from_the_seed_alone(augmented):
    out, _ = augmented
    rows = variants(out)
    cfg = from_dict(config())
    sampler = Sampler(resolve_ops(cfg.augment.ops, SIZE), SIZE)
    seeds = [r["augment_seed"] for r in rows]
    one_by_one = [sampler.describe(sampler.sample([s])[0]) for s in seeds]
    batched = [sampler.describe(d) for d in sampler.sample(list(reversed(seeds)))][::-1]
    assert one_by_one == batched == [json.loads(r["augment_ops"]) for r in rows]
    assert len({r["augment_ops"] for r in rows}) == len(rows)


def test_variants_are_indexed_in_their_source_split(augmented):
    out, _ = augmented
    plan = plan_of(out)
    index = pq.read_table(out / "index.parquet").to_pandas()
    aug = index[index["shard"].str.startswith("augmented/")]
    assert len(aug) == len(variants(out))
    for sample_id, split, shard in zip(aug["sample_id"], aug["split"], aug["shard"]):
        source = sample_id.rsplit("-aug", 1)[0]
        assert split == plan.at[source, "split"] and shard.startswith(f"augmented/{split}/")
    assert len(index) - len(aug) == plan.loc[plan["keep"], "copies"].sum()  # training shards still listed


def test_same_seed_gives_identical_bytes_and_another_seed_differs(planned, augmented, tmp_path):
    out, _ = augmented
    again = fresh(planned, tmp_path, "again")
    augment(str(SAMPLE), str(again), from_dict(config(seed=7)))
    files = sorted(p.relative_to(out) for p in (out / "augmented").rglob("shard-*.parquet"))
    assert files and all((again / f).read_bytes() == (out / f).read_bytes() for f in files)
    other = fresh(planned, tmp_path, "other")
    augment(str(SAMPLE), str(other), from_dict(config(seed=8)))
    before = {r["sample_id"]: r["image"]["bytes"] for r in variants(out)}
    after = {r["sample_id"]: r["image"]["bytes"] for r in variants(other)}
    assert before.keys() == after.keys() and all(before[k] != after[k] for k in before)


def test_rerun_keeps_complete_shards_and_rewrites_a_missing_one(planned, tmp_path):
    out = fresh(planned, tmp_path)
    cfg = from_dict({**config(batch_size=4), "shard": {"shard_size": "4KB"}})
    first = augment(str(SAMPLE), str(out), cfg)
    shards = sorted((out / "augmented").rglob("shard-*.parquet"))
    assert first.shards == len(shards) >= 2
    before = {p: p.read_bytes() for p in shards}
    assert augment(str(SAMPLE), str(out), cfg).made == 0
    victim = shards[0]
    rows = pq.read_metadata(victim).num_rows
    (victim.parent / "_stats" / (victim.stem + ".json")).unlink()
    victim.unlink()
    redo = augment(str(SAMPLE), str(out), cfg)
    assert redo.made == rows
    assert {p: p.read_bytes() for p in shards} == before


def test_copies_for_chosen_classes_replace_the_plan_variants(augmented, planned, tmp_path):
    out = fresh(planned, tmp_path)
    augment(str(SAMPLE), str(out), from_dict(config()))
    summary = augment(str(SAMPLE), str(out), from_dict(config(copies=2, classes=["cat", "temple"])))
    plan = plan_of(out)
    chosen = plan[plan["keep"] & plan["label"].isin(["cat", "temple"]) & (plan["split"] == "train")]
    rows = variants(out)
    assert Counter(r["source_sample_id"] for r in rows) == dict.fromkeys(chosen.index, 2)
    assert summary.variants == {c: 2 * n for c, n in chosen.groupby("label").size().items()}
    assert summary.per_split == {"train": len(rows)}  # test images are not augmented


def test_a_source_that_no_longer_decodes_is_reported_not_raised(planned, tmp_path):
    src = tmp_path / "src"
    for split in ("train", "test"):
        shutil.copytree(SAMPLE / split, src / split)
    out = fresh(planned, tmp_path)
    plan = plan_of(out)
    broken = plan.loc[plan["augment_copies"].idxmax()]
    (src / broken["path"]).write_bytes(b"not an image any more")
    summary = augment(str(src), str(out), from_dict(config()))
    assert list(summary.failed) == [broken["path"]]
    made = Counter(r["source_sample_id"] for r in variants(out))
    assert broken.name not in made and sum(made.values()) == summary.made > 0


@pytest.mark.parametrize("ops, message", [
    ([{"name": "colour_jitter"}], "augment.ops[0]: unknown augmentation op 'colour_jitter'; valid: color_jitter"),
    ([{"name": "rotation", "degrees": -5}], "augment.ops[0] (rotation): degrees=-5 is not allowed; use a number "
                                            "within 0..180"),
    ([{"name": "horizontal_flip"}, {"name": "perspective", "p": 2}], "augment.ops[1] (perspective): p=2 is not "
                                                                     "allowed; use a number within 0..1"),
    ([{"name": "resized_crop", "scale": [0.9, 0.5]}], "scale=[0.9, 0.5] is not allowed; use two numbers [low, high], "
                                                      "low <= high, within (0, 1]"),
    ([{"name": "gaussian_blur", "kernel_size": 4}], "kernel_size=4 is not allowed; use an odd integer within 3..31"),
    ([{"name": "rotation", "angle": 5}], "augment.ops[0] (rotation): unknown parameter 'angle'; valid: degrees, p"),
    ([{"degrees": 5}], "augment.ops[0] must be a table with a name"),
    ([], "augment.ops must list at least one op"),
])
def test_bad_ops_fail_naming_the_op_and_what_is_allowed(ops, message):
    with pytest.raises(ConfigError) as err:
        resolve(from_dict({"augment": {"ops": ops}}))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_unknown_op_lists_every_valid_op():
    with pytest.raises(ConfigError) as err:
        resolve(from_dict({"augment": {"ops": [{"name": "mixup"}]}}))
    assert all(name in str(err.value) for name in OPS.names())


@pytest.mark.parametrize("augment_cfg, message", [
    ({"device": "tpu"}, "augment.device='tpu' is not allowed; use auto, cpu, cuda or cuda:N"),
    ({"classes": ["cat"]}, "augment.classes needs augment.copies"),
])
def test_bad_settings_fail_before_any_work(planned, tmp_path, augment_cfg, message):
    out = fresh(planned, tmp_path)
    with pytest.raises(ConfigError) as err:
        augment(str(SAMPLE), str(out), from_dict(config(**augment_cfg)))
    assert message in str(err.value) and not (out / "augmented").exists()


def test_unknown_class_lists_the_plan_classes(planned, tmp_path):
    out = fresh(planned, tmp_path)
    with pytest.raises(ConfigError, match="no class 'dog' in the plan; classes: astronaut, cat, coffee"):
        augment(str(SAMPLE), str(out), from_dict(config(copies=1, classes=["dog"])))
    assert not (out / "augmented").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown where there is no GPU")
def test_cuda_without_a_gpu_fails_before_any_work(planned, tmp_path):
    resolve(from_dict({"augment": {"device": "cuda:1"}}))  # a valid name: presence is checked when the stage starts
    out = fresh(planned, tmp_path)
    with pytest.raises(ConfigError, match="augment.device='cuda', but torch .* sees no CUDA device: use --device cpu"):
        augment(str(SAMPLE), str(out), from_dict(config(device="cuda")))
    assert not (out / "augmented").exists()


def test_the_default_config_file_resolves(tmp_path):
    path = tmp_path / "curate.toml"
    path.write_text(default_toml())
    cfg = load_config(path)
    resolve(cfg)
    assert [op.config()["name"] for op in resolve_ops(cfg.augment.ops, cfg.augment.size)] == DEFAULT_OPS


def test_ops_from_a_toml_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[augment]\nsize = 32\n[[augment.ops]]\nname = "vertical_flip"\np = 1.0\n'
                    '[[augment.ops]]\nname = "gaussian_blur"\nkernel_size = 5\nsigma = [0.5, 2]\n')
    cfg = load_config(path)
    resolve(cfg)
    ops = resolve_ops(cfg.augment.ops, cfg.augment.size)
    assert [op.config() for op in ops] == [{"name": "vertical_flip", "p": 1.0},
                                           {"name": "gaussian_blur", "kernel_size": 5, "sigma": [0.5, 2.0], "p": 0.5}]
    x = torch.arange(32, dtype=torch.uint8).repeat(2, 32, 1).unsqueeze(-1).expand(2, 32, 32, 3).contiguous()
    pipeline = Pipeline(ops[:1], 32, torch.device("cpu"))
    flipped = pipeline.apply(x.transpose(1, 2).contiguous(), pipeline.sampler.collate(pipeline.sampler.sample([1, 2])))
    assert torch.equal(flipped, x.transpose(1, 2).flip(1))  # p = 1: every variant is flipped upside down


def test_cli_runs_records_and_reports(planned, tmp_path, runner):
    out = fresh(planned, tmp_path)
    result = runner.invoke(augment_command, [str(out), "--copies", "1", "--classes", "cat, flower", "--seed", "3",
                                             "--batch-size", "2", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "variants in" in result.output and "cat" in result.output
    record = json.loads((out / "runs" / "augment.json").read_text())
    assert record["config"]["augment"]["classes"] == ["cat", "flower"] and record["config"]["augment"]["seed"] == 3
    assert record["summary"]["variants"] == {k: v for k, v in Counter(r["label_name"] for r in variants(out)).items()}


def test_cli_lists_the_ops_with_their_parameters(runner):
    result = runner.invoke(augment_command, ["--list-ops"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert [ln.split(":")[0] for ln in lines if not ln.startswith(" ")] == OPS.names()
    assert "    degrees = 15  (a number within 0..180) angle drawn from [-degrees, degrees]" in lines
    assert "    scale = [0.8, 1]  (two numbers [low, high], low <= high, within (0, 1]) crop area / image area" in lines


@pytest.mark.parametrize("args, message", [
    (["--device", "gpu"], "error: augment.device='gpu' is not allowed; use auto, cpu, cuda or cuda:N"),
    (["--batch-size", "0"], "error: config key augment.batch_size=0 is below the minimum 1"),
    (["--classes", "cat"], "error: augment.classes needs augment.copies: give --copies N with --classes cat"),
])
def test_cli_mistake_is_one_line(planned, tmp_path, runner, args, message):
    from curate.cli import CurateGroup

    group = CurateGroup("curate", commands={"augment": augment_command})
    out = fresh(planned, tmp_path)
    result = runner.invoke(group, ["augment", str(out), *args])
    assert result.exit_code == 2 and result.output.strip() == message
    assert not (out / "augmented").exists()


def test_cli_on_a_folder_that_was_never_scanned(tmp_path, runner):
    from curate.cli import CurateGroup

    result = runner.invoke(CurateGroup("curate", commands={"augment": augment_command}), ["augment", str(tmp_path)])
    assert result.exit_code == 2 and result.output.startswith("error: ") and "curate scan" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_run_stopped_midway_leaves_only_complete_shards(planned, tmp_path, monkeypatch):
    """Each shard is written as its batches come: a run that stops leaves the shards it finished,
    each with its sidecar, and no part of the one it was writing; a rerun makes the rest."""
    out = fresh(planned, tmp_path)
    cfg = from_dict({**config(batch_size=1), "shard": {"shard_size": "12KB"}})  # shards of several batches
    real = augment_stage.run_batches

    def stopping(*args, **kwargs):
        for i, batch in enumerate(real(*args, **kwargs)):
            if i == 8:  # shard 0 holds 7 variants, shard 1 two: this stops in shard 1
                raise RuntimeError("stopped")
            yield batch

    monkeypatch.setattr(augment_stage, "run_batches", stopping)
    with pytest.raises(RuntimeError, match="stopped"):
        augment(str(SAMPLE), str(out), cfg)
    files = sorted(p.relative_to(out) for p in (out / "augmented").rglob("*.parquet"))
    sidecars = sorted(p.parent.parent.relative_to(out) / f"{p.stem}.parquet"
                      for p in (out / "augmented").rglob("_stats/*.json"))
    assert files == sidecars and not [p for p in out.rglob(f"{TMP_MARK}*")]
    monkeypatch.undo()
    summary = augment(str(SAMPLE), str(out), cfg)
    assert 0 < len(files) < summary.shards and summary.made > 0
    reference = fresh(planned, tmp_path, "reference")  # one run that was never stopped
    augment(str(SAMPLE), str(reference), cfg)
    shards = sorted(p.relative_to(reference) for p in (reference / "augmented").rglob("shard-*.parquet"))
    assert len(shards) == summary.shards
    assert all((out / p).read_bytes() == (reference / p).read_bytes() for p in shards)
