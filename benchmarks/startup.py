"""Start-up cost every shard job pays: ``vidmine run-stage --help`` and the import of each
stage's module (its backends included), each in a fresh interpreter.

    .venv/bin/python benchmarks/startup.py [--repeat 5]

The baseline, measured in the same run, is a bare interpreter (``python -c pass``); every row
prints min and median seconds over ``--repeat`` alternating runs and the ratio of its min to the
baseline's. ``import torch`` is timed too, as the reference cost that the parser and the CPU
stages must not pay (``tests/test_architecture.py`` checks that ``vidmine --help`` imports no
torch, mediapipe, OpenCV or OpenVINO).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from vidmine.registry import STAGES  # noqa: E402

BASELINE = "bare interpreter"


def cases() -> dict[str, list[str]]:
    python = [sys.executable]
    found = {BASELINE: [*python, "-c", "pass"]}
    found["vidmine run-stage --help"] = [*python, "-m", "vidmine", "run-stage", "--help"]
    for spec in STAGES:
        found[f"import {spec.module}.stage"] = [*python, "-c", f"import {spec.module}.stage"]
    found["import vidmine.stages.detect.backends.hog"] = [
        *python, "-c", "import vidmine.stages.detect.backends.hog"
    ]  # fmt: skip
    found["import torch (reference)"] = [*python, "-c", "import torch"]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    commands = cases()
    seconds: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.repeat):
        for name, command in commands.items():
            started = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            seconds[name].append(time.perf_counter() - started)
    base = min(seconds[BASELINE])
    for name, times in seconds.items():
        print(
            f"{name:50s} min {min(times):5.2f} s  median {statistics.median(times):5.2f} s"
            f"  x{min(times) / base:5.1f} the bare interpreter"
        )


if __name__ == "__main__":
    main()
