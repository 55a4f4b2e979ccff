"""Structural checks: every rule fires on the file that breaks it, and on nothing clean."""
from __future__ import annotations

import io
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from integrity_corpus import cut_scan, encode, gif_blocks, png_build, png_chunks, variants
from PIL import Image

from curate.config import from_dict
from curate.imaging import structure
from curate.imaging.probe import probe
from curate.imaging.structure import gif, jpeg, png, tiff, webp
from curate.pipeline import run_stage
from curate.schema import ISSUES, MANIFEST
from curate.workspace import Workspace

from conftest import SAMPLE, photo_like, write

PHOTOS = [photo_like(1, (96, 72)), Image.open(SAMPLE / "train" / "cat" / "cat_01.jpg").convert("RGB")]


def outcome(data: bytes) -> tuple[str, dict]:
    facts, _ = probe(data)
    return ("error" if facts["status"] == "error" else "warning" if facts.get("structure_warnings") else "ok"), facts


@pytest.mark.parametrize("seed", range(len(PHOTOS)))
def test_every_corpus_case_scans_as_expected(seed):
    for fmt, kind, expected, data in variants(PHOTOS[seed], seed):
        if expected == "varies":
            continue
        got, facts = outcome(data)
        assert got == expected, (fmt, kind, facts.get("error_message"), facts.get("structure_warnings"))
        if got == "error" and facts["error_code"] == "corrupt" and "[" in (facts["error_message"] or ""):
            assert re.search(r"at offset \d+: .* \[\w+\.\w+\]", facts["error_message"]), facts["error_message"]


def test_a_next_ifd_past_the_end_is_corrupt_not_a_crash():
    # Pillow's `n_frames` walks every IFD before the decode: it raises on this one
    data = next(d for f, k, _, d in variants(PHOTOS[0], 0) if (f, k) == ("TIFF", "next_ifd_past_end"))
    assert outcome(data)[1]["error_code"] == "corrupt"


def rules(check, data: bytes) -> set[str]:
    with Image.open(io.BytesIO(data)) as im:
        return {f.rule for f in check(data, im)}


def _png(img: Image.Image) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    data = encode(img, "PNG")
    return data, png_chunks(data)


def test_png_rules_the_corpus_does_not_cover():
    data, chunks = _png(photo_like(2))
    ihdr, rest = chunks[0], chunks[1:]
    assert rules(png.check, data) == set()
    assert rules(png.check, png_build([ihdr, (b"ABCD", b"x"), *rest])) == {"png.critical"}
    assert rules(png.check, png_build([ihdr, (b"sRGB", b"\0"), (b"iCCP", b"p\0\0x"), *rest])) == {"png.srgb_iccp"}
    bad = struct.pack(">IIBBBBB", 96, 72, 3, 2, 0, 0, 0)  # 3-bit RGB
    assert {f.rule for f in png.check(png_build([(b"IHDR", bad), *rest]), Image.new("RGB", (1, 1)))} == {"png.ihdr"}
    assert {f.rule for f in png.check(data[:-12] + b"\x00\x00\x00\x00IE\x01D\x00\x00\x00\x00",
                                      Image.new("RGB", (1, 1)))} == {"png.chunk"}
    gray, gchunks = _png(photo_like(3).convert("L"))
    plte = (b"PLTE", bytes(range(48)))
    assert rules(png.check, png_build([gchunks[0], plte, *gchunks[1:]])) == {"png.plte"}


def test_jpeg_rules_the_corpus_does_not_cover():
    data = encode(photo_like(4), "JPEG")
    sof = data.index(b"\xff\xc0")
    length = int.from_bytes(data[sof + 2:sof + 4], "big")
    twice = data[:sof] + data[sof:sof + 2 + length] + data[sof:]
    assert {f.rule for f in jpeg.check(twice, Image.new("RGB", (1, 1)))} == {"jpeg.segment"}
    dqt = data.index(b"\xff\xdb")
    unknown = data[:dqt] + b"\xff\x05\x00\x02" + data[dqt:]
    assert {f.rule for f in jpeg.check(unknown, Image.new("RGB", (1, 1)))} == {"jpeg.marker"}


