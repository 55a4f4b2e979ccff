"""The report's plots, each a small deterministic PNG (matplotlib's Agg canvas, no pyplot state).

Every function takes plain data from `curate.report.facts` and returns PNG bytes; with nothing
to show, the figure says so rather than being left out. Names (classes, splits, the model) are
drawn literally: through `curate.view.visible`, cut to LABEL_CHARS, with matplotlib's
math text and TeX off (`_literal`), so a `$` in a class name is a dollar sign, not a formula.
"""
from __future__ import annotations

import functools
import io
import warnings
from typing import Any, Callable, Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator
from PIL import Image, ImageOps

from curate.view import visible

DPI = 100
WIDTH = 8.0
STAGE_COLORS = {"before": "#9aa5b1", "after": "#2f6fdf"}
SEVERITY_COLORS = {"error": "#d64545", "warning": "#e8a33d", "info": "#6c8ebf"}
KIND_COLORS = ("#2f6fdf", "#9aa5b1", "#d64545")
THUMB = 112
LABEL_CHARS = 30  # a name longer than this is cut in the middle on a plot (the page's tables show it whole)


def _literal(plot: Callable[..., bytes]) -> Callable[..., bytes]:
    """`plot` drawn with math text and TeX off: every Text it makes (titles, tick labels, legends,
    made at creation or when drawn) shows its string as written. A character the font lacks is
    drawn as a box without a warning per glyph (the page's tables show the name whole)."""
    @functools.wraps(plot)
    def drawn(*args: Any, **kwargs: Any) -> bytes:
        with matplotlib.rc_context({"text.parse_math": False, "text.usetex": False}), warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Glyph .* missing from font", UserWarning)
            return plot(*args, **kwargs)

    return drawn


def _name(text: Any) -> str:
    """A name as a plot shows it."""
    return visible(str(text), LABEL_CHARS)


def _figure(height: float, width: float = WIDTH) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _nothing(title: str, message: str) -> bytes:
    fig = _figure(1.4)
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.set_title(title, loc="left")
    ax.text(0.5, 0.4, message, ha="center", va="center", fontsize=11, color="#555555")
    return _png(fig)


def _bars(ax: Any, labels: list[str], series: Mapping[str, Sequence[float]], colors: dict[str, str] | tuple[str, ...],
          horizontal: bool = False) -> None:
    """Grouped bars: one group per label, one bar per series, values written on the bars."""
    x = np.arange(len(labels))
    width = 0.8 / max(len(series), 1)
    for i, (name, values) in enumerate(series.items()):
        color = colors[name] if isinstance(colors, dict) else colors[i % len(colors)]
        offset = x - 0.4 + width * (i + 0.5)
        bars = (ax.barh if horizontal else ax.bar)(offset, values, width, label=name, color=color)
        ax.bar_label(bars, labels=[f"{v:g}" for v in values], fontsize=7, padding=2)
    names = [_name(label) for label in labels]
    if horizontal:
        ax.set_yticks(x, names, fontsize=8)
        ax.invert_yaxis()
    else:
        ax.set_xticks(x, names, fontsize=8, rotation=30 if len(labels) > 6 else 0,
                      ha="right" if len(labels) > 6 else "center")
    if all(float(v).is_integer() for values in series.values() for v in values):
        (ax.xaxis if horizontal else ax.yaxis).set_major_locator(MaxNLocator(integer=True))
    ax.spines[["top", "right"]].set_visible(False)
    ax.margins(x=0.02, y=0.15)


@_literal
def class_counts(counts: dict[str, dict[str, dict[str, int]]], classes: list[str]) -> bytes:
    """Samples per class before and after curation, one panel per split."""
    splits = list(dict.fromkeys([*counts["before"], *counts["after"]]))
    if not splits or not classes:
        return _nothing("class counts", "no labelled images")
    fig = _figure(1.2 + 2.2 * len(splits))
    for i, split in enumerate(splits):
        ax = fig.add_subplot(len(splits), 1, i + 1)
        series = {stage: [counts[stage].get(split, {}).get(c, 0) for c in classes] for stage in ("before", "after")}
        _bars(ax, classes, series, STAGE_COLORS)
        ax.set_title(f"{_name(split)}: samples per class (before: as scanned; after: kept, with repeats and augmented)",
                     loc="left", fontsize=9)
        if i == 0:
            ax.legend(fontsize=8, frameon=False)
    return _png(fig)


