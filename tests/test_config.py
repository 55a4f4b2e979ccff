"""The config file: every key that `curate init` writes is checked for type and range when the file
loads, the elements of its lists and tables too. A bad value is one line naming the key and exit 2
before any work (nothing written to OUT): never a traceback, never a run that goes on with it."""
from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curate.cli import main
from curate.config import Config, default_toml, load_config, protocols, toml_value

SECTIONS = {f.name: f.default_factory for f in dataclasses.fields(Config)}  # type: ignore[misc]
KEYS = [(name, f) for name, cls in SECTIONS.items() for f in dataclasses.fields(cls)]

# TOML values (strings without lone surrogates, which UTF-8 cannot carry).
TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
INT64 = st.integers(-(2**63), 2**63 - 1)
SCALARS: dict[type, st.SearchStrategy[Any]] = {
    bool: st.booleans(), int: INT64, float: st.floats(), str: TEXT, datetime.date: st.dates()}
SCALAR = st.one_of(*SCALARS.values())
TOML_TYPES = {**SCALARS, list: st.lists(SCALAR, max_size=3), dict: st.dictionaries(TEXT, SCALAR, max_size=3)}
NON_FINITE = st.sampled_from([float("nan"), float("inf"), float("-inf")])
BEYOND_INT64 = st.integers(min_value=2**63) | st.integers(max_value=-(2**63) - 1)
UNITS = {"B": 1, "KB": 2**10, "MB": 2**20, "GB": 2**30}


def other_types(kind: Any) -> st.SearchStrategy[Any]:
    """TOML values of every type that a key of annotation `kind` does not take (a number key takes
    integers: `out_of_range` covers those)."""
    origin = get_origin(kind) or kind
    takes = {origin, int} if origin is float else {origin}
    return st.one_of(*(values for t, values in TOML_TYPES.items() if t not in takes))


def out_of_range(kind: type, low: float | None, high: float | None) -> st.SearchStrategy[Any]:
    """Numbers outside low..high and integers beyond 64 bits."""
    options = [BEYOND_INT64]
    if low is not None:
        options.append(st.integers(max_value=int(low) - 1 if low == int(low) else int(low)))
    if high is not None:
        options.append(st.integers(min_value=int(high) + 1))
    if kind is float and low is not None:
        options.append(st.floats(max_value=low, exclude_max=True, allow_nan=False))
    if kind is float and high is not None:
        options.append(st.floats(min_value=high, exclude_min=True, allow_nan=False, allow_infinity=False))
    return st.one_of(options)