@pytest.mark.parametrize("options", [{}, {"optimize": True}, {"restart_marker_blocks": 3}, {"subsampling": 0}])
def test_images_that_really_end_in_flat_grey_are_not_premature(options):
    """The grey that libjpeg leaves after data runs out, told apart from grey that is coded."""
    top = np.asarray(photo_like(5, (64, 32)))
    for arr in (np.full((64, 64, 3), 128, np.uint8), np.concatenate([top, np.full((32, 64, 3), 128, np.uint8)])):
        data = encode(Image.fromarray(arr), "JPEG", **options)
        assert outcome(data)[0] == "ok" and rules(jpeg.check, data) == set(), options
    # cut inside the photo half: the grey half is no longer coded (an all-grey image cut short
    # decodes to the same pixels, with one-bit codes even to the same bits: nothing to tell).
    # The scan's strict decode says so first; the rule alone covers what Pillow decodes (CMYK).
    cut = cut_scan(data, 0.4) + b"\xff\xd9"
    got, facts = outcome(cut)
    assert got == "error" and facts["error_code"] == "corrupt", (options, facts)
    assert ("jpeg.restart" if "restart_marker_blocks" in options else "jpeg.premature") in rules(jpeg.check, cut)
    grey = encode(Image.new("L", (80, 64), 128), "JPEG")
    assert outcome(grey)[0] == "ok" and rules(jpeg.check, grey) == set()


def test_gif_tiff_webp_rules_the_corpus_does_not_cover():
    img = photo_like(6)
    tif = encode(img, "TIFF")
    ifd = struct.unpack("<I", tif[4:8])[0]
    count = struct.unpack("<H", tif[ifd:ifd + 2])[0]
    entries = [bytearray(tif[ifd + 2 + 12 * e:ifd + 14 + 12 * e]) for e in range(count)]
    for e in entries:
        if struct.unpack("<H", e[:2])[0] == 279:  # StripByteCounts: a count of 0
            e[8:12] = b"\x00\x00\x00\x00" if struct.unpack("<I", e[4:8])[0] == 1 else e[8:12]
    zero = tif[:ifd + 2] + b"".join(entries) + tif[ifd + 2 + 12 * count:]
    assert {f.rule for f in tiff.check(zero, Image.new("RGB", (1, 1)))} == {"tiff.strip"}
    entries = [bytearray(tif[ifd + 2 + 12 * e:ifd + 14 + 12 * e]) for e in range(count)]
    entries[-1][2:4] = struct.pack("<H", 99)  # unknown field type
    typed = tif[:ifd + 2] + b"".join(entries) + tif[ifd + 2 + 12 * count:]
    assert {f.rule for f in tiff.check(typed, Image.new("RGB", (1, 1)))} == {"tiff.entry"}
    wp = encode(img, "WEBP")
    chunk = wp[:12] + b"VP8 " + struct.pack("<I", len(wp)) + wp[20:]
    assert {f.rule for f in webp.check(chunk, Image.new("RGB", (1, 1)))} == {"webp.chunk"}
    g = encode(img, "GIF")
    assert {f.rule for f in gif.check(g[:-1], Image.new("P", (1, 1)))} == {"gif.trailer"}


