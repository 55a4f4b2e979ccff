"""The embedding checks (`outlier`, `label_suspect`) and `rebalance --prefer diverse` at scale:
time and peak memory of each, and what the IVF search costs in quality against the exact one.

    .venv/bin/python benchmarks/embed_checks_scale.py --rows 1000000 --classes 10 \\
        [--stages outlier,label_suspect,diversity] [--dim 1280] [--sample 1000] [--exact-flags]

Data: synthetic clustered unit vectors (float16 as `curate embed` stores them, widened to float32
as `embeddings_for` hands them to validate and rebalance), `--classes` classes of equal size: each
row is its class's direction (weight 0.5), its cluster's (0.6; clusters of ~20 rows, as in
benchmarks/embed_search.py) and its own noise (0.6), normalised. 0.5% of the rows are planted
outliers (their class's direction at a weight drawn in 0-1, plus noise, no cluster) and, with 2+
classes, 2% of the labels are flipped to another class.

Stages, each timed with its peak memory above the data's (RSS sampled every 20 ms):
- outlier: `closeness` over each class (what the check's function runs; its neighbour ids are
  kept for the quality measures below);
- label_suspect: likewise, with the recall and precision of the flipped labels at its default;
- diversity: `removal_order` over each class (what `--prefer diverse` runs).
Quality of outlier's neighbours on `--sample` random rows and up to `--sample` planted outliers:
recall@10 against the exact search (`curate.search.nearest`, brute force over the row's class),
the ratio of the mean similarity found to the exact one, and whether the row fires (threshold
0.6) with each. The exact score's class median is estimated as the IVF median times the ratio
of the sampled rows' exact and IVF medians; `--exact-flags` scores every row exactly instead
(quadratic: 100k rows only) and compares every flag.

Stage `search` (for sizes where a full pass would take too long on this machine): the IVF index
built over every class's rows (timed, with its memory), then only `--sample` sampled rows and up
to `--sample` planted outliers searched (`curate.search.searched`, what `neighbours` runs for
every row), at each of `--nprobe`; the full pass's time is projected as the build plus the
sampled search time per row x the rows. Quality as for outlier, with both class medians
estimated on the sampled rows.

Rewrites one row per (rows, classes, dim, stage) in the "Embedding checks at scale" section of
RESULTS.md.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from hostinfo import cpu_model, ram_gib  # noqa: E402
from results import RESULTS, write_section  # noqa: E402

from curate.labelled import Labelled  # noqa: E402
from curate.rebalance.diversity import removal_order  # noqa: E402
from curate.search import EXACT_MAX, IVF, _index, nearest, searched  # noqa: E402
from curate.validate.checks import CHECKS  # noqa: E402
from curate.validate.embedding import K, closeness  # noqa: E402

SECTION = "## Embedding checks at scale"
HEADER = ("| rows | classes | dim | stage | time | peak memory above the data | per 1M rows | quality | command |",
          "|---:|---:|---:|---|---:|---:|---:|---|---|")
OUTLIER = 0.6  # outlier's default threshold
SUSPECT = 0.1  # label_suspect's


def generate(n: int, classes: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(vectors float32 (n, dim), labels, true labels, planted outlier rows)."""
    rng = np.random.default_rng(seed)
    class_dirs = _unit(rng.normal(size=(classes, dim)))
    true = np.sort(rng.integers(0, classes, n))
    clusters = max(1, n // 20)
    cluster_of = rng.integers(0, clusters, n)
    cluster_dirs = _unit(rng.normal(size=(clusters, dim))).astype(np.float16)
    planted = np.sort(rng.choice(n, n // 200, replace=False))
    out = np.empty((n, dim), np.float16)
    for lo in range(0, n, 100_000):
        hi = min(n, lo + 100_000)
        noise = _unit(rng.normal(size=(hi - lo, dim)).astype(np.float32))
        out[lo:hi] = _unit(0.5 * class_dirs[true[lo:hi]] + 0.6 * cluster_dirs[cluster_of[lo:hi]] + 0.6 * noise)
    weight = rng.uniform(0, 1, len(planted))[:, None]
    out[planted] = _unit(weight * class_dirs[true[planted]] + _unit(rng.normal(size=(len(planted), dim))))
    labels = true.copy()
    if classes > 1:
        flip = rng.choice(n, n // 50, replace=False)
        labels[flip] = (true[flip] + rng.integers(1, classes, len(flip))) % classes
    names = np.array([f"c{c:03d}" for c in range(classes)])
    return out.astype(np.float32), names[labels], names[true], planted


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def measured(fn: Callable[..., Any], *args: Any) -> tuple[Any, float, float]:
    """fn(*args), its seconds, and its peak RSS (bytes) above the RSS before it, sampled every 20 ms."""
    page = os.sysconf("SC_PAGE_SIZE")

    def rss() -> int:
        return int(Path("/proc/self/statm").read_text().split()[1]) * page

    base, peak, done = rss(), [0], threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    started = time.perf_counter()
    result = fn(*args)
    elapsed = time.perf_counter() - started
    done.set()
    watcher.join()
    return result, elapsed, max(peak[0], rss()) - base


def outlier(images: Labelled) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Each class's neighbour ids (positions within the class) and every row's outlier score."""
    ids, score = {}, np.full(len(images.labels), np.nan)
    for label in np.unique(images.labels):
        at = np.flatnonzero(images.labels == label)
        ids[label], score[at] = closeness(images.vectors[at])
    return ids, score


def outlier_quality(images: Labelled, found: tuple[dict[str, np.ndarray], np.ndarray], planted: np.ndarray,
                    sample: int, exact_flags: bool) -> str:
    """Recall@K and flag agreement of the IVF neighbours against the exact search (module doc)."""
    neighbour_ids, scores = found
    rng = np.random.default_rng(1)
    queries = {"sampled": np.sort(rng.choice(len(images.labels), min(sample, len(images.labels)), replace=False)),
               "planted": np.sort(rng.choice(planted, min(sample, len(planted)), replace=False))}
    parts = []
    for name, rows in queries.items():
        recall, ratio, exact_score = [], [], np.zeros(len(rows))
        for label in np.unique(images.labels[rows]):
            at = np.flatnonzero(images.labels == label)
            mine = rows[images.labels[rows] == label]
            local = np.searchsorted(at, mine)
            ivf_ids = neighbour_ids[label]
            exact_ids, exact_sims = nearest(images.vectors[at], local, K)
            found_sims = np.einsum("id,ikd->ik", images.vectors[mine], images.vectors[at][ivf_ids[local]])
            recall += [len(set(a) & set(b)) / K for a, b in zip(ivf_ids[local], exact_ids)]
            ratio += list(found_sims.mean(axis=1) / exact_sims.mean(axis=1))
            median_ivf = np.median(found_sims.mean(axis=1) / scores[mine])  # the class median the IVF scores used
            median_exact = median_ivf * np.median(exact_sims.mean(axis=1)) / np.median(found_sims.mean(axis=1))
            exact_score[np.searchsorted(rows, mine)] = exact_sims.mean(axis=1) / median_exact
        fire_ivf, fire_exact = scores[rows] < OUTLIER, exact_score < OUTLIER
        parts.append(f"{name} ({len(rows):,}): recall@{K} {np.mean(recall):.4f}, similarity found/exact "
                     f"{np.mean(ratio):.4f} (min {np.min(ratio):.3f}); fire exact {fire_exact.sum():,} / IVF "
                     f"{fire_ivf.sum():,}, agree {np.mean(fire_ivf == fire_exact):.4f}")
    if exact_flags:
        exact = np.full(len(images.labels), np.nan)
        for label in np.unique(images.labels):
            at = np.flatnonzero(images.labels == label)
            exact[at] = closeness(images.vectors[at], exact_max=len(at))[1]
        fire_ivf, fire_exact = scores < OUTLIER, exact < OUTLIER
        parts.append(f"every row exactly: fire exact {fire_exact.sum():,} / IVF {fire_ivf.sum():,}, both "
                     f"{(fire_ivf & fire_exact).sum():,}, agree {np.mean(fire_ivf == fire_exact):.5f}")
    return "; ".join(parts)


def sampled_search(images: Labelled, planted: np.ndarray, sample: int, nprobes: list[int], ivf: IVF
                   ) -> tuple[float, float, str]:
    """(projected seconds of a full pass, peak GiB, quality) of stage `search` (module doc), with
    `ivf`'s tables and re-scoring, at each of `nprobes` (cells probed, over all the tables)."""
    rng = np.random.default_rng(1)
    build, peak, per_row, parts = 0.0, 0.0, {p: 0.0 for p in nprobes}, []
    for label in np.unique(images.labels):
        at = np.flatnonzero(images.labels == label)
        x = images.vectors[at]
        (tables, pca), took, used = measured(_index, x, ivf)
        build, peak = build + took, max(peak, used)
        print(f"{label}: index over {len(at):,} rows in {took:.1f} s, {used / 2**30:.2f} GiB", flush=True)
        queries = {"sampled": np.sort(rng.choice(len(at), min(sample, len(at)), replace=False)),
                   "planted": np.searchsorted(at, np.intersect1d(planted, at))[:sample]}
        exact = {name: nearest(x, rows, K) for name, rows in queries.items()}
        for nprobe in nprobes:
            probing = replace(ivf, nprobe=nprobe)
            for index in tables:
                index.nprobe = probing.probes_a_table(index.nlist)
            found = {}
            for name, rows in queries.items():
                found[name], took, used = measured(searched, x, tables, pca, rows, K, probing)
                per_row[nprobe] += took / len(rows) * len(at) if name == "sampled" else 0.0
                peak = max(peak, used)
            median = {how: np.median(sims[1].mean(axis=1)) for how, sims in
                      (("ivf", found["sampled"]), ("exact", exact["sampled"]))}
            for name in queries:
                (ids, sims), (exact_ids, exact_sims) = found[name], exact[name]
                recall = np.mean([len(set(a) & set(b)) / K for a, b in zip(ids, exact_ids)])
                ratio = sims.mean(axis=1) / exact_sims.mean(axis=1)
                fire_ivf = sims.mean(axis=1) / median["ivf"] < OUTLIER
                fire_exact = exact_sims.mean(axis=1) / median["exact"] < OUTLIER
                parts.append(f"{label} nprobe {nprobe} {name} ({len(ids):,}): recall@{K} {recall:.4f}, similarity "
                             f"found/exact {ratio.mean():.4f} (min {ratio.min():.3f}); fire exact {fire_exact.sum():,} "
                             f"/ IVF {fire_ivf.sum():,}, agree {np.mean(fire_ivf == fire_exact):.4f}")
                print(parts[-1], flush=True)
    times = ", ".join(f"nprobe {p}: {build + t:.0f} s (search {t:.0f} s)" for p, t in per_row.items())
    return build + per_row[nprobes[0]], peak / 2**30, f"projected full pass: {times}, index build {build:.0f} s; " + \
        "; ".join(parts)


def suspect_quality(scores: np.ndarray, labels: np.ndarray, true: np.ndarray) -> str:
    fired, flipped = scores < SUSPECT, labels != true
    return (f"flipped labels: recall {(fired & flipped).sum() / max(1, flipped.sum()):.3f}, precision "
            f"{(fired & flipped).sum() / max(1, fired.sum()):.3f} ({fired.sum():,} fired, {flipped.sum():,} flipped)")


def diversity(images: Labelled) -> None:
    for label in np.unique(images.labels):
        at = np.flatnonzero(images.labels == label)
        removal_order(images.vectors[at], np.arange(len(at)))


def run_stage(stage: str, images: Labelled, true: np.ndarray, planted: np.ndarray, args: argparse.Namespace
              ) -> tuple[float, float, str]:
    """(seconds, peak GiB above the data, quality) of one stage (the first two printed at once)."""
    if stage == "search":
        return sampled_search(images, planted, args.sample, [int(p) for p in args.nprobe.split(",")],
                              IVF(tables=args.tables, rescore=args.rescore))
    if stage == "diversity":
        _, elapsed, peak = measured(diversity, images)
        return elapsed, peak / 2**30, "-"
    if stage == "label_suspect" and len(np.unique(images.labels)) < 2:
        return float("nan"), float("nan"), "needs 2+ classes"
    if stage == "outlier":
        found, elapsed, peak = measured(outlier, images)
        print(f"outlier: {elapsed:.1f} s, {peak / 2**30:.2f} GiB; measuring its quality", flush=True)
        return elapsed, peak / 2**30, outlier_quality(images, found, planted, args.sample, args.exact_flags)
    scored, elapsed, peak = measured(CHECKS.get(stage).score, images)
    return elapsed, peak / 2**30, suspect_quality(scored.score, images.labels, true)


def write(rows: dict[tuple[int, int, int, str], str]) -> None:
    """The section, its rows sorted by (rows, classes, dim, stage), the notes kept."""
    order = sorted(rows, key=lambda key: key)
    body = [SECTION, "",
            f"Machine: {cpu_model()}, {os.cpu_count()} cores, {ram_gib():.0f} GiB, shared with three other sessions' "
            "jobs (times are upper bounds). Data and measures: `benchmarks/embed_checks_scale.py`'s docstring. "
            f"Search: exact up to {EXACT_MAX:,} rows in a class, above it IVF over a {IVF().dims}-d PCA, nprobe "
            f"{IVF().nprobe} over {IVF().tables} tables of cells (8-bit codes), {IVF().rescore} x (k + 1) candidates "
            "a table re-scored exactly (the rows of stage `search` without a number of tables: one table, float32 codes, the code "
            "before 2026-12-07 23:00 UTC). Memory is the stage's peak RSS "
            "above the process's before it (the float32 data: 5 KB a row at 1280-d, is not counted).", "",
            *HEADER, *(rows[key] for key in order), ""]
    write_section(SECTION, "\n".join(body) + "\n", keep_notes=True)


def existing_rows() -> dict[tuple[int, int, int, str], str]:
    text = RESULTS.read_text()
    start = text.find(SECTION + "\n")
    if start < 0:
        return {}
    end = text.find("\n## ", start + len(SECTION))
    found = {}
    for line in text[start:end if end > 0 else len(text)].splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| ") and cells[0].replace(",", "").isdigit():
            found[(int(cells[0].replace(",", "")), int(cells[1]), int(cells[2]), cells[3])] = line
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--classes", type=int, default=1)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--stages", default="outlier,label_suspect,diversity")
    parser.add_argument("--sample", type=int, default=1000)
    parser.add_argument("--exact-flags", action="store_true")
    parser.add_argument("--nprobe", default=str(IVF().nprobe), help="stage search: comma-separated, the first timed")
    parser.add_argument("--tables", type=int, default=IVF().tables, help="stage search: independent sets of cells")
    parser.add_argument("--rescore", type=int, default=IVF().rescore,
                        help="stage search: candidates re-scored exactly per neighbour wanted (x (k + 1))")
    args = parser.parse_args()
    vectors, labels, true, planted = generate(args.rows, args.classes, args.dim)
    images = Labelled(labels, vectors)
    rows = existing_rows()
    command = (f"`embed_checks_scale.py --rows {args.rows} --classes {args.classes} --dim {args.dim} --stages "
               f"{args.stages} --sample {args.sample}{' --exact-flags' if args.exact_flags else ''}"
               f"{f' --nprobe {args.nprobe} --tables {args.tables} --rescore {args.rescore}' if 'search' in args.stages else ''}`")
    for stage in args.stages.split(","):
        elapsed, peak, quality = run_stage(stage, images, true, planted, args)
        per_million = 1e6 / args.rows
        cost = f"{elapsed * per_million:.0f} s, {peak * 2**30 / args.rows:.0f} B/row" if elapsed == elapsed else "-"
        name = f"{stage}, {args.tables} table{'s' * (args.tables > 1)}" if stage == "search" else stage
        line = (f"| {args.rows:,} | {args.classes} | {args.dim} | {name} | {elapsed:.1f} s | {peak:.2f} GiB | "
                f"{cost} | {quality} | {command} |")
        print(line, flush=True)
        rows[(args.rows, args.classes, args.dim, name)] = line
        write(rows)


if __name__ == "__main__":
    main()
