"""The saved views curate publishes: one per decision, each named and documented.

Every view is a filter on the published fields (see `curate.publish.fields`) of the published
images (the selection of `curate.publish.select`); `duplicates` is grouped by cluster in the
app. Views curate saved before and no longer makes (an error code that is gone) are deleted;
views the user saved are left alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable

from curate.schema import SPLITS


@dataclass(frozen=True)
class ViewSpec:
    name: str
    description: str
    select: Callable[[Any, Any], Any]  # (dataset, ViewField) -> the view's samples
    group_by: str | None = None  # the app shows the view grouped by this field
    order_by: str | None = None


def _equals(field: str, value: str, kept: bool = False) -> Callable[[Any, Any], Any]:
    """Samples whose `field` is `value` (and that the plan keeps, with `kept`)."""

    def select(ds: Any, F: Any) -> Any:
        match = F(field) == value
        return ds.match(match & (F("keep") == True) if kept else match)  # noqa: E712 (a FiftyOne expression)

    return select


def specs(error_codes: list[str]) -> list[ViewSpec]:
    """Every view, in the order the app lists them."""
    return [
        ViewSpec("scanned", "every published image as scanned, before curation (no augmented variants)",
                 lambda ds, F: ds.match(F("augmented") == False)),  # noqa: E712 (a FiftyOne expression)
        ViewSpec("duplicates", "duplicate clusters, grouped by cluster_id; dup_keep marks the member kept",
                 lambda ds, F: ds.exists("cluster_id"), group_by="cluster_id", order_by="dup_distance"),
        ViewSpec("semantic_duplicates", "duplicate clusters joined by embeddings (crops, borders, watermarks), "
                 "grouped by cluster_id",
                 lambda ds, F: ds.match(F("cluster_id").is_in(ds.match(F("dup_kind") == "semantic")
                                                              .distinct("cluster_id"))),
                 group_by="cluster_id", order_by="dup_distance"),
        ViewSpec("outliers", "images far from every image of their class (the outlier check), farthest first",
                 lambda ds, F: ds.match(F("issues").contains("outlier")).sort_by("outlier_score")),
        ViewSpec("label_suspects", "images whose embedding says another class (label_suspect; see "
                 "suggested_label), most suspect first",
                 lambda ds, F: ds.match(F("issues").contains("label_suspect")).sort_by("label_confidence")),
        ViewSpec("leaks", "duplicate clusters that span splits (train/val/test leakage)",
                 lambda ds, F: ds.match(F("leak") == True).sort_by("cluster_id")),  # noqa: E712
        ViewSpec("label_conflicts", "duplicate clusters whose members carry different labels",
                 lambda ds, F: ds.match(F("label_conflict") == True).sort_by("cluster_id")),  # noqa: E712
        ViewSpec("errors", "files that are not usable images (status error), any error_code",
                 lambda ds, F: ds.match(F("status") == "error")),
        *[ViewSpec(f"errors-{code}", f"files with error_code {code}", _equals("error_code", code))
          for code in error_codes],
        ViewSpec("warnings", "images with at least one warning-severity issue (see the issues field)",
                 lambda ds, F: ds.match(F("severities").contains("warning"))),
        ViewSpec("excluded", "everything the plan leaves out, sorted by reason",
                 lambda ds, F: ds.match(F("keep") == False).sort_by("reason")),  # noqa: E712
        ViewSpec("augmented", "augmented variants written by curate augment (source_sample_id: their image)",
                 lambda ds, F: ds.match(F("augmented") == True)),  # noqa: E712
        *[ViewSpec(split, f"the curated {split} split: kept images and their augmented variants",
                   _equals("split", split, kept=True)) for split in SPLITS],
        ViewSpec("kept", "everything the plan keeps, every split, augmented variants included",
                 lambda ds, F: ds.match(F("keep") == True)),  # noqa: E712
    ]


def save_views(fo: ModuleType, ds: Any, error_codes: list[str], previous: list[str]) -> dict[str, int]:
    """Save every view (replacing curate's earlier ones); return name -> samples in it."""
    F = fo.ViewField
    counts: dict[str, int] = {}
    for spec in specs(error_codes):
        view = spec.select(ds, F)
        counts[spec.name] = view.count()
        by_class = view.count_values("ground_truth.label")
        description = spec.description
        if by_class:
            description += "; per class: " + ", ".join(f"{c or '(none)'} {n}" for c, n in sorted(by_class.items(),
                                                                                         key=lambda kv: str(kv[0])))
        if spec.group_by:
            view = view.group_by(spec.group_by, order_by=spec.order_by)
        ds.save_view(spec.name, view, description=description, overwrite=True)
    for name in previous:
        if name not in counts and ds.has_saved_view(name):
            ds.delete_saved_view(name)
    return counts