# the kinds of damage found in public test suites that the structure rules (not a decoder) catch
PUBLIC_SUITE_KINDS = {
    ("PNG", "missing_idat"): "png.idat", ("PNG", "chunk_after_iend"): "png.trailing",
    ("PNG", "unknown_critical_chunk"): "png.critical", ("PNG", "iend_length"): "png.iend",
    ("PNG", "plte_empty"): "png.plte", ("PNG", "plte_length_not_triples"): "png.plte",
    ("PNG", "trns_longer_than_plte"): "png.content", ("PNG", "hist_length"): "png.content",
    ("PNG", "bkgd_index_past_plte"): "png.content", ("PNG", "ancillary_length"): "png.content",
    ("PNG", "ancillary_value"): "png.content", ("PNG", "text_keyword"): "png.content",
    ("PNG", "text_method"): "png.content", ("PNG", "trns_with_alpha"): "png.content",
    ("GIF", "missing_block_terminator"): "gif.truncated", ("GIF", "lzw_cut_later_frame"): "gif.lzw",
    ("TIFF", "strip_offset_past_end"): "tiff.strip", ("TIFF", "next_ifd_past_end"): "tiff.ifd",
    ("TIFF", "exif_ifd_past_end"): "tiff.subifd", ("TIFF", "tag_wrong_type"): "tiff.type",
}
CHECKS = {"PNG": png.check, "GIF": gif.check, "TIFF": tiff.check}


@pytest.mark.parametrize("seed", range(len(PHOTOS)))
def test_public_suite_kinds_break_the_rule_named_for_them(seed):
    found = {(fmt, kind): {f.rule for f in CHECKS[fmt](data, Image.new("RGB", (1, 1)))}
             for fmt, kind, _, data in variants(PHOTOS[seed], seed) if (fmt, kind) in PUBLIC_SUITE_KINDS}
    assert found == {key: {rule} for key, rule in PUBLIC_SUITE_KINDS.items()}


def test_png_chunk_contents_as_libpng_reads_them():
    """Valid contents stay quiet (also what pngcheck alone refuses: a tIME in 1970, a tEXt with no
    NUL); each invalid one is a warning; a palette image's PLTE of a bad length is an error."""
    img = photo_like(9)
    _, chunks = _png(img)
    ihdr, rest = chunks[0], chunks[1:]

    def found(*extra: tuple[bytes, bytes], head: tuple[bytes, bytes] = ihdr, tail=rest) -> set[tuple[str, bool]]:
        return {(f.rule, f.error) for f in png.check(png_build([head, *extra, *tail]), Image.new("RGB", (1, 1)))}

    assert found((b"tIME", struct.pack(">HBBBBB", 1970, 1, 1, 0, 0, 0)), (b"tEXt", b"Comment"),
                 (b"sCAL", b"\x01" + b"1.5\x002e-3"), (b"iTXt", b"Title\x00\x00\x00en\x00\x00curate"),
                 (b"zTXt", b"Title\x00\x00" + zlib.compress(b"curate")), (b"sBIT", b"\x08\x05\x08"),
                 (b"sPLT", b"Palette\x00\x08" + bytes(12))) == set()
    for chunk in [(b"gAMA", bytes(4)), (b"sRGB", b"\x00\x00"), (b"sRGB", b"\x04"), (b"tEXt", b"k" * 80 + b"\x00x"),
                  (b"tEXt", b"Comment \x00x"), (b"zTXt", b"Comment\x00\x01xx"), (b"iTXt", b"Comment\x00\x02\x00"),
                  (b"sCAL", b"\x01" + b"0\x001"), (b"sCAL", b"\x01" + b"1Q\x001"), (b"sBIT", b"\x08\x08"),
                  (b"sBIT", b"\x08\x09\x08"), (b"tRNS", b"\x00\x00"), (b"bKGD", b"\x00\x00"),
                  (b"pHYs", struct.pack(">IIB", 1, 1, 2)), (b"tIME", struct.pack(">HBBBBB", 2024, 2, 30, 24, 0, 0)),
                  (b"sPLT", b"Palette\x00\x08" + bytes(13))]:
        assert found(chunk) == {("png.content", False)}, chunk
    assert found((b"PLTE", bytes(7))) == {("png.plte", False)}  # an RGB image's suggested palette: ignored
    pal = png_chunks(encode(img.convert("P", palette=Image.Palette.ADAPTIVE, colors=16), "PNG", bits=4))
    k = next(i for i, (kind, _) in enumerate(pal) if kind == b"PLTE")
    for body, error in ((b"", True), (bytes(7), True), (bytes(3 * 17), False)):
        assert found((b"PLTE", body), head=pal[0], tail=pal[k + 1:]) == {("png.plte", error)}, (len(body), error)


