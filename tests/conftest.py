"""Shared fixtures: tiny generated images, the sample_data ground truth, a CLI runner."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from curate.config import Config, from_dict

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"


def photo_like(seed: int, size: tuple[int, int] = (96, 72)) -> Image.Image:
    """A deterministic RGB image with smooth structure (hashes distinguish different seeds)."""
    rng = np.random.default_rng(seed)
    w, h = size
    coarse = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    img = Image.fromarray(coarse, "RGB").resize((w, h), Image.Resampling.BICUBIC)
    noise = rng.normal(0, 6, (h, w, 3))
    return Image.fromarray(np.clip(np.asarray(img) + noise, 0, 255).astype(np.uint8), "RGB")


def encode(img: Image.Image, fmt: str = "JPEG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """train/{a: 4, b: 2}, test/a: 1 JPEGs plus a text file named .jpg."""
    src = tmp_path / "src"
    seed = 0
    for split, cls, n in [("train", "a", 4), ("train", "b", 2), ("test", "a", 1)]:
        for i in range(n):
            seed += 1
            write(src / split / cls / f"{i}.jpg", encode(photo_like(seed)))
    write(src / "train" / "a" / "notes.jpg", b"just some text\n")
    return src


@pytest.fixture
def cfg() -> Config:
    return from_dict({"engine": {"workers": 1}})


@pytest.fixture(scope="session")
def expected() -> dict:
    return json.loads((SAMPLE / "expected.json").read_text())


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _tree_digest(root: Path) -> dict[str, tuple[str, int]]:
    import hashlib

    return {p.relative_to(root).as_posix(): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


@pytest.fixture(scope="session", autouse=True)
def sample_data_is_never_modified():
    """Every test reads sample_data/; none may modify, move or delete a file in it."""
    before = _tree_digest(SAMPLE)
    yield
    assert _tree_digest(SAMPLE) == before, "a test run modified sample_data/"
