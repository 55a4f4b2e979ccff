"""Collection-level label checks: they look at class counts, not at single images.

Each returns issue rows (sample_id null, label set where one class is meant).
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from curate.schema import Severity
from curate.validate.checks import Level, check


def _row(check: str, label: str | None, score: float, threshold: float, message: str) -> dict[str, Any]:
    return {"sample_id": None, "path": None, "label": label, "check": check, "score": float(score),
            "threshold": float(threshold), "message": message}


@check("small_class", Severity.WARNING, 10, level=Level.COLLECTION,
       help="class with fewer usable images than the threshold")
def _small_class(counts: pd.DataFrame, threshold: float) -> list[dict[str, Any]]:
    per_class = counts.groupby("label")["n"].sum()
    return [_row("small_class", label, n, threshold, f"class {label} has {n} images (< {threshold:.0f})")
            for label, n in per_class.items() if n < threshold]


@check("single_class", Severity.ERROR, 2, level=Level.COLLECTION,
       help="fewer than two classes: nothing to classify")
def _single_class(counts: pd.DataFrame, threshold: float) -> list[dict[str, Any]]:
    n = counts["label"].nunique()
    return [_row("single_class", None, n, threshold, f"{n} class(es) found")] if n < threshold else []


@check("imbalance", Severity.WARNING, 10, level=Level.COLLECTION,
       help="largest class / smallest class above the threshold")
def _imbalance(counts: pd.DataFrame, threshold: float) -> list[dict[str, Any]]:
    per_class = counts.groupby("label")["n"].sum()
    if len(per_class) < 2:
        return []
    ratio = per_class.max() / per_class.min()
    if ratio <= threshold:
        return []
    return [_row("imbalance", None, ratio, threshold,
                 f"imbalance {ratio:.1f}:1 ({per_class.idxmax()} {per_class.max()} vs "
                 f"{per_class.idxmin()} {per_class.min()})")]


@check("split_missing_class", Severity.WARNING, 0.5, level=Level.COLLECTION,
       help="a class present in val/test but absent from train")
def _split_missing_class(counts: pd.DataFrame, threshold: float) -> list[dict[str, Any]]:
    if "train" not in set(counts["split"].dropna()):
        return []
    train = set(counts.loc[counts["split"] == "train", "label"])
    rows = []
    for split in sorted(set(counts["split"].dropna()) - {"train"}):
        for label in sorted(set(counts.loc[counts["split"] == split, "label"]) - train):
            rows.append(_row("split_missing_class", label, 1, threshold, f"class {label} is in {split} but not train"))
    return rows
