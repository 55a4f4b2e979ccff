"""Checks that need the images' embeddings (`curate embed`): outliers and suspect labels.

Each check scores the labelled images that have an embedding, as a whole (a score needs the
other images of the class, or of every class); the threshold beside it decides what fires, as
for the other checks, and `[validate]` overrides both. Warnings by default: they point at images
to look at, they do not remove them.

- outlier: an image's mean similarity to its K nearest images of the same class, divided by the
  class's median of that; fires below the threshold (an image far less like its class than its
  classmates are).
- label_suspect: out-of-fold class probabilities from a linear probe (multinomial logistic
  regression on a PCA projection of the embeddings, each image scored by the model trained on
  the other folds: the confident-learning recipe); the score is the probability of the given
  label (cleanlab's self-confidence); fires below the threshold, and the message names the
  most likely other label.

Memory stays bounded at any size: validate hands the checks the vectors as a memory map of a
class-ordered scratch file (`curate.labelled`), each class a slice, and the map's pages
are let go after each class and each block of rows read. outlier's neighbours are
`curate.search.neighbours`: exact up to its EXACT_MAX images in a class, above it the IVF
indexes, two tables of cells (exact similarities, approximate recall).
label_suspect fits the PCA on at most PCA_ROWS images (a seeded sample above it, in float32) and
projects the rest a block at a time, when it scores them; each fold's probe is trained on at most
TRAIN_ROWS images of the other folds: every class keeps all its images up to an equal share
(smaller classes whole, the larger ones a seeded sample of the same size each), and each sampled
image is weighted by its class's images over those kept, so the probe fits the same class
priors, and the same loss in expectation, as on every image. Below both caps nothing is sampled
and the scores are those of the whole fit, on which the default threshold was calibrated.
TRAIN_ROWS (200k) keeps a fit's memory small (the features are 128 floats a row, 100-200 MB) and
its time to minutes, while a class keeps thousands of images up to a hundred classes (2,000 each
at 100), and a 1280-d PCA of 128 components is well determined by PCA_ROWS (200k) images. lbfgs
also holds a few float64 arrays of rows x classes, and its time grows with them, so the sample is
smaller still where there are many classes: at most PROBE_CELLS (2^25) training images x classes,
TRAIN_ROWS up to 167 classes, 33 images a class at 1,000 (each array 268 MB, not 1.6 GB). Where
that would leave fewer than PROBE_MIN_IMAGES (20) images a class (above ~1,300 classes) a probe
learns nothing, so each image is scored against its classes' means instead: the mean feature of
each class's images in the other folds, the probabilities a softmax of the cosines times a
temperature fitted to the other folds' images by maximum likelihood (no model to train: time
linear in images x classes, memory in classes). On the synthetic set of benchmarks/embed_checks_scale.py at 3,000
classes the probe fired on a quarter of the images (precision 0.08), the class means 0.94; on
real digits forced onto this path it is the weaker of the two (RESULTS.md, "Embedding checks at
scale", note "More classes still").

label_suspect's default (0.1) was calibrated: chosen on half of a real labelled set (handwritten
digits) with 5% of its labels flipped at random, and measured on the other half
(benchmarks/RESULTS.md, "Embeddings: suspect labels").

outlier's default (0.6) is NOT calibrated. benchmarks/outlier.py measured it (benchmarks/RESULTS.md,
"Outlier: planted out-of-class images"): in real digit classes with 5% out-of-class images planted,
0.6 fired on none of the classes' own images and found 57% of the planted ones (every colour photo
crop, 60-73% of the faces and natural-image patches, none of the digits of another class: those are
label_suspect's). A threshold chosen there (0.9: 0.45% of the held-out classes' own images fire,
82% of their planted images found) does not carry over: classes of photographs spread wider (at 0.9,
10-25% of their own images fire), and no labelled set of photographs in several classes is at hand
offline to choose one on. 0.6 is kept as a conservative value: below the lowest score of any own
image measured (0.66, in a mixed class of natural-image patches).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from curate.labelled import Labelled, by_class, gathered
from curate.schema import Severity
from curate.search import EXACT_MAX, neighbours
from curate.validate.checks import Level, check

K = 10
FOLDS = 5
PROBE_DIMS = 128
PCA_ROWS = 200_000  # label_suspect's PCA is fitted on at most this many images (seeded sample)
TRAIN_ROWS = 200_000  # each fold's probe is trained on at most this many images (stratified sample)
PROBE_CELLS = 2**25  # ... and on at most this many images x classes (lbfgs's float64 arrays)
PROBE_MIN_IMAGES = 20  # fewer images a class in a probe's sample: the class means score instead
SCORE_CELLS = 2**22  # probabilities (images x classes) computed at a time
FEATURE_ROWS = 65_536  # images projected at a time for the class means
TEMPERATURE_CELLS = 2**24  # the class means' temperature is fitted on this many images x classes at most


@dataclass
class Scored:
    score: np.ndarray  # per image; NaN where the check does not apply
    suggested: list[str | None]  # per image: the label the check suggests, if any


@check("outlier", Severity.WARNING, 0.6, level=Level.EMBEDDING, below=True,
       help="far from every image of its class: mean similarity to its 10 nearest classmates over the "
            "class's median of that (default threshold not calibrated: benchmarks/RESULTS.md, "
            "\"Outlier: planted out-of-class images\")",
       message="far from the rest of class {label}: {score:.2f} of its classmates' typical similarity "
               "(< {threshold:g})")
def _outlier(images: Labelled) -> Scored:
    score = np.full(len(images.labels), np.nan)
    for at in images.by_class():
        if len(at) > 2:
            score[at] = closeness(images.vectors_of(at))[1]
            images.release()
    return Scored(score, [None] * len(score))


def closeness(vectors: np.ndarray, exact_max: int = EXACT_MAX) -> tuple[np.ndarray, np.ndarray]:
    """Within one class (3+ images): each image's K nearest classmates (positions in `vectors`) and
    its outlier score (their mean similarity over the class's median of that)."""
    ids, sims = neighbours(vectors, min(K, len(vectors) - 1), exact_max=exact_max)
    mean = sims.mean(axis=1)
    return ids, mean / max(float(np.median(mean)), 1e-6)


def out_of_fold_scores(vectors: np.ndarray, labels: np.ndarray, classes: np.ndarray, seed: int = 0,
                       pca_rows: int = PCA_ROWS, train_rows: int = TRAIN_ROWS, probe_cells: int = PROBE_CELLS,
                       release: Callable[[], None] = lambda: None) -> tuple[np.ndarray, np.ndarray]:
    """Per image, from a probe that never saw it: the probability of its label and the position in
    `classes` of the most likely other one (bounded memory: see module doc; `release` is called
    after each read of `vectors`)."""
    from sklearn.linear_model import LogisticRegression

    features = _projection(vectors, seed, pca_rows, release)
    rng = np.random.default_rng(seed)
    given = np.searchsorted(classes, labels)
    fold = np.empty(len(labels), dtype=np.int64)
    for at in by_class(given, len(classes)):  # stratified: each class spread evenly over the folds
        at = rng.permutation(at)
        fold[at] = np.arange(len(at)) % FOLDS
    cap = min(train_rows, max(len(classes), probe_cells // len(classes)))  # at least one image a class
    if cap // len(classes) < PROBE_MIN_IMAGES:
        return _class_mean_scores(features, given, fold, len(classes), rng)
    mine, best = np.zeros(len(labels)), np.zeros(len(labels), np.int64)
    for f in range(FOLDS):
        test = np.flatnonzero(fold == f)
        if not len(test):
            continue
        train, weight = _stratified(np.flatnonzero(fold != f), given, cap, rng)
        probe = LogisticRegression(C=10.0, max_iter=500)
        probe.fit(features(train), labels[train], sample_weight=weight)
        columns = np.searchsorted(classes, probe.classes_)
        block = max(4096, SCORE_CELLS // len(classes))
        for lo in range(0, len(test), block):
            rows = test[lo:lo + block]
            p = np.zeros((len(rows), len(classes)))
            p[:, columns] = probe.predict_proba(features(rows))
            mine[rows] = p[np.arange(len(rows)), given[rows]]
            p[np.arange(len(rows)), given[rows]] = -1.0
            best[rows] = p.argmax(axis=1)
    return mine, best


def _class_mean_scores(features: Callable[[np.ndarray], np.ndarray], given: np.ndarray, fold: np.ndarray,
                       classes: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`out_of_fold_scores` where the classes are too many for the logistic probe: each fold's
    images scored against the mean feature of each class's images in the other folds, the class
    probabilities a softmax of the cosines times a temperature fitted (maximum likelihood) to
    images of the other folds. Two passes over the features, FEATURE_ROWS at a time; memory
    FOLDS x classes x features for the sums, and SCORE_CELLS for a block's cosines."""
    n = len(given)
    sums: np.ndarray | None = None
    for lo in range(0, n, FEATURE_ROWS):
        rows = np.arange(lo, min(n, lo + FEATURE_ROWS))
        block = features(rows)
        if sums is None:
            sums = np.zeros((FOLDS, classes, block.shape[1]))
        np.add.at(sums, (fold[rows], given[rows]), block)
    assert sums is not None
    total = sums.sum(axis=0)
    mine, best = np.zeros(n), np.zeros(n, np.int64)
    for f in range(FOLDS):
        means = _unit_rows(total - sums[f]).astype(np.float32)
        others = np.flatnonzero(fold != f)
        sample = np.sort(rng.choice(others, min(len(others), max(1, TEMPERATURE_CELLS // classes)), replace=False))
        temperature = _temperature(features(sample) @ means.T, given[sample])
        test = np.flatnonzero(fold == f)
        step = max(1, SCORE_CELLS // classes)
        for lo in range(0, len(test), step):
            rows = test[lo:lo + step]
            cosines = features(rows) @ means.T
            mine[rows] = np.exp(_log_softmax_of(cosines, given[rows], temperature))
            cosines[np.arange(len(rows)), given[rows]] = -np.inf
            best[rows] = cosines.argmax(axis=1)
    return mine, best


def _log_softmax_of(cosines: np.ndarray, given: np.ndarray, temperature: float) -> np.ndarray:
    """log softmax(temperature x cosines) of each row's `given` column."""
    from scipy.special import logsumexp

    scaled = temperature * cosines.astype(np.float64)
    return scaled[np.arange(len(given)), given] - logsumexp(scaled, axis=1)


def _temperature(cosines: np.ndarray, given: np.ndarray) -> float:
    """The temperature that maximises the mean log probability of the `given` classes (the log
    likelihood is concave in it: a bounded scalar search)."""
    from scipy.optimize import minimize_scalar

    found = minimize_scalar(lambda t: -_log_softmax_of(cosines, given, t).mean(), bounds=(0.01, 1000.0),
                            method="bounded")
    return float(found.x)


def _projection(vectors: np.ndarray, seed: int, pca_rows: int, release: Callable[[], None]
                ) -> Callable[[np.ndarray], np.ndarray]:
    """rows -> their L2-normalised PCA features. Up to `pca_rows` images the PCA is fitted on all
    of them and every image projected at once (the scores calibrated on); above it, fitted on a
    seeded sample of `pca_rows` and rows projected when asked for, in float32. Rows are read a
    batch at a time, `release` called after each (`curate.labelled.gathered`)."""
    from sklearn.decomposition import PCA

    # copy=False: centred in place, in the float32 copy made here (not a second copy in sklearn)
    pca = PCA(min(PROBE_DIMS, vectors.shape[1], len(vectors), pca_rows), random_state=seed, copy=False)
    if len(vectors) <= pca_rows:
        every = _unit_rows(pca.fit_transform(gathered(vectors, np.arange(len(vectors)), release)))
        return lambda rows: every[rows]
    pca.fit(gathered(vectors, np.sort(np.random.default_rng(seed).choice(len(vectors), pca_rows, replace=False)),
                     release))
    return lambda rows: _unit_rows(pca.transform(gathered(vectors, rows, release)))


def _unit_rows(features: np.ndarray) -> np.ndarray:
    """Each row over its L2 norm (a zero row stays zero)."""
    return features / (np.linalg.norm(features, axis=1, keepdims=True) + 1e-12)


def _stratified(rows: np.ndarray, given: np.ndarray, cap: int, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray | None]:
    """At most `cap` of `rows` (in order), and their sample weights (None: all kept): each class
    keeps min(its rows, q) with q the largest equal share that fits; a kept row weighs its class's
    rows over those kept."""
    if len(rows) <= cap:
        return rows, None
    counts = np.bincount(given[rows])
    share = _largest_share(counts, cap)
    kept, weight = [], np.zeros(len(counts))
    for c, at in enumerate(by_class(given[rows], len(counts))):
        if len(at):
            kept.append(rows[at] if len(at) <= share else rng.choice(rows[at], share, replace=False))
            weight[c] = len(at) / len(kept[-1])
    chosen = np.sort(np.concatenate(kept))
    return chosen, weight[given[chosen]]


def _largest_share(counts: np.ndarray, cap: int) -> int:
    """The largest q with sum(min(counts, q)) <= cap (at least 1)."""
    low, high = 1, int(counts.max())
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if np.minimum(counts, mid).sum() <= cap else (low, mid - 1)
    return low


@check("label_suspect", Severity.WARNING, 0.1, level=Level.EMBEDDING, below=True,
       help="its embedding says another class: out-of-fold probability of the given label from a linear probe "
            "on the embeddings (confident learning's self-confidence)",
       message="labelled {label}, but its embedding says {suggested} (p({label}) = {score:.2f} < {threshold:g})")
def _label_suspect(images: Labelled) -> Scored:
    classes, counts = np.unique(images.labels, return_counts=True)
    score = np.full(len(images.labels), np.nan)
    suggested: list[str | None] = [None] * len(score)
    if len(classes) < 2 or len(images.labels) < 2 * FOLDS:
        return Scored(score, suggested)
    mine, best = out_of_fold_scores(images.vectors, images.labels, classes, release=images.release)
    given = np.searchsorted(classes, images.labels)
    scoreable = counts[given] >= FOLDS  # a class too small for every fold to hold some of it
    score[scoreable] = mine[scoreable]
    suggested = [str(classes[b]) if ok else None for b, ok in zip(best, scoreable)]
    return Scored(score, suggested)
