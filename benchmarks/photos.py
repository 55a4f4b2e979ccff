"""Distinct real photographs for the accuracy benchmarks, from package registries only.

- "calibration": the colour photographs inside installed Python packages (scikit-image's sample
  data, scikit-learn's two sample images, matplotlib's Grace Hopper): 11 scenes.
- "held-out": Debian's desktop wallpaper packages (mate-backgrounds' nature photographs and
  plasma-workspace-wallpapers: the largest image of each set), fetched with `apt-get download`
  into benchmarks/data/debian-wallpapers/ once: 27 scenes.
- "hard": what is left and harder: scikit-image's grayscale scenes and textures, GNOME's
  backgrounds (gnome-backgrounds) and the Plasma sets that are renderings: 27 images.

Every photo is returned as RGB with its longer side at most MAX_SIDE pixels.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # package_photos: the photographs the tests use too
WALLPAPERS = HERE / "data" / "debian-wallpapers"
DEBS = ("mate-backgrounds", "plasma-workspace-wallpapers", "gnome-backgrounds")
MAX_SIDE = 1024
SKIP = {"Flow", "Honeywave", "Opal", "Volna", "Kokkini", "Cluster", "Patak", "Shell", "FlyingKonqui", "Grey",
        "IceCold", "Elarun", "Kay", "summer_1am", "Altai", "Next"}  # abstract renderings, not photographs


def _fit(im: Image.Image) -> Image.Image:
    im = im.convert("RGB")
    im.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    return im


def calibration() -> dict[str, Image.Image]:
    import matplotlib
    from package_photos import package_photographs

    photos = package_photographs()
    photos["grace_hopper"] = Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")
    return {k: _fit(v) for k, v in photos.items()}


def _unpacked() -> Path:
    """Debian's wallpaper packages, downloaded and unpacked once."""
    if not (WALLPAPERS / "files").exists():
        debs = WALLPAPERS / "debs"
        debs.mkdir(parents=True)
        subprocess.run(["apt-get", "download", *DEBS], cwd=debs, check=True, capture_output=True)
        for deb in debs.glob("*.deb"):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(WALLPAPERS / "files")], check=True)
    return WALLPAPERS / "files"


def _plasma_sets() -> dict[str, Path]:
    """The largest image of each Plasma wallpaper set."""
    sets: dict[str, Path] = {}
    for path in (_unpacked() / "usr" / "share" / "wallpapers").rglob("*"):
        parts = path.parts
        if path.suffix.lower() in (".jpg", ".jpeg", ".png") and "contents" in parts:
            name = parts[parts.index("wallpapers") + 1]
            if name not in sets or path.stat().st_size > sets[name].stat().st_size:
                sets[name] = path
    return sets


def held_out() -> dict[str, Image.Image]:
    photos: dict[str, Image.Image] = {}
    for path in sorted(_unpacked().rglob("*.jpg")):
        if "/nature/" in path.as_posix():
            photos[f"mate-{path.stem}"] = _fit(Image.open(path))
    photos |= {f"plasma-{name}": _fit(Image.open(path)) for name, path in sorted(_plasma_sets().items())
               if name not in SKIP}
    return photos


def hard() -> dict[str, Image.Image]:
    import skimage.data as d

    images = {name: Image.fromarray(getattr(d, name)()) for name in
              ("camera", "moon", "coins", "clock", "horse", "page", "text", "cell", "brick", "grass", "gravel",
               "microaneurysms")}
    for path in sorted((_unpacked() / "usr" / "share" / "backgrounds" / "gnome").glob("*-l.webp")):
        images[f"gnome-{path.stem}"] = Image.open(path)
    images |= {f"plasma-{name}": Image.open(path) for name, path in sorted(_plasma_sets().items()) if name in SKIP}
    return {k: _fit(v) for k, v in images.items()}
