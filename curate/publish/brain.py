"""The embeddings in FiftyOne: a 2-D map of the images for the app's Embeddings panel, and a
similarity index, so "sort by similarity" works.

Reads `OUT/embeddings/` (through `curate.tables`); writes two FiftyOne brain runs on the
published dataset, of its images only (the selection of `curate.publish.select`, not every image
of OUT), computed from curate's own embeddings (no model runs): `curate_map` (UMAP when
umap-learn is installed, else t-SNE up to TSNE_MAX images, else PCA) and `curate_similarity`
(scikit-learn's exact index). They are recomputed only when the embeddings or the published images
changed since the last publish (their version and a digest of the images' ids are kept in the
dataset's info).
"""
from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import xxhash

from curate.tables import embeddings_for
from curate.workspace import Workspace

MAP_KEY, SIMILARITY_KEY = "curate_map", "curate_similarity"
TSNE_MAX = 20_000


def map_method(n: int) -> str:
    if importlib.util.find_spec("umap") is not None:
        return "umap"
    return "tsne" if n <= TSNE_MAX else "pca"


def index_embeddings(ds: Any, ws: Workspace, done: dict[str, Any]) -> dict[str, Any]:
    """Add (or keep) the map and the similarity index of the dataset's images that have an
    embedding; `done` is what the last publish recorded. Returns the record for the dataset's info."""
    import fiftyone.brain as fob

    version = ws.fingerprint("embeddings")
    if version is None:
        return {}
    originals = ds.match({"augmented": False})
    ids = originals.values("sample_id")
    vectors = embeddings_for(ws, ids)
    have = ~np.isnan(vectors[:, 0]) if len(ids) else np.zeros(0, bool)
    points = [i for i, ok in zip(ids, have) if ok]
    samples = xxhash.xxh3_64_hexdigest("\0".join(sorted(points)).encode())
    if done.get("version") == version and done.get("samples") == samples and ds.has_brain_run(MAP_KEY):
        return dict(done)  # a plain copy: FiftyOne hands back its own dict type
    view = originals.select_by("sample_id", points, ordered=True)
    matrix = vectors[have]
    for key in (MAP_KEY, SIMILARITY_KEY):
        if ds.has_brain_run(key):
            ds.delete_brain_run(key)
    if len(matrix) < 3:
        return {"version": version, "samples": samples, "points": int(len(matrix))}
    method = map_method(len(matrix))
    options: dict[str, Any] = {}
    if method == "tsne":  # FiftyOne's t-SNE first reduces to 50 dimensions by PCA: no more than there are points
        options = {"perplexity": min(30.0, (len(matrix) - 1) / 3), "pca_dims": min(50, len(matrix) - 1)}
    fob.compute_visualization(view, embeddings=matrix, method=method, brain_key=MAP_KEY, num_dims=2, seed=0,
                              progress=False, **options)
    fob.compute_similarity(view, embeddings=matrix, backend="sklearn", brain_key=SIMILARITY_KEY, progress=False)
    return {"version": version, "samples": samples, "points": int(len(matrix)), "map": method, "map_key": MAP_KEY,
            "similarity_key": SIMILARITY_KEY}