@_literal
def imbalance(ratios: dict[str, dict[str, float]]) -> bytes:
    """Largest / smallest class, per split and overall, before and after."""
    groups = list(dict.fromkeys([*ratios["before"], *ratios["after"]]))
    if not groups:
        return _nothing("imbalance ratio", "no labelled images")
    fig = _figure(2.8)
    ax = fig.add_subplot()
    series = {stage: [ratios[stage].get(g, 0.0) for g in groups] for stage in ("before", "after")}
    _bars(ax, groups, series, STAGE_COLORS)
    ax.axhline(1.0, color="#555555", linewidth=0.8, linestyle=":")
    ax.set_title("imbalance ratio: largest class / smallest class (1 = balanced)", loc="left", fontsize=9)
    ax.legend(fontsize=8, frameon=False)
    return _png(fig)


@_literal
def issues(rows: list[dict[str, Any]]) -> bytes:
    """Findings per check, coloured by severity."""
    if not rows:
        return _nothing("issues per check", "no check fired (or validate has not run)")
    fig = _figure(1.0 + 0.28 * len(rows))
    ax = fig.add_subplot()
    labels = [r["check"] + (" (collection)" if r["level"] == "collection" else "") for r in rows]
    y = np.arange(len(rows))
    bars = ax.barh(y, [r["count"] for r in rows], color=[SEVERITY_COLORS.get(r["severity"], "#888888") for r in rows])
    ax.bar_label(bars, fontsize=7, padding=2)
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.spines[["top", "right"]].set_visible(False)
    handles = [Patch(color=c, label=s) for s, c in SEVERITY_COLORS.items()]
    ax.legend(handles=handles, fontsize=8, frameon=False, loc="lower right")
    ax.set_title("issues per check (images flagged; collection checks count once)", loc="left", fontsize=9)
    return _png(fig)


@_literal
def duplicates(by_kind: dict[str, dict[str, int]]) -> bytes:
    """Clusters, images in them and images dropped, per kind of match."""
    if not by_kind:
        return _nothing("duplicate clusters", "no duplicates (or dedup has not run)")
    fig = _figure(2.8)
    ax = fig.add_subplot()
    kinds = list(by_kind)
    series = {k: [by_kind[kind][k] for kind in kinds] for k in ("clusters", "images", "dropped")}
    _bars(ax, kinds, series, KIND_COLORS)
    ax.set_title("duplicate clusters by kind of match", loc="left", fontsize=9)
    ax.legend(fontsize=8, frameon=False)
    return _png(fig)


