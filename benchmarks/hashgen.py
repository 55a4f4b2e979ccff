"""Realistic 64-bit pHash columns for the dedup and scale benchmarks.

    .venv/bin/python benchmarks/hashgen.py            # compute (once) and describe the real base hashes

Real pHashes are skewed: the DC bit is almost constant, neighbouring DCT coefficients are
correlated, and photos of the same scene share most bits. Uniform random hashes hide all of that
from a band-based search. So a realistic column is drawn from real ones:

* base: the pHash of every photo in benchmarks/data/photos-small-20000 (the scan benchmark's
  20,000 real-photo crops, `benchmarks/scan.py`), computed by curate's own `probe` + `fingerprint`
  (what `curate scan` writes to the manifest), identical hashes kept once; cached as
  benchmarks/data/phash-base.npy;
* rows: a base hash drawn uniformly, with every bit flipped independently with probability `flip`
  (so the per-bit skew and the bit correlations of the base survive, blurred);
* planted near pairs: one per `PLANT_FRACTION` rows, on disjoint rows, the second row a copy of
  the first with exactly d distinct bits flipped, d cycling over 1..t: the known answers.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PHOTOS = HERE / "data" / "photos-small-20000"
BASE = HERE / "data" / "phash-base.npy"
PLANT_FRACTION = 20  # one planted pair per this many rows
# Per-bit flip probability of a resampled row. Two rows from the same base hash then differ in
# Binomial(64, 2p(1 - p)) bits: at 0.2, P(<= 8) = 2.8e-4, so at 10M rows (~515 per base hash) the
# background adds about as many pairs within 8 bits as are planted (~1M); at 0.12 it would add ~1.5e8.
FLIP = 0.2


def real_phashes(folder: Path = PHOTOS, batch: int = 256) -> np.ndarray:
    """pHash (int64) of every .jpg under `folder`, by curate.imaging.probe's `probe` + `fingerprint`."""
    sys.path.insert(0, str(ROOT))
    from curate.imaging.probe import fingerprint, probe

    files = sorted(folder.rglob("*.jpg"))
    if not files:
        raise SystemExit(f"no .jpg under {folder}: run `.venv/bin/python benchmarks/scan.py` once to generate it")
    out: list[int] = []
    for lo in range(0, len(files), batch):
        rows, thumbs = zip(*(probe(f.read_bytes()) for f in files[lo:lo + batch]))
        rows = list(rows)
        fingerprint(rows, list(thumbs))
        out.extend(r["phash"] for r in rows if "phash" in r)
    return np.array(out, dtype=np.int64)


def base_hashes() -> np.ndarray:
    """The distinct real pHashes (computed once, then read from benchmarks/data/phash-base.npy)."""
    if not BASE.exists():
        np.save(BASE, np.unique(real_phashes()))
    return np.load(BASE)


def exact_flips(rng: np.random.Generator, dist: np.ndarray) -> np.ndarray:
    """One uint64 mask per entry of `dist` with exactly that many distinct random bits set."""
    masks = np.zeros(len(dist), dtype=np.uint64)
    for lo in range(0, len(dist), 250_000):
        hi = min(len(dist), lo + 250_000)
        bits = np.argsort(rng.random((hi - lo, 64)), axis=1)  # a random order of the 64 bits per row
        take = np.arange(64)[None, :] < dist[lo:hi, None]
        masks[lo:hi] = np.bitwise_or.reduce(np.where(take, np.uint64(1) << bits.astype(np.uint64), np.uint64(0)),
                                            axis=1)
    return masks


def random_flips(rng: np.random.Generator, n: int, p: float) -> np.ndarray:
    """n uint64 masks, every bit set independently with probability p."""
    masks = np.empty(n, dtype=np.uint64)
    for lo in range(0, n, 250_000):
        hi = min(n, lo + 250_000)
        masks[lo:hi] = np.packbits(rng.random((hi - lo, 64)) < p, axis=1).view(">u8").reshape(-1)
    return masks


def plant(rng: np.random.Generator, h: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Overwrite rows so that len(dist) disjoint pairs (a, b) are exactly dist bits apart (h is uint64,
    changed in place). Returns (min(a, b), max(a, b)) as int64."""
    k = len(dist)
    perm = rng.permutation(len(h))
    a, b = perm[:k], perm[k:2 * k]
    h[b] = h[a] ^ exact_flips(rng, dist)
    return np.minimum(a, b).astype(np.int64), np.maximum(a, b).astype(np.int64)


def realistic_hashes(n: int, t: int, seed: int, flip: float = FLIP, base: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n int64 hashes resampled from real pHashes with per-bit flips, n // 20 planted pairs at 1..t bits.

    Returns (hashes, planted_a, planted_b): planted_a < planted_b, disjoint rows.
    """
    rng = np.random.default_rng(seed)
    base = base_hashes() if base is None else base
    h = base.view(np.uint64)[rng.integers(0, len(base), n)] ^ random_flips(rng, n, flip)
    pa, pb = plant(rng, h, 1 + np.arange(n // PLANT_FRACTION) % max(t, 1))
    return h.view(np.int64), pa, pb


def bit_entropy(h: np.ndarray) -> np.ndarray:
    """Per-bit Shannon entropy (bits) of an int64 hash column, most significant bit first."""
    p = np.unpackbits(h.astype(">i8").view(np.uint8).reshape(-1, 8), axis=1).mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        e = -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
    return np.nan_to_num(e)


if __name__ == "__main__":
    b = base_hashes()
    e = bit_entropy(b)
    print(f"{len(b):,} distinct real pHashes in {BASE}; per-bit entropy: min {e.min():.3f}, "
          f"median {np.median(e):.3f}, bits below 0.5: {int((e < 0.5).sum())}")
    print("entropy by bit (MSB first):", " ".join(f"{x:.2f}" for x in e))
