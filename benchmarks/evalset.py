"""A folder of generated evaluation images and its ground truth, built once and reused while the
parameters that built it (recorded in a stamp file inside it) stay the same."""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import pandas as pd


class EvalSet:
    """`folder` of images, `truth_csv` of one row per file, both made with `params`."""

    def __init__(self, folder: Path, truth_csv: Path, params: dict) -> None:
        self.folder, self.truth_csv, self.params = folder, truth_csv, params
        self.stamp = folder / ".params.json"
        self.started = time.perf_counter()

    def cached(self) -> pd.DataFrame | None:
        """The ground truth when the folder was built with these parameters; else None, with
        any stale folder removed so that the caller builds it afresh."""
        if self.stamp.exists() and self.truth_csv.exists() and json.loads(self.stamp.read_text()) == self.params:
            return pd.read_csv(self.truth_csv)
        if self.folder.exists():
            shutil.rmtree(self.folder)
        self.started = time.perf_counter()
        return None

    def save(self, truth: pd.DataFrame) -> pd.DataFrame:
        """Record the freshly built folder's ground truth and its parameters; returns `truth`."""
        truth.to_csv(self.truth_csv, index=False)
        self.stamp.write_text(json.dumps(self.params))
        print(f"built {len(truth)} files in {self.folder} in {time.perf_counter() - self.started:.0f}s",
              file=sys.stderr)
        return truth