def bad_sizes(low: int, high: int) -> st.SearchStrategy[str]:
    """Sizes that are not a number and a unit (B, KB, MB, GB) giving low..high bytes."""
    return st.one_of(
        st.builds(lambda n, unit: f"{n}{unit}", st.integers(max_value=0) | st.floats(max_value=0.0) | NON_FINITE,
                  st.sampled_from(list(UNITS))),
        st.integers(0, low - 1).map(lambda n: f"{n}B"),
        st.integers(min_value=high // UNITS["GB"] + 1).map(lambda n: f"{n}GB"),
        st.sampled_from(["1e400MB", "-5MB", "0MB", "0.5KB", "256", "256TB", "MB", "", "256 M B"]),
        TEXT.filter(lambda t: not any(c.isdigit() for c in t)))


def bad_values(kind: Any, meta: Any) -> dict[str, st.SearchStrategy[Any]]:
    """Values that a key of annotation `kind` and `option` metadata `meta` must refuse, by what is
    wrong with them (so that each kind of mistake is tried for each key)."""
    origin, args = get_origin(kind) or kind, get_args(kind)
    if kind is Any:
        return {"beyond 64 bits": BEYOND_INT64 | st.lists(BEYOND_INT64, min_size=1, max_size=2)}
    bad = {"wrong type": other_types(kind)}
    element = {"choices": allowed(meta.get("items"))}
    if origin is list:
        bad["bad element"] = st.lists(st.one_of(*bad_values(args[0], element).values()), min_size=1, max_size=3)
    if origin is dict:
        bad["bad value"] = st.dictionaries(TEXT, st.one_of(*bad_values(args[1], element).values()), min_size=1,
                                           max_size=3)
    if origin is dict and meta.get("keys"):
        names = set(allowed(meta["keys"]))
        bad["unknown key"] = st.dictionaries(TEXT.filter(lambda k: k not in names), st.just({}), min_size=1,
                                             max_size=2)
    if origin in (int, float):
        bad["out of range"] = out_of_range(origin, meta.get("min"), meta.get("max"))
    if origin is float:
        bad["not finite"] = NON_FINITE
    if origin is str and meta.get("choices"):
        bad["not a choice"] = TEXT.filter(lambda t: t not in meta["choices"])
    if origin is str and meta.get("size"):
        bad["bad size"] = bad_sizes(*meta["size"])
    return bad


def allowed(names: Any) -> tuple[str, ...]:
    return names() if callable(names) else tuple(names or ())


def run_with(tmp_path: Path, tree: Path, runner: Any, config: str) -> tuple[Any, Path]:
    """`curate run tree -o OUT --config FILE` with `config` as FILE's text."""
    path = tmp_path / "curate.toml"
    path.write_text(config, encoding="utf-8")
    out = tmp_path / "out"
    return runner.invoke(main, ["run", str(tree), "-o", str(out), "--config", str(path)]), out


def assert_refused(result: Any, out: Path, *expected: str) -> None:
    """Exit 2, one line of output saying `expected`, no traceback, nothing in OUT."""
    lines = result.output.splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    assert not out.exists()
    for text in expected:
        assert text in lines[0]


HINTS = {name: get_type_hints(cls) for name, cls in SECTIONS.items()}
CASES = [(section, f, mistake) for section, f in KEYS for mistake in bad_values(HINTS[section][f.name], f.metadata)]


@pytest.mark.parametrize(("section", "f", "mistake"), CASES, ids=[f"{s}.{f.name}-{m}" for s, f, m in CASES])
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_bad_value_of_any_key_is_one_line_and_exit_2(section, f, mistake, data, tree, tmp_path, runner):
    value = data.draw(bad_values(HINTS[section][f.name], f.metadata)[mistake], label=f"{section}.{f.name}")
    result, out = run_with(tmp_path, tree, runner, f"[{section}]\n{f.name} = {toml_value(value)}\n")
    assert_refused(result, out, f"{section}.{f.name}")


@pytest.mark.parametrize(("config", "expected"), [
    ('[shard]\nshard_size = "1e400MB"', "shard.shard_size='1e400MB' is not allowed; use a size within 1KB..64GB"),
    ('[shard]\nshard_size = "0MB"', "shard.shard_size='0MB' is not allowed; use a size within 1KB..64GB"),
    ('[shard]\nshard_size = "-5MB"', "shard.shard_size='-5MB' is not allowed; use a size within 1KB..64GB"),
    ("[scan]\nignore = [1]", "scan.ignore[0] must be a string, got 1"),
    ('[storage]\noptions = {s3 = "x"}', "storage.options.s3 must be a table, got 'x'"),
    ("[storage]\noptions = {s4 = {}}", "storage.options has an unknown key 's4'; valid keys: abfs,"),
    ("[scan]\nmax_memory_mb = 9223372036854775807", "scan.max_memory_mb=9223372036854775807 is above the maximum "
                                                    "1048576"),
    ("[dedup]\nsimilarity = nan", "dedup.similarity=nan is not allowed; use a finite number within 0.0..1.0"),
    ("[dedup]\nsimilarity = 1" + "0" * 400, "dedup.similarity=1000"),
    ('[rebalance]\napply_to = ["bogus"]', "rebalance.apply_to[0]='bogus' is not allowed; choose one of: train, val, "
                                          "test"),
    ("[validate]\nthresholds = {blurry = inf}", "validate.thresholds.blurry=inf is not allowed; use a finite number"),
    ('[validate]\nseverities = {blurry = "fatal"}', "validate.severities.blurry='fatal' is not allowed; choose one of: "
                                                    "error, warning, info"),
    ('[validate]\nexclude = ["fatal"]', "validate.exclude[0]='fatal' is not allowed"),
    ("[augment]\nops = [{name = \"rotation\", degrees = 99999999999999999999}]",
     "augment.ops[0].degrees=99999999999999999999 is not allowed; integers are 64-bit"),
    ('[scan]\n"a\\nb" = 1', 'unknown config key scan."a\\nb"'),
    ("[publish]\nbatch_size = 1e3", "publish.batch_size must be an integer, got 1000.0"),
    ("[scan]\nisolate = 1", "scan.isolate must be true or false, got 1"),
    ("[scan]\ndecode_size = 1979-05-27", "scan.decode_size must be an integer, got datetime.date(1979, 5, 27)"),
    ('[rebalance]\nsplit = "nan,nan,nan"', "rebalance.split 'nan,nan,nan': three non-negative fractions"),
    ('[rebalance]\nsplit = "nan,0.5,0.5"', "rebalance.split 'nan,0.5,0.5': three non-negative fractions"),
    ('[rebalance]\nstrategy = "target"\ntarget = "power:nan"', "rebalance.target 'power:nan': power needs a finite"),
    ('[rebalance]\nstrategy = "target"\ntarget = "power:1e400"', "rebalance.target 'power:1e400': power needs a "
                                                                   "finite"),
    ("[scan]\nmax_memory_mb = " + "9" * 5000, "is not valid TOML"),
    ("[scan]\nignore = " + "[" * 1000 + "]" * 1000, "is not valid TOML: lists or tables nested too deeply"),
], ids=lambda v: v[:40])
def test_the_reported_bad_values_are_refused_with_the_key(config, expected, tree, tmp_path, runner):
    result, out = run_with(tmp_path, tree, runner, config + "\n")
    assert_refused(result, out, expected)


@pytest.mark.parametrize(("config", "expected"), [
    ('[validate]\ndisabled = ["odd_sizes"]', "validate.disabled: unknown check 'odd_sizes'; valid checks: animated,"),
    ("[validate]\nthresholds = {blury = 10}", "validate.thresholds: unknown check 'blury'"),
    ('[validate]\nseverities = {blury = "info"}', "validate.severities: unknown check 'blury'"),
    ('[dedup]\nkeep_policy = ["size"]', "dedup.keep_policy: unknown keep criterion 'size'; valid: file_size, format"),
    ('[rebalance]\nstrategy = "caps"', "rebalance.strategy: unknown strategy 'caps'; valid: cap, clamp, floor"),
    ('[augment]\nops = [{name = "spin"}]', "augment.ops[0]: unknown augmentation op 'spin'; valid: color_jitter"),
    ('[augment]\nops = [{name = "rotation", degrees = nan}]', "augment.ops[0] (rotation): degrees=nan is not allowed"),
    ('[run]\nstages = ["shards"]', "run.stages: unknown stage 'shards'; valid stages: scan,"),
])
def test_names_are_checked_against_the_registries_before_any_work(config, expected, tree, tmp_path, runner):
    """Check names, keep criteria, strategies, ops and stages live in their stages' registries: the
    stage checks refuse an unknown one up front, naming the key and the valid names."""
    result, out = run_with(tmp_path, tree, runner, config + "\n")
    assert_refused(result, out, expected)


@pytest.mark.parametrize(("args", "expected"), [
    (["dedup", "OUT", "--similarity", "nan"], "dedup.similarity=nan is not allowed"),
    (["shard", "OUT", "--shard-size", "0MB"], "shard.shard_size='0MB' is not allowed"),
    (["rebalance", "OUT", "--seed", "-1"], "rebalance.seed=-1 is below the minimum 0"),
])
def test_command_line_options_are_checked_like_the_file(args, expected, tmp_path, runner):
    out = tmp_path / "out"
    result = runner.invoke(main, [str(out) if a == "OUT" else a for a in args])
    assert_refused(result, out, expected)


def test_the_written_defaults_load_and_state_every_range(tmp_path):
    path = tmp_path / "curate.toml"
    path.write_text(default_toml())
    assert load_config(path) == Config()
    text = default_toml()
    assert "(range: 256..1048576)" in text and "(range: 1KB..64GB)" in text and "(range: 0.0..1.0)" in text
    assert "(each one of: train, val, test)" in text and "(each one of: error, warning, info)" in text
    assert f"(keys: {', '.join(protocols())})" in text
    for section, f in KEYS:
        if HINTS[section][f.name] in (int, float):
            assert f.metadata["min"] is not None and f.metadata["max"] is not None, f"{section}.{f.name}"


def test_values_at_the_edges_of_their_ranges_load(tmp_path):
    path = tmp_path / "curate.toml"
    path.write_text('[scan]\nmax_memory_mb = 1048576\n[shard]\nshard_size = "64GB"\n[dedup]\nsimilarity = 1\n'
                    '[validate]\nthresholds = {small_class = 50}\n[rebalance]\napply_to = ["train", "val", "test"]\n'
                    '[storage]\noptions = {s3 = {endpoint_url = "http://127.0.0.1:9000", anon = true}}\n')
    cfg = load_config(path)
    assert (cfg.scan.max_memory_mb, cfg.shard.shard_size, cfg.dedup.similarity) == (2**20, "64GB", 1.0)
    assert cfg.validate.thresholds == {"small_class": 50.0} and cfg.rebalance.apply_to == ["train", "val", "test"]
    assert cfg.storage.options == {"s3": {"endpoint_url": "http://127.0.0.1:9000", "anon": True}}
    path.write_text('[shard]\nshard_size = "1KB"\n')
    assert load_config(path).shard.shard_size == "1KB"
