"""Validate: the malformed corpus, checks on generated images, config errors, CLI, quarantine."""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from curate.config import from_dict
from curate.pipeline import run_stage
from curate.schema import ISSUES, MANIFEST
from curate.workspace import Workspace

from conftest import SAMPLE, encode, photo_like, write

ORDINARY = [SAMPLE / "train" / c / f"{c}_01.jpg" for c in ("astronaut", "cat", "coffee", "flower", "raccoon",
                                                          "temple")]


def _exif_jpeg(img: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(img, "JPEG", exif=exif.tobytes())


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int, height: int, color_type: int = 0) -> bytes:
    """A tiny PNG whose header claims width x height pixels (color type 0 gray, 2 RGB)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        _png_chunk(b"IEND", b"")


def malformed_corpus(root: Path) -> dict[str, set[str]]:
    """Write 200+ malformed and unusual files; return path -> acceptable error codes (or {'ok'})."""
    rng = np.random.default_rng(7)
    expect: dict[str, set[str]] = {}

    def add(rel: str, data: bytes, codes: set[str]) -> None:
        write(root / rel, data)
        expect[rel] = codes

    bases = [photo_like(100 + i, (160, 120)) for i in range(10)]
    for i, img in enumerate(bases):
        jpeg = encode(img, "JPEG", quality=90)
        png = encode(img, "PNG")
        for frac in (0.1, 0.3, 0.5, 0.7, 0.95):  # truncations at several points
            add(f"trunc/jpeg_{i}_{int(frac * 100)}.jpg", jpeg[: int(len(jpeg) * frac)], {"truncated", "corrupt"})
            add(f"trunc/png_{i}_{int(frac * 100)}.png", png[: int(len(png) * frac)], {"truncated", "corrupt"})
        for k in range(4):  # flipped bytes in the header and in the scan: anything but a crash
            for region, lo, hi in (("head", 2, 200), ("scan", len(jpeg) // 3, len(jpeg) - 2)):
                data = bytearray(jpeg)
                for pos in rng.integers(lo, hi, 3):
                    data[pos] ^= 0xFF
                add(f"flip/{region}_{i}_{k}.jpg", bytes(data),
                    {"ok", "truncated", "corrupt", "not_image", "decompression_bomb", "unsupported_codec"})
        garbage = bytes(rng.integers(0, 256, 64, dtype=np.uint8))
        add(f"garbage/header_{i}.jpg", b"\xff\xd8\xff" + garbage + jpeg[67:], {"ok", "corrupt", "truncated"})
        add(f"garbage/random_{i}.jpg", garbage, {"not_image"})
        add(f"ext/png_as_jpg_{i}.jpg", png, {"ok"})
        add(f"ext/jpg_as_png_{i}.png", jpeg, {"ok"})
        for o in range(1, 9):
            add(f"exif/orient_{i}_{o}.jpg", _exif_jpeg(img, o), {"ok"})
    add("bomb/huge_header.png", bomb_png(100_000, 100_000), {"decompression_bomb"})
    add("bomb/over_limit.png", encode(photo_like(1, (300, 300)), "PNG"), {"decompression_bomb"})
    add("modes/gray16.png", encode(Image.fromarray((np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 20)),
                                   "PNG"), {"ok"})
    add("modes/cmyk.jpg", encode(photo_like(2).convert("CMYK"), "JPEG"), {"ok"})
    pal = photo_like(3).convert("P", palette=Image.Palette.ADAPTIVE)
    add("modes/palette_transparent.png", encode(pal, "PNG", transparency=0), {"ok"})
    frames = [photo_like(10 + k) for k in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    add("modes/animated.gif", buf.getvalue(), {"ok"})
    add("modes/empty.jpg", b"", {"zero_byte"})
    add("modes/heic.jpg", b"\x00\x00\x00\x18ftypheic" + b"\x00" * 40, {"unsupported_codec"})
    return expect


@pytest.mark.timeout(300)
def test_malformed_corpus_is_contained(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    expect = malformed_corpus(src)
    assert len(expect) >= 200
    cfg = from_dict({"scan": {"max_pixels": 200 * 200}, "engine": {"workers": 1}})
    for stage in ("scan", "validate"):
        run_stage(stage, str(src), str(out), cfg)
    rows = {r["path"]: r for r in Workspace(str(out)).read("manifest", MANIFEST).to_pylist()}
    assert set(rows) == set(expect)  # every file accounted for
    for path, codes in expect.items():
        got = rows[path]["error_code"] or "ok"
        assert got in codes, (path, got, rows[path]["error_message"])
    exif = {int(p.rsplit("_", 1)[1][0]): rows[p] for p in expect if p.startswith("exif/orient_0_")}
    for o, row in exif.items():
        assert row["exif_orientation"] == o
        assert (row["width"], row["height"]) == ((120, 160) if o >= 5 else (160, 120))
    # the same picture in every orientation: pixel hashes differ, dihedral pHash variants match
    assert len({r["pixel_hash"] for r in exif.values()}) == 8
    issues = Workspace(str(out)).read("issues", ISSUES).to_pylist()
    fired = {(i["path"], i["check"]) for i in issues}
    assert ("ext/png_as_jpg_0.jpg", "extension_mismatch") in fired
    assert ("modes/gray16.png", "high_bit_depth") in fired and ("modes/cmyk.jpg", "cmyk") in fired
    assert ("modes/animated.gif", "animated") in fired
    assert ("modes/palette_transparent.png", "palette_alpha") in fired
    assert ("exif/orient_0_6.jpg", "exif_rotated") in fired
    assert sum(1 for r in rows.values() if r["error_code"] == "truncated" and r["recoverable"]) > 0


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    ramp = (np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16)
    write(tmp_path / "src" / "a" / "ramp.png", encode(Image.fromarray(ramp), "PNG"))
    run_stage("scan", str(tmp_path / "src"), str(tmp_path / "out"), from_dict({}))
    row = Workspace(str(tmp_path / "out")).read("manifest", MANIFEST).to_pylist()[0]
    assert row["bit_depth"] == 16
    assert row["brightness_p05"] < 30 and row["brightness_p95"] > 225  # clipping would saturate at 255


def _quality_tree(root: Path) -> None:
    write(root / "a" / "dark.jpg", encode(Image.fromarray((np.asarray(photo_like(1)) * 0.1).astype(np.uint8))))
    write(root / "a" / "light.jpg", encode(Image.fromarray((255 - np.asarray(photo_like(2)) * 0.05).astype(
        np.uint8))))
    write(root / "a" / "blurry.jpg", encode(Image.new("RGB", (96, 72), (120, 80, 40)).resize((96, 72))))
    write(root / "a" / "gray_rgb.jpg", encode(photo_like(3).convert("L").convert("RGB")))
    write(root / "a" / "strip.jpg", encode(photo_like(4, (400, 40))))
    write(root / "a" / "tiny.png", encode(photo_like(5, (12, 9)), "PNG"))
    # ordinary photos (real ones: photo_like's smooth upscaled noise is blurred by construction)
    for i, photo in enumerate(ORDINARY):
        write(root / "b" / f"ok_{i}.jpg", photo.read_bytes())


def test_quality_checks_fire_on_generated_images(tmp_path):
    _quality_tree(tmp_path / "src")
    cfg = from_dict({})
    for stage in ("scan", "validate"):
        run_stage(stage, str(tmp_path / "src"), str(tmp_path / "out"), cfg)
    issues = Workspace(str(tmp_path / "out")).read("issues", ISSUES).to_pylist()
    fired = {(i["path"], i["check"]) for i in issues}
    for path, check in [("a/dark.jpg", "dark"), ("a/light.jpg", "light"), ("a/blurry.jpg", "blurry"),
                        ("a/blurry.jpg", "low_information"), ("a/gray_rgb.jpg", "grayscale"),
                        ("a/strip.jpg", "odd_aspect_ratio"), ("a/tiny.png", "too_small")]:
        assert (path, check) in fired, (path, check)
    assert not any(p and p.startswith("b/") for p, _ in fired)
    row = next(i for i in issues if i["check"] == "dark")
    assert row["threshold"] == 40 and row["score"] < 40 and row["severity"] == "warning"


def test_thresholds_severities_and_disabled_from_config(tmp_path):
    _quality_tree(tmp_path / "src")
    cfg = from_dict({"validate": {"thresholds": {"too_small": 8}, "severities": {"grayscale": "error"},
                                  "disabled": ["odd_aspect_ratio"]}})
    for stage in ("scan", "validate"):
        run_stage(stage, str(tmp_path / "src"), str(tmp_path / "out"), cfg)
    issues = Workspace(str(tmp_path / "out")).read("issues", ISSUES).to_pylist()
    checks = {i["check"]: i for i in issues}
    assert "too_small" not in checks and "odd_aspect_ratio" not in checks
    assert checks["grayscale"]["severity"] == "error"


def test_cli_validate_fail_on_quarantine_and_bad_config(tmp_path, runner):
    from curate.cli import main

    src, out = tmp_path / "src", tmp_path / "out"
    _quality_tree(src)
    broken = encode(photo_like(9))
    write(src / "b" / "broken.jpg", broken[: len(broken) * 6 // 10])
    assert runner.invoke(main, ["scan", str(src), "-o", str(out)]).exit_code == 0
    ok = runner.invoke(main, ["validate", str(out)])
    assert ok.exit_code == 0 and "truncated" in ok.output
    assert runner.invoke(main, ["validate", str(out), "--fail-on", "error"]).exit_code == 1
    cfg = tmp_path / "c.toml"
    cfg.write_text('[validate]\nthresholds = {blury = 3}\n')
    bad = runner.invoke(main, ["validate", str(out), "--config", str(cfg)])
    assert bad.exit_code == 2 and "unknown check 'blury'" in bad.output and "blurry" in bad.output
    cfg.write_text('[validate]\ndisabled = ["truncated", "corrupt"]\n')
    assert runner.invoke(main, ["validate", str(out), "--config", str(cfg), "--fail-on", "error"]).exit_code == 0

    before = {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}
    assert runner.invoke(main, ["validate", str(out)]).exit_code == 0
    q = runner.invoke(main, ["quarantine", str(out), "--to", str(tmp_path / "q"), "--copy"])
    assert q.exit_code == 0, q.output
    listed = (tmp_path / "q" / "quarantine.csv").read_text()
    assert "b/broken.jpg" in listed and "truncated" in listed and "a/dark.jpg" not in listed
    assert (tmp_path / "q" / "files" / "b" / "broken.jpg").read_bytes() == before[src / "b" / "broken.jpg"]
    assert {p: p.read_bytes() for p in src.rglob("*") if p.is_file()} == before
