#!/usr/bin/env bash
# Builds benchmarks/.venv-imagededup: the environment `benchmarks/scan.py` runs imagededup in
# (and generates its test photos with, from scikit-image's bundled sample photographs).
#
# imagededup imports torch and torchvision when `imagededup.methods` is imported, although its
# hashing (PHash, DHash, ...) never calls them, and PyPI's torchvision does not load beside the
# project's local torch build. So imagededup is installed with --no-deps, next to what its
# import chain and hashing path really use (numpy, Pillow, PyWavelets, scipy, tqdm,
# scikit-learn, matplotlib), and torch/torchvision are stand-in modules (stubs/, put on the path
# by a .pth file) that only satisfy the names imagededup's modules touch at import time. The
# hashing code itself is imagededup's own, unchanged.
#
# Pillow and numpy are pinned to the project venv's versions (when it exists) so that imagededup,
# the bare loop and curate decode with the same libjpeg-turbo.
#
# Usage: bash benchmarks/setup_imagededup.sh   (idempotent; rerun after deleting the folder to rebuild)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
venv="$here/.venv-imagededup"
python="${PYTHON:-python3}"

pins=()
if [ -x "$root/.venv/bin/python" ]; then
    mapfile -t pins < <("$root/.venv/bin/python" - <<'EOF'
from importlib.metadata import version
for name in ("pillow", "numpy"):
    try:
        print(f"{name}=={version(name)}")
    except Exception:
        pass
EOF
)
fi
[ ${#pins[@]} -gt 0 ] || pins=("pillow" "numpy")

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check \
    "${pins[@]}" scipy PyWavelets tqdm scikit-learn matplotlib scikit-image psutil
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps "imagededup==0.3.3.post2"

# Stand-ins for torch and torchvision: every attribute is one permissive placeholder class that
# can be subclassed, called, indexed into typing constructs, and have attributes read.
stubs="$venv/stubs"
rm -rf "$stubs"
mkdir -p "$stubs/torch/nn" "$stubs/torch/utils" "$stubs/torchvision/models" "$stubs/torchvision/transforms"
cat > "$stubs/_curate_bench_stub.py" <<'EOF'
"""Placeholder for torch/torchvision names that imagededup's modules read at import time."""


class _AnyMeta(type):
    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return Placeholder

    def __call__(cls, *args, **kwargs):
        if cls is Placeholder:
            return Placeholder
        raise RuntimeError("torch/torchvision are stand-ins in this benchmark environment")


class Placeholder(metaclass=_AnyMeta):
    pass


def __getattr__(name):  # PEP 562: any module attribute is the placeholder
    if name.startswith("__"):
        raise AttributeError(name)
    return Placeholder
EOF
for mod in torch/__init__ torch/nn/__init__ torch/utils/__init__ torch/utils/data \
           torchvision/__init__ torchvision/models/__init__ torchvision/models/vision_transformer \
           torchvision/transforms/__init__; do
    echo "from _curate_bench_stub import __getattr__  # stand-in, see benchmarks/setup_imagededup.sh" \
        > "$stubs/$mod.py"
done
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$stubs" > "$site/curate_bench_stubs.pth"

"$venv/bin/python" - <<'EOF'
import imagededup, PIL
from imagededup.methods import PHash
print(f"imagededup {imagededup.__version__} (Pillow {PIL.__version__}) ready: {PHash.__module__}.PHash")
EOF
