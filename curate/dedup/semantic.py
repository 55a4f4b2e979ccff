"""Semantic dedup's pairs: the images whose embeddings are at least `[dedup] similarity` alike.

Reads `OUT/embeddings/`; writes nothing (the out-of-core search uses a temporary scratch folder).
Up to `curate.search.EXACT_MAX` embeddings the search is exact and in memory; above it, it runs
out of core (`curate.search_disk`): the embeddings are never all in memory, so a collection whose
vectors exceed RAM (10M x 1280 float16 is 25.6 GB) is searched with memory per row of a few bytes.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from curate.dedup.cluster import Edges
from curate.search import EXACT_MAX, similar_pairs
from curate.search_disk import similar_pairs_on_disk
from curate.tables import embedding_count, read_embeddings
from curate.workspace import Workspace


def semantic_edges(ws: Workspace, similarity: float, sample_ids: pd.Series) -> Edges:
    """Edges between the rows of `sample_ids` (their positions) whose embeddings are at least
    `similarity` alike; images without an embedding, or not in `sample_ids`, join nothing."""
    if embedding_count(ws) <= EXACT_MAX:
        found = read_embeddings(ws)
        ids, (i, j, _sims) = found.sample_ids, similar_pairs(found.vectors, similarity)
    else:
        pairs = similar_pairs_on_disk(ws, similarity)
        ids, i, j = pairs.sample_ids, pairs.i, pairs.j
    # each embedding's row, -1 where it is not one of them (in Arrow: no Python object per id)
    at = pc.fill_null(pc.index_in(pa.array(ids, pa.string()), value_set=pa.array(sample_ids, pa.string())),
                      -1).to_numpy()
    a, b = at[i], at[j]
    joined = (a >= 0) & (b >= 0)
    return Edges(np.minimum(a, b)[joined], np.maximum(a, b)[joined])
