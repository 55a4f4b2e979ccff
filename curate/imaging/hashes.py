"""Perceptual hashes and quality statistics for a batch of thumbnails, vectorised.

Each image contributes a 64x64 luma thumbnail of its oriented, decoded pixels. pHash and
dHash follow imagehash's definitions (hash_size 8): pHash is the sign of the 8x8 lowest DCT-II
coefficients of a 32x32 luma image against their median, dHash compares horizontal neighbours
of a 9x8 luma image. Working on a whole partition's thumbnails at once keeps the per-image
cost far below the decode's.
"""
from __future__ import annotations

import numpy as np

THUMB = 64  # side of the square thumbnail every statistic and hash reads
HASH_SIZE = 8
_PHASH_INPUT = HASH_SIZE * 4  # imagehash's highfreq_factor 4
_SIGN = ((-1.0) ** np.arange(HASH_SIZE)).astype(np.float32)
# Rows 0..7 of the unnormalised DCT-II matrix (scipy.fftpack.dct's default).
_n = np.arange(_PHASH_INPUT)
_DCT = (2.0 * np.cos(np.pi * np.arange(HASH_SIZE)[:, None] * (2 * _n[None, :] + 1) / (2 * _PHASH_INPUT))).astype(
    np.float32)

# Names of the 8 flips/rotations, in the order of `phash_d8`'s columns.
DIHEDRAL = ("identity", "flip_lr", "flip_tb", "rotate_180", "transpose", "rotate_90", "rotate_270", "transverse")


def _area_matrix(n_out: int, n_in: int) -> np.ndarray:
    """A (n_out, n_in) matrix that resamples by averaging over equal-width input intervals."""
    m = np.zeros((n_out, n_in))
    edges = np.linspace(0, n_in, n_out + 1)
    for i in range(n_out):
        lo, hi = edges[i], edges[i + 1]
        for j in range(int(np.floor(lo)), int(np.ceil(hi))):
            m[i, j] = min(hi, j + 1) - max(lo, j)
        m[i] /= hi - lo
    return m


_TO_32 = _area_matrix(_PHASH_INPUT, THUMB).astype(np.float32)
_ROWS_8 = _area_matrix(HASH_SIZE, THUMB).astype(np.float32)
_COLS_9 = _area_matrix(HASH_SIZE + 1, THUMB).astype(np.float32)


def pack_int64(bits: np.ndarray) -> np.ndarray:
    """Pack trailing groups of 64 booleans (first bit most significant) into signed int64."""
    flat = bits.reshape(-1, 64)
    return np.packbits(flat, axis=1).view(">i8").astype(np.int64).reshape(bits.shape[:-1] if bits.shape[-1] == 64
                                                                         else bits.shape[:-2])


def hamming(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """Bitwise Hamming distance between int64 hashes (broadcasting)."""
    # viewed as uint64: on signed integers np.bitwise_count counts the bits of |x|
    xor = np.bitwise_xor(np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64))
    return np.bitwise_count(xor.view(np.uint64))


def phash_d8(gray: np.ndarray) -> np.ndarray:
    """pHash of each float32 luma thumbnail (N, 64, 64) and of its 7 other flips/rotations: int64 (N, 8).

    Flipping an image left-right multiplies DCT-II coefficient column v by (-1)^v, flipping it
    top-bottom multiplies row u by (-1)^u, and transposing it transposes the block, so all 8
    variants come from one DCT; column 0 is the plain pHash. Order: `DIHEDRAL`.
    """
    small = _TO_32 @ gray @ _TO_32.T
    block = _DCT @ small @ _DCT.T
    lr = block * _SIGN[None, None, :]
    tb = block * _SIGN[None, :, None]
    t = block.transpose(0, 2, 1)
    variants = np.stack([block, lr, tb, lr * _SIGN[None, :, None], t, t * _SIGN[None, :, None],
                         t * _SIGN[None, None, :], t * _SIGN[None, :, None] * _SIGN[None, None, :]], axis=1)
    flat = variants.reshape(len(gray), 8, 64)
    ordered = np.sort(flat, axis=2)
    medians = (ordered[:, :, 31] + ordered[:, :, 32]) / 2
    return pack_int64(flat > medians[:, :, None])


def dhash(gray: np.ndarray) -> np.ndarray:
    """Difference hash of each float32 luma thumbnail (N, 64, 64): int64 (N,)."""
    small = _ROWS_8 @ gray @ _COLS_9.T
    return pack_int64((small[:, :, 1:] > small[:, :, :-1]).reshape(len(gray), 64))
