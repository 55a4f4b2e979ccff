"""How near two images are, and how a member relates to its cluster's anchor.

Two measures: pHash bits (least over the 8 flips/rotations with `dihedral`) and, with semantic
dedup, the cosine similarity of the images' embeddings. A member's kind, strongest first: bytes
(identical file), pixels (identical decoded pixels), phash (identical hash), near (hash within
the threshold), semantic (embeddings at least `similarity` alike, hashes farther apart).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from curate.dedup.cluster import distance_to
from curate.mapped import GATHER_ROWS, MappedMatrix

KIND_ORDER = ("bytes", "pixels", "phash", "near", "semantic")


@dataclass
class Measures:
    """The hashes (and embeddings) of the rows being clustered."""

    rows: pd.DataFrame
    phash: np.ndarray
    d8: np.ndarray | None  # (n, 8) with dihedral
    threshold: int
    vectors: MappedMatrix | None = None  # (n, d) float16 rows; NaN where an image has no embedding
    rows_read: int = 0  # rows of `vectors` read since its pages were last let go

    @classmethod
    def of(cls, rows: pd.DataFrame, threshold: int, dihedral: bool, vectors: MappedMatrix | None = None
           ) -> Measures:
        d8 = np.stack(rows["phash_d8"].to_numpy()).astype(np.int64) if dihedral and len(rows) else None
        return cls(rows, rows["phash"].to_numpy(dtype=np.int64), d8, threshold, vectors)

    def bits(self, anchor: int, members: np.ndarray) -> np.ndarray:
        return distance_to(anchor, members, self.phash, self.d8)

    def similarity(self, anchor: int, members: np.ndarray) -> np.ndarray:
        """Cosine similarity of each member's embedding to the anchor's (NaN without embeddings)."""
        if self.vectors is None:
            return np.full(len(members), np.nan, np.float32)
        read = self.vectors.array[np.append(members, anchor)].astype(np.float32)
        self.rows_read += len(read)
        if self.rows_read >= GATHER_ROWS:  # the map's pages read so far: let go every few thousand rows
            self.vectors.release()
            self.rows_read = 0
        return np.clip(read[:-1] @ read[-1], -1.0, 1.0).astype(np.float32)

    def kind(self, i: int, anchor: int, bits: int) -> str:
        """How row i relates to the anchor (see module doc)."""
        if self.rows.at[i, "bytes_hash"] == self.rows.at[anchor, "bytes_hash"]:
            return "bytes"
        if self.rows.at[i, "pixel_hash"] == self.rows.at[anchor, "pixel_hash"]:
            return "pixels"
        if bits == 0:
            return "phash"
        return "semantic" if self.vectors is not None and bits > self.threshold else "near"
