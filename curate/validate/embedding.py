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

from dataclasses import dataclass

import numpy as np

from curate.schema import Severity
from curate.search import neighbours
from curate.validate.checks import Level, check

K = 10
FOLDS = 5
PROBE_DIMS = 128


@dataclass
class Labelled:
    """The labelled images with an embedding: ids, paths, labels and (n, d) unit vectors."""

    sample_ids: list[str]
    paths: list[str]
    labels: np.ndarray  # of str
    vectors: np.ndarray


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
    for label in np.unique(images.labels):
        at = np.flatnonzero(images.labels == label)
        if len(at) <= 2:
            continue
        _ids, sims = neighbours(images.vectors[at], min(K, len(at) - 1))
        closeness = sims.mean(axis=1)
        score[at] = closeness / max(float(np.median(closeness)), 1e-6)
    return Scored(score, [None] * len(score))


def out_of_fold_probabilities(vectors: np.ndarray, labels: np.ndarray, classes: np.ndarray, seed: int = 0
                              ) -> np.ndarray:
    """(n, classes) probabilities, each row from a probe that never saw that image."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression

    features = PCA(min(PROBE_DIMS, vectors.shape[1], len(vectors)), random_state=seed).fit_transform(vectors)
    features /= np.linalg.norm(features, axis=1, keepdims=True) + 1e-12
    rng = np.random.default_rng(seed)
    fold = np.empty(len(labels), dtype=np.int64)
    for label in classes:  # stratified: each class spread evenly over the folds
        at = rng.permutation(np.flatnonzero(labels == label))
        fold[at] = np.arange(len(at)) % FOLDS
    probabilities = np.zeros((len(labels), len(classes)))
    for f in range(FOLDS):
        train, test = fold != f, fold == f
        if not test.any():
            continue
        probe = LogisticRegression(C=10.0, max_iter=500)
        probe.fit(features[train], labels[train])
        columns = np.searchsorted(classes, probe.classes_)
        probabilities[np.ix_(np.flatnonzero(test), columns)] = probe.predict_proba(features[test])
    return probabilities


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
    p = out_of_fold_probabilities(images.vectors, images.labels, classes)
    given = np.searchsorted(classes, images.labels)
    mine = p[np.arange(len(p)), given]
    others = p.copy()
    others[np.arange(len(p)), given] = -1.0
    best = others.argmax(axis=1)
    scoreable = counts[given] >= FOLDS  # a class too small for every fold to hold some of it
    score[scoreable] = mine[scoreable]
    suggested = [str(classes[b]) if ok else None for b, ok in zip(best, scoreable)]
    return Scored(score, suggested)
