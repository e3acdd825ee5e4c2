"""Audit cost per frame against the blur's, on the demo's blurred clips (what the audit reads).

Times, per frame: the blur's CenterFace detection (the part of the blur the audit is compared
with; masking and encoding come on top), each auditor of the default ensemble alone, and the
whole ensemble at ``every_nth_frame`` 1, 2 and 5. Frames are decoded once beforehand, so only
detection is timed. Runs alternate ``--repeats`` times; min and median per frame are printed
with the ratio to the blur's detection measured in the same run.

    .venv/bin/snakemake --profile profiles/local all      # the demo's blurred clips
    .venv/bin/python benchmarks/audit.py [--dataset-dir results/demo] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from vidmine.config import validate_config  # noqa: E402
from vidmine.faces import FaceBlurrer  # noqa: E402
from vidmine.frames import iter_frames  # noqa: E402
from vidmine.stages.audit.backends import AuditEnsemble  # noqa: E402


def per_frame(run, frames) -> float:
    start = time.perf_counter()
    for index, frame in enumerate(frames):
        run(frame, index)
    return (time.perf_counter() - start) / len(frames) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset-dir", type=Path, default=REPO / "results" / "demo")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    clips = sorted((args.dataset_dir / "work" / "blurred").glob("*/*.mp4"))
    if not clips:
        sys.exit(f"{args.dataset_dir}: no blurred clips (run the demo first)")
    frames = [frame for clip in clips for frame in iter_frames(clip)]
    settings = validate_config({"datasets": {"d": {"source": {"type": "demo"}}}})["datasets"]["d"]
    blurrer = FaceBlurrer(settings["blur"])
    detectors = settings["audit"]["detectors"]
    ensemble = AuditEnsemble(detectors)
    runs = {"blur detection (CenterFace)": lambda f, i: blurrer.detect(f, 0.2)}
    for auditor in ensemble.auditors:
        runs[f"auditor {auditor.name}"] = lambda f, i, a=auditor: a.faces(f)
    for every in (1, 2, 5):
        thinned = AuditEnsemble({n: {**s, "every_nth_frame": every} for n, s in detectors.items()})
        runs[f"ensemble, every {every}. frame"] = thinned.frame
    for run in runs.values():  # warm-up: model loads and first-shape compiles
        per_frame(run, frames[:5])
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            times[name].append(per_frame(run, frames))
    baseline = min(times["blur detection (CenterFace)"])
    print(f"{len(frames)} frames of {len(clips)} blurred clips, {args.repeats} repeats")
    print(f"{'':34s} {'min ms':>8s} {'median ms':>10s} {'x blur':>7s}")
    for name, values in times.items():
        best = min(values)
        print(f"{name:34s} {best:8.2f} {statistics.median(values):10.2f} {best / baseline:7.2f}")


if __name__ == "__main__":
    main()
