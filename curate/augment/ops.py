"""The augmentation ops `augment.ops` may name: one registered unit per op.

Each op declares its parameters with their defaults and allowed ranges, maps them to a Kornia
augmentation, and names the sampled parameters that a variant's provenance records. `resolve_ops`
checks a configured pipeline before any work: an unknown op fails with the list of valid ops, a
bad parameter with its allowed range.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from curate.errors import ConfigError
from curate.registry import Registry

if TYPE_CHECKING:
    import kornia.augmentation as K


def _kornia() -> Any:
    """kornia.augmentation, imported when an op is built (validating a config needs no torch)."""
    import kornia.augmentation

    return kornia.augmentation


@dataclass(frozen=True)
class Param:
    """One op parameter: a number, an odd integer, or an interval [low, high], within lo..hi."""

    name: str
    default: Any
    lo: float
    hi: float
    kind: str = "number"  # number | odd_int | interval
    open_lo: bool = False  # lo itself is not allowed
    help: str = ""

    def allowed(self) -> str:
        bounds = f"({self.lo:g}, {self.hi:g}]" if self.open_lo else f"{self.lo:g}..{self.hi:g}"
        if self.kind == "interval":
            return f"two numbers [low, high], low <= high, within {bounds}"
        if self.kind == "odd_int":
            return f"an odd integer within {bounds}"
        return f"a number within {bounds}"

    def _inside(self, v: float) -> bool:
        return (v > self.lo if self.open_lo else v >= self.lo) and v <= self.hi

    def check(self, where: str, value: Any) -> Any:
        """The validated value (tuples for intervals, floats for numbers); ConfigError otherwise."""
        def number(v: Any) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        bad = ConfigError(f"{where}: {self.name}={value!r} is not allowed; use {self.allowed()}")
        if self.kind == "interval":
            if not (isinstance(value, (list, tuple)) and len(value) == 2 and all(number(v) for v in value)):
                raise bad
            lo, hi = float(value[0]), float(value[1])
            if lo > hi or not (self._inside(lo) and self._inside(hi)):
                raise bad
            return (lo, hi)
        if self.kind == "odd_int":
            if not (isinstance(value, int) and not isinstance(value, bool) and value % 2 == 1 and self._inside(value)):
                raise bad
            return value
        if not (number(value) and self._inside(float(value))):
            raise bad
        return float(value)


def probability(default: float) -> Param:
    return Param("p", default, 0.0, 1.0, help="probability that a variant gets this op")


@dataclass(frozen=True)
class OpSpec:
    """An op: its parameters, how to build the Kornia augmentation, which sampled values to record."""

    name: str
    params: tuple[Param, ...]
    build: Callable[..., K.AugmentationBase2D]  # build(size=..., **params)
    records: tuple[str, ...]  # keys of the sampled parameters a variant's provenance keeps
    doc: str


OPS: Registry[OpSpec] = Registry("augmentation op")


def op(name: str, *params: Param, records: tuple[str, ...] = ()) -> Callable[[Callable], Callable]:
    """Register `fn(size, **params) -> Kornia augmentation` as the op `name`."""
    def wrap(fn: Callable[..., K.AugmentationBase2D]) -> Callable[..., K.AugmentationBase2D]:
        OPS.add(name, OpSpec(name, params, fn, records, (fn.__doc__ or "").strip()))
        return fn

    return wrap


@op("horizontal_flip", probability(0.5))
def _horizontal_flip(size: int, p: float) -> K.AugmentationBase2D:
    """Mirror left-right."""
    return _kornia().RandomHorizontalFlip(p=p)


@op("vertical_flip", probability(0.5))
def _vertical_flip(size: int, p: float) -> K.AugmentationBase2D:
    """Mirror top-bottom."""
    return _kornia().RandomVerticalFlip(p=p)


@op("rotation", Param("degrees", 15.0, 0.0, 180.0, help="angle drawn from [-degrees, degrees]"), probability(0.5),
    records=("degrees",))
def _rotation(size: int, degrees: float, p: float) -> K.AugmentationBase2D:
    """Rotate about the centre by an angle drawn from [-degrees, degrees]; corners outside are black."""
    return _kornia().RandomRotation(degrees=degrees, p=p)


@op("resized_crop", Param("scale", (0.8, 1.0), 0.0, 1.0, "interval", open_lo=True, help="crop area / image area"),
    Param("ratio", (3 / 4, 4 / 3), 0.0, 10.0, "interval", open_lo=True, help="crop aspect ratio"),
    probability(1.0), records=("src",))
def _resized_crop(size: int, scale: tuple[float, float], ratio: tuple[float, float], p: float) -> K.AugmentationBase2D:
    """Crop a random area (`scale` of the image, aspect `ratio`) and resize it back to size x size.
    Records the crop's corners (`src`, x,y pixel coordinates)."""
    return _kornia().RandomResizedCrop((size, size), scale=scale, ratio=ratio, p=p)


