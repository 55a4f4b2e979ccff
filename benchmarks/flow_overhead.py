"""Time a flow run against a plain `curate run` on sample_data/, interleaved, in one run.

    .venv/bin/python benchmarks/flow_overhead.py [--repeats 3]

Both run the same stages with the same config into fresh output folders; the flow run starts
Prefect's temporary server (no PREFECT_API_URL) and one shared Dask cluster.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CURATE = Path(sys.executable).parent / "curate"


def timed(cmd: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="curate-flowbench-"))
    config = work / "c.toml"
    config.write_text('[run]\nstages = ["scan", "validate", "dedup", "rebalance", "shard"]\n')
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(work / "prefect")
    times: dict[str, list[float]] = {"curate run": [], "curate run --flow": []}
    for i in range(args.repeats):
        for name, extra in (("curate run", []), ("curate run --flow", ["--flow"])):
            out = work / f"out-{i}-{len(extra)}"
            times[name].append(timed([str(CURATE), "run", str(ROOT / "sample_data"), "-o", str(out), "--config",
                                      str(config), *extra], env))
    shutil.rmtree(work)
    print("| mode | median s | runs (s) |\n|---|---|---|")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values):.1f} | {', '.join(f'{v:.1f}' for v in values)} |")
    added = statistics.median(times["curate run --flow"]) - statistics.median(times["curate run"])
    print(f"\nflow overhead (median): {added:.1f} s")


if __name__ == "__main__":
    main()
