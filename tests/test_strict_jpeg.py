"""The scan's strict JPEG decode: Pillow's pixels at every draft scale, libjpeg's complaints as codes."""
from __future__ import annotations

import io

import numpy as np
import pytest
from integrity_corpus import cut_scan, encode
from PIL import Image, ImageCms

from curate.imaging import strict_jpeg
from curate.imaging.probe import probe

from conftest import photo_like

ENCODINGS = {"420": {}, "444": {"subsampling": 0}, "progressive": {"progressive": True},
             "restart": {"restart_marker_blocks": 2}}


@pytest.mark.parametrize("mode", ["RGB", "L", "CMYK"])
@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_pixels_are_pillows_at_every_draft_scale(mode, encoding):
    """Thumbnails, hashes and sharpness stay what Pillow's decode gave before this path existed."""
    data = encode(photo_like(11, (203, 157)).convert(mode), "JPEG", quality=85, **ENCODINGS[encoding])
    for decode_size in (16, 30, 60, 157):
        scale = strict_jpeg.draft_scale(203, 157, decode_size)
        with Image.open(io.BytesIO(data)) as im:
            im.draft(None, (decode_size, decode_size))
            expected = np.asarray(im.convert(mode))
        got = strict_jpeg.decode(data, mode, 203, 157, scale)
        assert got is not None and got.mode == ("RGBX" if mode == "RGB" else mode)
        np.testing.assert_array_equal(np.asarray(got.convert(mode)), expected, err_msg=f"{encoding} 1/{scale}")


def test_what_libjpeg_reports_becomes_a_code():
    prog = encode(photo_like(12, (160, 120)), "JPEG", quality=90, progressive=True)
    base = encode(photo_like(12, (160, 120)), "JPEG", quality=90)
    with Image.open(io.BytesIO(cut_scan(prog, 0.5, True) + b"\xff\xd9")) as im:
        im.load()  # Pillow decodes a file cut inside its last progressive scan without a word
    facts, _ = probe(cut_scan(prog, 0.5, True) + b"\xff\xd9")
    assert (facts["error_code"], facts["error_message"]) == ("corrupt", "libjpeg: Corrupt JPEG data: premature end "
                                                                        "of data segment")
    facts, _ = probe(cut_scan(base, 0.5))
    assert facts["error_code"] == "truncated" and facts["error_message"].startswith("libjpeg: Premature end of JPEG")
    assert facts["recoverable"] is True
    facts, _ = probe(cut_scan(base, 0.5) + b"\xff\xd9", structure_checks=False)
    assert facts["status"] == "ok"  # without the checks the decode is lenient, as Pillow's is


def test_a_header_turbojpeg_does_not_handle_is_decoded_by_pillow():
    data = bytearray(encode(photo_like(13, (96, 64)), "JPEG", quality=90))
    sof = data.index(b"\xff\xc0")
    data[sof + 11] = 0x31  # luma sampled 3x1: TurboJPEG cannot name the subsampling, libjpeg decodes it
    assert strict_jpeg.decode(bytes(data), "RGB", 96, 64, 1) is None
    facts, thumb = probe(bytes(data))
    assert facts["status"] == "ok" and thumb is not None


def test_cmyk_jpegs_are_decoded_strictly_with_their_icc_profile():
    """CMYK files cut inside a scan are corrupt (Pillow decodes them without a word); a clean one
    keeps the ICC profile that converts it for display."""
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    cmyk = photo_like(14, (160, 120)).convert("CMYK")
    clean = encode(cmyk, "JPEG", quality=90, icc_profile=profile)
    got = strict_jpeg.decode(clean, "CMYK", 160, 120, 1)
    assert got is not None and got.info["icc_profile"] == profile
    prog = encode(cmyk, "JPEG", quality=90, progressive=True)
    for cut in (cut_scan(clean, 0.5) + b"\xff\xd9", cut_scan(prog, 0.5, True) + b"\xff\xd9"):
        with Image.open(io.BytesIO(cut)) as im:
            im.load()
        facts, _ = probe(cut)
        assert (facts["error_code"], facts["error_message"]) == ("corrupt", "libjpeg: Corrupt JPEG data: premature "
                                                                            "end of data segment")
