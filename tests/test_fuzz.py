"""Fuzz the decode path with mutated real images: it must never raise, and always classify.

Bounded in CI (CURATE_FUZZ_EXAMPLES, default 150); run longer on demand, e.g.
`CURATE_FUZZ_EXAMPLES=20000 pytest tests/test_fuzz.py`. A failing input is saved under
tests/fuzz_regressions/ and replayed on every run from then on.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curate.codes import ErrorCode, Status
from curate.imaging.probe import fingerprint, probe

from conftest import SAMPLE

REGRESSIONS = Path(__file__).parent / "fuzz_regressions"
SEEDS = [(SAMPLE / p).read_bytes() for p in ("train/coffee/coffee_01.jpg", "train/coffee/planted_16bit.png",
                                            "train/raccoon/planted_animated.gif", "train/coffee/planted_cmyk.jpg",
                                            "train/raccoon/planted_exif_rotated.jpg")]
CODES = {c.value for c in ErrorCode}


def check(data: bytes) -> None:
    """probe + fingerprint classify `data` without raising; save it as a regression if not."""
    try:
        facts, thumb = probe(data)
        row = dict(facts)
        fingerprint([row], [thumb])
        assert row["status"] in (Status.OK.value, Status.ERROR.value)
        assert row["status"] == Status.OK.value or row["error_code"] in CODES
        assert (thumb is None) == (row["status"] != Status.OK.value)
    except BaseException:
        REGRESSIONS.mkdir(exist_ok=True)
        (REGRESSIONS / f"{hashlib.sha256(data).hexdigest()[:16]}.bin").write_bytes(data)
        raise


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["truncate", "flip", "splice", "insert"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "truncate":
            data = data[:pos]
        elif op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "splice":
            other = draw(st.sampled_from(SEEDS))
            data = data[:pos] + other[draw(st.integers(0, len(other) - 1)):]
        else:
            data = data[:pos] + bytearray(draw(st.binary(min_size=1, max_size=64))) + data[pos:]
    return bytes(data)


@settings(max_examples=int(os.environ.get("CURATE_FUZZ_EXAMPLES", "150")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated())
def test_mutated_images_never_crash_the_decode_path(data):
    check(data)


@pytest.mark.parametrize("path", sorted(REGRESSIONS.glob("*.bin")), ids=lambda p: p.name)
def test_saved_regressions(path):
    check(path.read_bytes())
