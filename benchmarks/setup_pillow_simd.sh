#!/usr/bin/env bash
# Installs pillow-simd (built here from its sdist, with AVX2) into a venv, in place of Pillow.
#
# pillow-simd is a drop-in fork of Pillow: same `PIL` package, SIMD (SSE4/AVX2) resampling,
# blur, convert and alpha code; decoding and encoding stay libjpeg-turbo/zlib/libpng.
# PyPI ships it as an sdist only, and it is compiled for SSE4 unless the compiler is told
# AVX2 (CC="cc -mavx2"), so it is built here, without pip's wheel cache (a cached wheel would
# skip the flag); the wheel it builds is kept in VENV/.pillow-simd-avx2 for re-installs.
#
# It replaces Pillow's files but is not *called* "pillow": installing anything that requires
# `pillow` afterwards (pip install -e ".[test]", a new dependency, ...) puts Pillow back over
# it. Rerun this script after such an install; it re-installs the kept wheel in seconds.
#
# Usage: bash benchmarks/setup_pillow_simd.sh [VENV]
#   VENV defaults to benchmarks/.venv-simd, which is created (plain venv + numpy) if missing.
#   An existing VENV (e.g. the project's .venv, or a copy of it) is used as it is.
#   Idempotent: when VENV already has an AVX2 pillow-simd (and not Pillow over it) nothing is
#   rebuilt; FORCE=1 rebuilds anyway. SIMD_VERSION overrides the pinned version.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${1:-$here/.venv-simd}"
version="${SIMD_VERSION:-12.1.1.post0}"
python_for_new="${PYTHON:-python3}"

say() { printf '+ %s\n' "$*"; }
run() { say "$*"; "$@"; }

# --- 1. system libraries the build links against -------------------------------------------
# jpeg + zlib: required by Pillow's build. lcms2: curate imports PIL.ImageCms at import time.
# png/webp/tiff/openjp2/freetype: keep the same format support as PyPI's Pillow wheel, so a scan
# treats WebP/TIFF/JPEG2000 files the same on either.
debs=(build-essential python3-dev pkg-config libjpeg62-turbo-dev zlib1g-dev libpng-dev liblcms2-dev
      libwebp-dev libtiff-dev libopenjp2-7-dev libfreetype-dev)
missing=()
for d in "${debs[@]}"; do
    dpkg -s "$d" >/dev/null 2>&1 || missing+=("$d")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
        exit 1
    fi
    run apt-get update -qq
    DEBIAN_FRONTEND=noninteractive run apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
    say "Debian build dependencies present: ${debs[*]}"
fi
if ! grep -qw avx2 /proc/cpuinfo; then
    echo "this CPU has no AVX2; build with SSE4 instead (CC=cc), or skip pillow-simd" >&2
    exit 1
fi

# --- 2. the venv --------------------------------------------------------------------------
if [ ! -x "$venv/bin/python" ]; then
    run "$python_for_new" -m venv "$venv"
    run "$venv/bin/python" -m pip install -q --disable-pip-version-check numpy
fi
py="$venv/bin/python"

# Whether VENV already has an AVX2 pillow-simd: PIL's version is pillow-simd's (".postN"), no
# "pillow" distribution is installed over it, and _imaging uses ymm (256-bit AVX) registers.
simd_ok() {
    "$py" - <<'EOF' || return 1
import sys
from importlib.metadata import PackageNotFoundError, version
import PIL, PIL._imaging as core
try:
    version("pillow")
    sys.exit(1)  # Pillow installed over (or beside) pillow-simd
except PackageNotFoundError:
    pass
sys.exit(0 if ".post" in PIL.__version__ and version("pillow-simd") == PIL.__version__ else 1)
EOF
    local so
    so="$("$py" -c 'import PIL._imaging as c; print(c.__file__)')"
    # (grep -c, not grep -q: under pipefail, objdump's SIGPIPE after an early grep -q exit fails)
    [ "$(objdump -d --no-show-raw-insn "$so" | grep -c '%ymm')" -gt 0 ]
}

if [ "${FORCE:-0}" != 1 ] && simd_ok 2>/dev/null; then
    say "pillow-simd (AVX2) already in $venv; FORCE=1 to rebuild"
else
    # --- 3. replace Pillow with pillow-simd, built with AVX2 ----------------------------------
    # The AVX2 wheel is built once and kept in the venv ($wheels), so re-applying it after a
    # later `pip install` has put Pillow back takes seconds, not a rebuild. FORCE=1 rebuilds.
    wheels="$venv/.pillow-simd-avx2"
    [ "${FORCE:-0}" != 1 ] || rm -rf "$wheels"
    if ! ls "$wheels"/pillow_simd-"$version"-*.whl >/dev/null 2>&1; then
        start=$(date +%s)
        say "CC=\"cc -mavx2\" $py -m pip wheel --no-binary pillow-simd --no-cache-dir --no-deps" \
            "-w $wheels pillow-simd==$version"
        CC="cc -mavx2" "$py" -m pip wheel -q --disable-pip-version-check \
            --no-binary pillow-simd --no-cache-dir --no-deps -w "$wheels" "pillow-simd==$version"
        say "build took $(( $(date +%s) - start )) s"
    fi
    # Both are uninstalled first: their files overlap (PIL/), and a pillow-simd left recorded
    # as installed under Pillow's files would make pip answer "already satisfied".
    run "$py" -m pip uninstall -y -q pillow pillow-simd || true
    run "$py" -m pip install -q --disable-pip-version-check --no-index --no-deps --find-links "$wheels" \
        "pillow-simd==$version"
fi

# --- 4. verify -------------------------------------------------------------------------------
run "$py" -c "import PIL; print(PIL.__version__)"
"$py" - <<'EOF'
import PIL
from PIL import features
from importlib.metadata import version
assert ".post" in PIL.__version__, f"PIL {PIL.__version__} is not pillow-simd"
assert features.check("jpg"), "pillow-simd built without JPEG"
assert features.check("littlecms2"), "pillow-simd built without lcms2 (curate needs PIL.ImageCms)"
have = [f for f in ("jpg", "zlib", "littlecms2", "webp", "libtiff", "jpg_2000", "freetype2") if features.check(f)]
print(f"pillow-simd {version('pillow-simd')} (PIL {PIL.__version__}), libjpeg-turbo "
      f"{features.version('libjpeg_turbo')}; features: {' '.join(have)}")
EOF
so="$("$py" -c 'import PIL._imaging as c; print(c.__file__)')"
ymm=$(objdump -d --no-show-raw-insn "$so" | grep -c '%ymm' || true)
echo "AVX2: $ymm instructions on ymm registers in $(basename "$so")"
[ "$ymm" -gt 0 ] || { echo "not an AVX2 build" >&2; exit 1; }
