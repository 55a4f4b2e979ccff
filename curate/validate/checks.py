"""The one check registry (`CHECKS`, `@check`), and the per-image checks.

Every check, whatever it looks at, is one `Check` with a `level`: a per-image check (here) gets
the manifest rows of one partition (a pandas DataFrame) and the collection context, and returns a
score per row (NaN = not applicable); it fires where the score is on the wrong side of its
threshold (`fires_below` or above). Collection checks (labels, balance:
`curate.validate.collection`) return whole rows of their own; embedding checks
(`curate.validate.embedding`) score labelled embeddings. Importing `curate.validate` registers
all of them. Defaults live next to each check; `[validate]` in the config overrides thresholds
and severities.

Default thresholds were chosen on sample_data/ and the tests' generated images (see
benchmarks/RESULTS.md, "Validate"): every planted case fires, no ordinary photo fires; `blurry`'s on
separate calibration photographs and checked on held-out ones (RESULTS.md, "Blur").
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd

from curate.imaging.formats import extension_matches
from curate.registry import Registry
from curate.schema import ErrorCode, Severity


@dataclass(frozen=True)
class Context:
    """Facts about the whole collection that single-row checks need."""

    median_area: float
    classes: frozenset[str] | None  # declared class list, or None


class Level(str, enum.Enum):
    """What a check looks at, and so what its `score` function takes and gives."""

    IMAGE = "image"  # score(rows of one manifest partition, Context) -> a score per row (NaN = not applicable)
    COLLECTION = "collection"  # score(counts by label and split, threshold) -> issue rows of its own
    EMBEDDING = "embedding"  # score(Labelled images with their embeddings) -> Scored (curate/validate/embedding.py)


@dataclass(frozen=True)
class Check:
    """One registered check: it fires where its score is on the wrong side of its threshold
    (`fires_below` or above); `message` is a format string ({score}, {threshold}, and for
    embedding checks {label} and {suggested})."""

    name: str
    level: Level
    severity: Severity
    threshold: float
    help: str
    score: Callable[..., Any]
    fires_below: bool = False
    message: str = ""


CHECKS: Registry[Check] = Registry("check")


def check(name: str, severity: Severity, threshold: float, *, help: str, level: Level = Level.IMAGE,
          below: bool = False, message: str = "") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a scoring function as a check of `level` (see `Level` for what it takes)."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        CHECKS.add(name, Check(name, level, severity, threshold, help, fn, below, message))
        return fn

    return wrap


def of_level(level: Level) -> list[Check]:
    """The registered checks of `level`, in registration order."""
    return [c for c in CHECKS if c.level is level]


def _flag(mask: pd.Series) -> pd.Series:
    """1.0 where `mask` holds, NaN elsewhere (a flag check fires above threshold 0.5)."""
    return pd.Series(np.where(mask.fillna(False).astype(bool), 1.0, np.nan), index=mask.index)


# -- integrity: the scan's error codes ------------------------------------------------------
_INTEGRITY_HELP = {
    ErrorCode.ZERO_BYTE: "the file is empty",
    ErrorCode.NOT_IMAGE: "the bytes are not an image",
    ErrorCode.UNSUPPORTED_CODEC: "an image codec the installed decoders cannot read (HEIC, AVIF, 12-bit JPEG, …)",
    ErrorCode.TRUNCATED: "the file ends early (error message says whether a lenient decode recovers it)",
    ErrorCode.CORRUPT: "the pixel data or header cannot be decoded, or the container breaks a rule strict decoders "
                       "enforce (chunk CRC, marker sequence, block structure: see the message)",
    ErrorCode.DECOMPRESSION_BOMB: "more pixels than scan.max_pixels",
    ErrorCode.UNREADABLE: "the file could not be read (permissions, I/O error)",
    ErrorCode.VANISHED: "the file disappeared during the scan",
    ErrorCode.TIMEOUT: "decoding took longer than scan.timeout_s (a decoder loop)",
    ErrorCode.MEMORY_LIMIT: "decoding needed more memory than scan.max_memory_mb",
    ErrorCode.DECODER_CRASHED: "the decoder process died on this file",
}


def _integrity(code: ErrorCode) -> Callable[[pd.DataFrame, Context], pd.Series]:
    def score(rows: pd.DataFrame, ctx: Context) -> pd.Series:
        return _flag(rows["error_code"] == code.value)

    return score


for _code, _help in _INTEGRITY_HELP.items():
    check(_code.value, Severity.ERROR, 0.5, help=_help, message=_code.value.replace("_", " "))(_integrity(_code))

# -- format facts --------------------------------------------------------------------------
@check("extension_mismatch", Severity.WARNING, 0.5, below=False, message="extension does not match the bytes",
       help="the file extension does not match the format detected from the bytes")
def _extension_mismatch(rows: pd.DataFrame, ctx: Context) -> pd.Series:
    mismatch = [isinstance(f, str) and not extension_matches(f, e) for f, e in zip(rows["format"], rows["extension"])]
    return _flag(pd.Series(mismatch, index=rows.index))


@check("nonconforming", Severity.WARNING, 0, below=False, message="{score:.0f} format rule(s) broken; decoders "
       "tolerate them (manifest structure_warnings)",
       help="the container breaks its format's rules in ways decoders tolerate (ancillary PNG chunk out of place "
            "or with a bad CRC, bytes before a JPEG marker, trailing bytes); score: how many")
def _nonconforming(rows: pd.DataFrame, ctx: Context) -> pd.Series:
    warnings = rows["structure_warnings"]
    return warnings.map(lambda w: float(len(w)) if w is not None and len(w) else np.nan)


@check("animated", Severity.WARNING, 1, below=False, message="{score:.0f} frames; frame 0 is used",
       help="animated or multi-frame file (score: frame count); only frame 0 is used")
def _animated(rows: pd.DataFrame, ctx: Context) -> pd.Series:
    return rows["n_frames"].astype("float64")


@check("high_bit_depth", Severity.INFO, 8, below=False, message="{score:.0f} bits per channel, scaled to 8",
       help="more than 8 bits per channel (score: bits); scaled to 8 bits, not clipped")
def _high_bit_depth(rows: pd.DataFrame, ctx: Context) -> pd.Series:
    return rows["bit_depth"].where(rows["status"] == "ok").astype("float64")


@check("cmyk", Severity.INFO, 0.5, below=False, message="CMYK, converted to RGB through its ICC profile",
       help="CMYK colour; converted to RGB (through its ICC profile when it has one)")
def _cmyk(rows: pd.DataFrame, ctx: Context) -> pd.Series:
    return _flag(rows["mode"] == "CMYK")


@check("palette_alpha", Severity.INFO, 0.5, below=False, message="transparent; composited over the background",
       help="palette or alpha transparency; composited over scan.background")
def _palette_alpha(rows: pd.DataFrame, ctx: Context) -> pd.Series:
    return _flag(rows["has_alpha"] == True)  # noqa: E712 (nullable column)


@check("bad_exif", Severity.WARNING, 0.5, below=False, message="EXIF could not be read; orientation assumed 1",
       help="malformed EXIF (orientation assumed to be 1)")
def _bad_exif(rows: pd.DataFrame, ctx: Context) -> pd.Series:
    return _flag(rows["exif_error"].notna())


@check("exif_rotated", Severity.INFO, 1, below=False, message="EXIF orientation {score:.0f} applied",
       help="EXIF orientation other than 1 (applied before hashing and statistics)")
def _exif_rotated(rows: pd.DataFrame, ctx: Context) -> pd.Series:
    return rows["exif_orientation"].where(rows["status"] == "ok").astype("float64")


# -- image quality (scores from the scan's thumbnail statistics) -----------------------------
@check("dark", Severity.WARNING, 40, below=True, message="95th luma percentile {score:.0f} < {threshold:.0f}",
       help="too dark: 95th percentile of luma (0-255)")
def _dark(rows: pd.DataFrame, ctx: Context) -> pd.Series:
    return rows["brightness_p95"].astype("float64")


@check("light", Severity.WARNING, 225, below=False, message="5th luma percentile {score:.0f} > {threshold:.0f}",
       help="too light / washed out: 5th percentile of luma (0-255)")
def _light(rows: pd.DataFrame, ctx: Context) -> pd.Series:
    return rows["brightness_p05"].astype("float64")


# Chosen on benchmarks/blur.py's calibration photographs only (those of installed packages: 352 crops
# of 11 scenes and sample_data's 50 ordinary photos, each also blurred): midway between the clean
# photos' 1st percentile and the Gaussian radius 3 copies' 99th. Reported on 27 held-out scenes
# (Debian's wallpapers) in benchmarks/RESULTS.md, "Blur".
BLURRY_THRESHOLD = 0.75


@check("blurry", Severity.WARNING, BLURRY_THRESHOLD, below=True,
       message="edge sharpness {score:.2f} < {threshold:.2f}",
       help="blurry: edge sharpness, the steepest edges' |gradient| / local range at <= 512 px (~1 sharp, "
            "~0.5 blurred; curate.imaging.blur)")
def _blurry(rows: pd.DataFrame, ctx: Context) -> pd.Series:
    # NaN (not scored) for rows of a manifest written before the column existed
    return rows["edge_sharpness"].astype("float64")


@check("low_information", Severity.WARNING, 3.0, below=True, message="entropy {score:.2f} bits < {threshold:.2f}",
       help="little information: entropy of the luma histogram (bits, 0-8)")
def _low_information(rows: pd.DataFrame, ctx: Context) -> pd.Series:
    return rows["entropy"].astype("float64")


@check("odd_aspect_ratio", Severity.WARNING, 3.0, below=False, message="aspect ratio {score:.1f}:1",
       help="long side / short side")
def _odd_aspect_ratio(rows: pd.DataFrame, ctx: Context) -> pd.Series:
    w, h = rows["width"].astype("float64"), rows["height"].astype("float64")
    return (np.maximum(w, h) / np.minimum(w, h)).where(rows["status"] == "ok")


@check("odd_size", Severity.INFO, 4.0, below=False, message="area is 2^{score:.1f} times off the collection median",
       help="pixel area far from the collection's median: |log2(area / median area)|")
def _odd_size(rows: pd.DataFrame, ctx: Context) -> pd.Series:
    area = rows["width"].astype("float64") * rows["height"].astype("float64")
    return np.abs(np.log2(area / ctx.median_area)).where(rows["status"] == "ok")


@check("too_small", Severity.WARNING, 32, below=True, message="shorter side {score:.0f} px < {threshold:.0f}",
       help="shorter side in pixels, after EXIF orientation")
def _too_small(rows: pd.DataFrame, ctx: Context) -> pd.Series:
    return np.minimum(rows["width"], rows["height"]).astype("float64").where(rows["status"] == "ok")


@check("grayscale", Severity.INFO, 0.01, below=True, message="channel spread {score:.3f}: grayscale",
       help="grayscale, including RGB whose channels are equal: mean max-min channel spread (0-1)")
def _grayscale(rows: pd.DataFrame, ctx: Context) -> pd.Series:
    return rows["channel_spread"].astype("float64")


# -- labels (per image) -------------------------------------------------------------------
@check("unlabelled", Severity.WARNING, 0.5, below=False, message="no label",
       help="image without a label (neither folder nor labels file gives one)")
def _unlabelled(rows: pd.DataFrame, ctx: Context) -> pd.Series:
    return _flag((rows["status"] == "ok") & rows["label"].isna())


@check("unknown_label", Severity.ERROR, 0.5, below=False, message="label not in the declared class list",
       help="label outside the class list given with --classes / validate.classes")
def _unknown_label(rows: pd.DataFrame, ctx: Context) -> pd.Series:
    if ctx.classes is None:
        return pd.Series(np.nan, index=rows.index)
    return _flag(rows["label"].notna() & ~rows["label"].isin(ctx.classes))