def test_gif_later_frames_are_decoded_only_for_animations():
    frames = [photo_like(10, (40, 30)), photo_like(11, (40, 30))]
    anim = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert rules(gif.check, anim) == set()
    start, end = [b for b in gif_blocks(anim) if anim[b[0]] == 0x2C][1]
    lzw = start + 10 + (3 << ((anim[start + 9] & 7) + 1) if anim[start + 9] & 0x80 else 0)
    cut = anim[:lzw + 1] + b"\x02" + anim[lzw + 2:lzw + 4] + b"\x00" + anim[end:]  # frame 1: 2 bytes of LZW data
    assert rules(gif.check, cut) == {"gif.lzw"}


def test_every_rule_is_documented_with_the_strict_decoder():
    for module in (png, jpeg, gif, tiff, webp):
        source = Path(module.__file__).read_text()
        used = set(re.findall(r'"((?:png|jpeg|gif|tiff|webp)\.[a-z_]+)"', source))
        assert used, module.__name__
        for rule in used:
            entry = rf"^- `{re.escape(rule)}` \((error|warning)\) .*\. [a-z]+: "
            assert re.search(entry, (module.__doc__ or "").replace("\n  ", " "), re.M), rule


def test_scan_records_warnings_and_validate_reports_nonconforming(tmp_path):
    img = photo_like(7)
    data, chunks = _png(img)
    srgb = (b"sRGB", b"\0")
    write(tmp_path / "src" / "a" / "dup_srgb.png", png_build([chunks[0], srgb, srgb, *chunks[1:]]))
    idat = data.index(b"IDAT")
    crc_at = idat + 4 + int.from_bytes(data[idat - 4:idat], "big")
    write(tmp_path / "src" / "a" / "idat_crc.png", data[:crc_at] + b"\0\0\0\0" + data[crc_at + 4:])
    write(tmp_path / "src" / "a" / "clean.png", data)
    for checks, out in ((True, tmp_path / "on"), (False, tmp_path / "off")):
        cfg = from_dict({"scan": {"structure_checks": checks}, "engine": {"workers": 1}})
        for stage in ("scan", "validate"):
            run_stage(stage, str(tmp_path / "src"), str(out), cfg)
    rows = {r["path"]: r for r in Workspace(str(tmp_path / "on")).read("manifest", MANIFEST).to_pylist()}
    assert rows["a/dup_srgb.png"]["status"] == "ok"
    assert rows["a/dup_srgb.png"]["structure_warnings"] == ["sRGB at offset 46: duplicate sRGB (first at offset "
                                                            "33) [png.duplicate]"]
    assert rows["a/idat_crc.png"]["error_code"] == "corrupt"
    assert rows["a/idat_crc.png"]["error_message"].startswith("IDAT at offset 33: CRC mismatch")
    assert rows["a/clean.png"]["status"] == "ok" and rows["a/clean.png"]["structure_warnings"] is None
    fired = {(i["path"], i["check"]): i for i in Workspace(str(tmp_path / "on")).read("issues", ISSUES).to_pylist()}
    assert fired[("a/dup_srgb.png", "nonconforming")]["severity"] == "warning"
    assert fired[("a/idat_crc.png", "corrupt")]["severity"] == "error"
    assert not any(p == "a/clean.png" for p, _ in fired)
    off = {r["path"]: r for r in Workspace(str(tmp_path / "off")).read("manifest", MANIFEST).to_pylist()}
    assert all(r["status"] == "ok" and r["structure_warnings"] is None for r in off.values())


def test_inspect_dispatches_on_the_decoded_format():
    data = encode(photo_like(8), "PNG") + b"tail"
    with Image.open(io.BytesIO(data)) as im:
        assert [f.rule for f in structure.inspect(data, im)] == ["png.trailing"]
    with Image.open(io.BytesIO(encode(photo_like(8), "BMP"))) as im:
        assert structure.inspect(b"", im) == []
