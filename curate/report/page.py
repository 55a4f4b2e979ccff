"""The report page: one self-contained HTML file (plots inlined as base64 PNG, no scripts, no
links to fetch), readable offline and in a headless browser. Every name and value on it goes
through `_e`: hidden characters made visible (`curate.view.visible`), then HTML-escaped."""
from __future__ import annotations

import base64
import html
from typing import Any

from curate.view import visible

STYLE = """
body { font-family: -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; margin: 24px auto; max-width: 1000px;
       color: #1f2328; background: #ffffff; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #d0d7de; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border: 1px solid #d0d7de; padding: 3px 8px; text-align: right; overflow-wrap: anywhere; }
code { overflow-wrap: anywhere; }
th:first-child, td:first-child { text-align: left; }
img { max-width: 100%; display: block; margin: 8px 0; }
.note { color: #57606a; font-size: 13px; }
"""

TITLES = {
    "class_counts": "Class distribution before and after curation, per split",
    "imbalance": "Imbalance ratio",
    "issues": "Issues per check",
    "duplicates": "Duplicate clusters by kind",
    "duplicate_examples": "Duplicate examples",
    "leaks": "Leaks between splits",
    "class_weights": "Class weights",
    "embedding_map": "The images by their embeddings",
    "embedding_findings": "Outliers and label suspects",
}


def _e(value: Any) -> str:
    """`value` as page text: shown literally, never markup."""
    return html.escape(visible(str(value)))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img(name: str, png: bytes) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img id="plot-{name}" alt="{_e(TITLES[name])}" src="data:image/png;base64,{data}">'


def _counts_table(facts: dict[str, Any]) -> str:
    counts = facts["counts"]
    splits = list(dict.fromkeys([*counts["before"], *counts["after"]]))
    header = ["class", *[f"{s} before" for s in splits], *[f"{s} after" for s in splits]]
    rows = [[c, *[counts["before"].get(s, {}).get(c, 0) for s in splits],
             *[counts["after"].get(s, {}).get(c, 0) for s in splits]] for c in facts["classes"]]
    return _table(header, rows)


def _sections(facts: dict[str, Any]) -> dict[str, str]:
    """Extra text or tables shown under each plot."""
    dup = facts["duplicates"]
    weights = facts["class_weights"]
    return {
        "class_counts": _counts_table(facts) + (f'<p class="note">{facts["unlabelled"]} unlabelled images are not '
                                                f'counted.</p>' if facts["unlabelled"] else ""),
        "imbalance": _table(["split", "before", "after"],
                            [[s, facts["imbalance"]["before"].get(s, "-"), facts["imbalance"]["after"].get(s, "-")]
                             for s in dict.fromkeys([*facts["imbalance"]["before"], *facts["imbalance"]["after"]])]),
        "issues": _table(["check", "severity", "level", "count"],
                         [[r["check"], r["severity"], r["level"], r["count"]] for r in facts["issues"]])
        + _table(["excluded by the plan because of", "images"], list(facts["excluded"].items())),
        "duplicates": _table(["kind", "clusters", "images", "dropped"],
                             [[k, v["clusters"], v["images"], v["dropped"]] for k, v in dup["by_kind"].items()])
        + f'<p class="note">{dup["label_conflicts"]} clusters have members with different labels.</p>',
        "duplicate_examples": "",
        "leaks": _table(["cluster", "kind", "splits", "members"],
                        [[c["cluster_id"], c["kind"], "/".join(c["splits"]),
                          "; ".join(m["path"] for m in c["members"])] for c in dup["leaks"]["listed"]]),
        "class_weights": _table(["class", *weights],
                                [[c, *[round(weights[s].get(c, 0.0), 4) for s in weights]] for c in facts["classes"]])
        + f'<p class="note">the plan\'s weight column uses: {_e(facts["weight_column"])}</p>',
        "embedding_map": "",
        "embedding_findings": _table(["check", "image", "label", "suggested", "score"],
                                     [[check, f["path"], f["label"], f["suggested"] or "", f["score"]]
                                      for check, key in (("outlier", "outliers"), ("label_suspect", "label_suspects"))
                                      for f in facts["embeddings"].get(key, [])]),
    }


def render_page(facts: dict[str, Any], plots: dict[str, bytes], out: str, source: str) -> str:
    """The whole page as one HTML string."""
    after = sum(n for by_class in facts["counts"]["after"].values() for n in by_class.values())
    intro = (f"<p>{facts['images']} images scanned from <code>{_e(source)}</code>; {after} samples in the curated "
             f"set; {len(facts['classes'])} classes. Decisions in <code>{_e(out)}</code>.</p>")
    if facts["missing"]:
        intro += f'<p class="note">not run yet: {_e(", ".join(facts["missing"]))}</p>'
    extra = _sections(facts)
    body = "".join(f'<section id="{name}"><h2>{_e(TITLES[name])}</h2>{_img(name, png)}{extra[name]}</section>'
                   for name, png in plots.items())
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>curate report: {_e(out)}</title>'
            f"<style>{STYLE}</style></head><body><h1>curate report</h1>{intro}{body}</body></html>\n")
