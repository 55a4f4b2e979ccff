"""Real colour photographs that ship inside installed Python packages, for tests and benchmarks
that need distinct real scenes without a download: scikit-image's sample data and scikit-learn's
two sample images (10 scenes, RGB, at their own sizes)."""
from __future__ import annotations

from PIL import Image


def package_photographs() -> dict[str, Image.Image]:
    """name -> RGB photograph; each a different scene."""
    import skimage.data as d
    from sklearn.datasets import load_sample_images

    photos = {name: Image.fromarray(getattr(d, name)()) for name in
              ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")}
    photos["motorcycle"] = Image.fromarray(d.stereo_motorcycle()[0])
    china, flower = load_sample_images().images
    photos |= {"china": Image.fromarray(china), "flower": Image.fromarray(flower)}
    return {k: v.convert("RGB") for k, v in photos.items()}