@op("color_jitter", Param("brightness", 0.2, 0.0, 1.0, help="factor drawn from [1-b, 1+b]"),
    Param("contrast", 0.2, 0.0, 1.0, help="factor drawn from [1-c, 1+c]"),
    Param("saturation", 0.2, 0.0, 1.0, help="factor drawn from [1-s, 1+s]"),
    Param("hue", 0.02, 0.0, 0.5, help="shift drawn from [-h, h] turns"), probability(1.0),
    records=("brightness_factor", "contrast_factor", "saturation_factor", "hue_factor"))
def _color_jitter(size: int, brightness: float, contrast: float, saturation: float, hue: float,
                  p: float) -> K.AugmentationBase2D:
    """Jitter brightness, contrast, saturation and hue, always in that order (a fixed order lets every
    variant of a batch share one pass; each variant still draws its own factors). A factor of 0 skips
    its step (the hue step is most of the op's time on a CPU)."""
    steps = tuple(i for i, v in enumerate((brightness, contrast, saturation, hue)) if v) or (0,)
    return _kornia().ColorJitter(brightness, contrast, saturation, hue, p=p, order=steps)


@op("gaussian_blur", Param("kernel_size", 3, 3, 31, "odd_int", help="kernel side in pixels"),
    Param("sigma", (0.1, 1.0), 0.0, 10.0, "interval", open_lo=True, help="standard deviation drawn from this"),
    probability(0.5), records=("sigma",))
def _gaussian_blur(size: int, kernel_size: int, sigma: tuple[float, float], p: float) -> K.AugmentationBase2D:
    """Blur with a Gaussian kernel of side `kernel_size` and a standard deviation drawn from `sigma`."""
    return _kornia().RandomGaussianBlur((kernel_size, kernel_size), sigma, p=p)


@op("perspective", Param("distortion_scale", 0.2, 0.0, 1.0, help="how far corners move (fraction of the side)"),
    probability(0.5), records=("end_points",))
def _perspective(size: int, distortion_scale: float, p: float) -> K.AugmentationBase2D:
    """Warp by moving each corner by up to `distortion_scale` of the side; records where the corners
    went (`end_points`, x,y pixel coordinates)."""
    return _kornia().RandomPerspective(distortion_scale=distortion_scale, p=p)


@op("grayscale", probability(0.1))
def _grayscale(size: int, p: float) -> K.AugmentationBase2D:
    """Replace the colours by their luminance (kept as three channels)."""
    return _kornia().RandomGrayscale(p=p)


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return f"{value:g}" if isinstance(value, float) else repr(value)


def describe_ops() -> list[str]:
    """Every op with what it does and its parameters (default, allowed values, meaning)."""
    lines = []
    for spec in OPS:
        lines.append(f"{spec.name}: {' '.join(spec.doc.split())}")
        for p in spec.params:
            lines.append(f"    {p.name} = {_show(p.default)}  ({p.allowed()}) {p.help}".rstrip())
    return lines


@dataclass(frozen=True)
class ResolvedOp:
    """A configured op with every parameter validated and filled in."""

    spec: OpSpec
    params: dict[str, Any]

    def build(self, size: int) -> K.AugmentationBase2D:
        return self.spec.build(size=size, **self.params)

    def config(self) -> dict[str, Any]:
        """The op as configured (name and every parameter), JSON-ready."""
        return {"name": self.spec.name, **{k: list(v) if isinstance(v, tuple) else v for k, v in self.params.items()}}


def resolve_ops(ops: list[Any], size: int) -> list[ResolvedOp]:
    """Validate `augment.ops` (a list of {name = ..., params...}); ConfigError naming the op and what is allowed."""
    valid = ", ".join(sorted(OPS.names()))
    if not isinstance(ops, list) or not ops:
        raise ConfigError(f"augment.ops must list at least one op, e.g. [{{name = \"horizontal_flip\"}}]; "
                          f"valid ops: {valid}")
    resolved = []
    for i, entry in enumerate(ops):
        where = f"augment.ops[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ConfigError(f"{where} must be a table with a name, e.g. {{name = \"rotation\", degrees = 15}}; "
                              f"valid ops: {valid}")
        try:
            spec = OPS.get(entry["name"])
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from exc
        where = f"{where} ({spec.name})"
        params = {p.name: p for p in spec.params}
        unknown = sorted(set(entry) - {"name"} - set(params))
        if unknown:
            raise ConfigError(f"{where}: unknown parameter {unknown[0]!r}; valid: {', '.join(params)}")
        values = {name: p.check(where, entry.get(name, p.default)) for name, p in params.items()}
        if spec.name == "gaussian_blur" and values["kernel_size"] >= size:
            raise ConfigError(f"{where}: kernel_size={values['kernel_size']} must be smaller than augment.size={size}")
        resolved.append(ResolvedOp(spec, values))
    return resolved