def _thumbnail(data: bytes | None) -> np.ndarray:
    """A THUMB x THUMB RGB tile of the image (grey when it cannot be read)."""
    tile = Image.new("RGB", (THUMB, THUMB), (235, 235, 235))
    if data:
        try:
            with Image.open(io.BytesIO(data)) as opened:
                img = ImageOps.exif_transpose(opened).convert("RGB")
                img.thumbnail((THUMB, THUMB))
                tile.paste(img, ((THUMB - img.width) // 2, (THUMB - img.height) // 2))
        except (OSError, ValueError, Image.DecompressionBombError):
            pass
    return np.asarray(tile)


@_literal
def duplicate_examples(examples: list[dict[str, Any]], read: Callable[[str], bytes | None]) -> bytes:
    """A few clusters per kind, their members side by side (the kept one first), two clusters a row
    when they are small."""
    if not examples:
        return _nothing("duplicate examples", "no duplicates (or dedup has not run)")
    cols = max(len(e["members"]) for e in examples)
    per_row = max(1, 4 // cols)
    rows = -(-len(examples) // per_row)
    fig = _figure(0.3 + 1.9 * rows, width=0.2 + 1.9 * cols * per_row)
    for i, example in enumerate(examples):
        members = sorted(example["members"], key=lambda m: (not m["keep"], m["distance"]))
        for c in range(cols):
            ax = fig.add_subplot(rows, cols * per_row, (i // per_row) * cols * per_row + (i % per_row) * cols + c + 1)
            ax.set_axis_off()
            if c >= len(members):
                continue
            m = members[c]
            ax.imshow(_thumbnail(read(m["path"])))
            state = "kept" if m["keep"] else f"dropped, {m['distance']} bits"
            where = f"{_name(m['split'])}/{_name(m['label'])}"
            ax.set_title(f"#{example['cluster_id']} {example['kind']}: {state}\n{where}", fontsize=7)
    return _png(fig)


@_literal
def leaks(leak_facts: dict[str, Any]) -> bytes:
    """Duplicate clusters that span splits, per pair of splits."""
    by_splits = leak_facts["by_splits"]
    if not by_splits:
        return _nothing("leaks", "no duplicate cluster spans two splits")
    fig = _figure(2.4)
    ax = fig.add_subplot()
    _bars(ax, list(by_splits), {"clusters": list(by_splits.values())}, ("#d64545",))
    ax.set_title("leaks: duplicate clusters spanning splits (dedup keeps the held-out copy)", loc="left", fontsize=9)
    return _png(fig)


@_literal
def embedding_map(facts: dict[str, Any]) -> bytes:
    """The images' embeddings in 2-D (t-SNE), coloured by class: tight, separate clouds mean the
    classes look different to the model; a point inside another class's cloud is worth a look."""
    if not facts:
        return _nothing("embedding map", "no embeddings (run `curate embed OUT`)")
    fig = _figure(4.2)
    ax = fig.add_subplot()
    labels = sorted({p["label"] for p in facts["map"]})
    palette = [f"C{i % 10}" for i in range(len(labels))]
    for label, color in zip(labels, palette):
        pts = [(p["x"], p["y"]) for p in facts["map"] if p["label"] == label]
        ax.scatter([x for x, _ in pts], [y for _, y in pts], s=10, color=color, label=_name(label), alpha=0.8)
    ax.set_xticks([])
    ax.set_yticks([])
    model = visible(facts["model"], 3 * LABEL_CHARS)
    ax.set_title(f"{len(facts['map'])} of {facts['images']} images by their embeddings ({model}), coloured by class",
                 loc="left", fontsize=9)
    ax.legend(fontsize=7, frameon=False, markerscale=1.5, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return _png(fig)


@_literal
def embedding_findings(facts: dict[str, Any], read: Callable[[str], bytes | None]) -> bytes:
    """The top outliers and label suspects, as thumbnails with their label (and the suggested one)."""
    rows = [(name, facts.get(key, [])) for name, key in (("outlier", "outliers"), ("label suspect", "label_suspects"))]
    rows = [(name, items) for name, items in rows if items]
    if not rows:
        return _nothing("outliers and label suspects", "none found (or no embeddings: run `curate embed OUT`)")
    cols = max(len(items) for _, items in rows)
    fig = _figure(0.3 + 1.9 * len(rows), width=0.2 + 1.6 * cols)
    for r, (name, items) in enumerate(rows):
        for c, item in enumerate(items):
            ax = fig.add_subplot(len(rows), cols, r * cols + c + 1)
            ax.set_axis_off()
            ax.imshow(_thumbnail(read(item["path"])))
            said = f" -> {_name(item['suggested'])}?" if item.get("suggested") else ""
            ax.set_title(f"{name} {item['score']:.2f}\n{_name(item['label'])}{said}", fontsize=7)
    return _png(fig)


@_literal
def class_weights(weights: dict[str, dict[str, float]], column: str, classes: list[str]) -> bytes:
    """Class weights per scheme; the scheme in the plan's weight column is drawn strongest."""
    if not weights or not classes:
        return _nothing("class weights", "no class weights (rebalance has not run)")
    fig = _figure(3.0)
    ax = fig.add_subplot()
    schemes = sorted(weights, key=lambda s: (s != column, s))
    series = {s + (" (weight column)" if s == column else ""): [round(weights[s].get(c, 0.0), 3) for c in classes]
              for s in schemes}
    _bars(ax, classes, series, KIND_COLORS)
    ax.set_title("class weights (loss weights for the train split)", loc="left", fontsize=9)
    ax.legend(fontsize=8, frameon=False)
    return _png(fig)
