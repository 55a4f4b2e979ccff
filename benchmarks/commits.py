"""Another commit's `curate`, for benchmarks that time the code before a change beside this tree's."""
from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def export(commit: str) -> Path:
    """The `curate` package of `commit`, in a temporary folder (see `environment`)."""
    tmp = Path(tempfile.mkdtemp(prefix=f"curate-{commit}-"))
    subprocess.run(f"git -C {ROOT} archive {commit} curate | tar -x -C {tmp}", shell=True, check=True)
    return tmp


def environment(tree: Path | str) -> dict[str, str]:
    """This process's environment with the `curate` package in `tree` first on the path of every
    process a `curate` command starts. PYTHONSAFEPATH keeps `python -m` (the decoder children) from
    putting the working directory first, which would be this checkout when run from its root."""
    return {**os.environ, "PYTHONPATH": str(tree), "PYTHONSAFEPATH": "1"}
