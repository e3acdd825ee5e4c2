"""Where optional auditors fire on clips the default audit released clean.

A released clip passed the default ensemble, so a box an optional auditor (``dlib_cnn``,
``dlib_hog``, ``faceapi_ssd``, enabled at their defaults) finds there is either a face every
default auditor missed or a false fire that would re-blur a clean clip; the frames and boxes are
printed to be looked at. ``--every-cnn`` and ``--every-ssd`` thin dlib's CNN and face-api's
tiled SSD (seconds per frame on CPU) to every n-th frame.

    .venv/bin/snakemake all --profile profiles/local --configfile .test/config/config.yaml
    .venv/bin/python benchmarks/audit_fires.py [--clips results/demo/clips] [--every-cnn 5]
        [--every-ssd 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from vidmine.config import validate_config  # noqa: E402
from vidmine.frames import iter_frames  # noqa: E402
from vidmine.stages.audit.backends import shared_auditor  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=Path, default=REPO / "results" / "demo" / "clips")
    parser.add_argument("--every-cnn", type=int, default=5)
    parser.add_argument("--every-ssd", type=int, default=5)
    args = parser.parse_args()
    clips = sorted(args.clips.glob("**/*.mp4"))
    if not clips:
        sys.exit(f"{args.clips}: no released clips (run the demo first)")
    settings = validate_config({"datasets": {"d": {"source": {"type": "demo"}}}})["datasets"]["d"]
    detectors = settings["audit"]["detectors"]
    every = {name: 1 for name, options in detectors.items() if not options["enabled"]}
    every["dlib_cnn"], every["faceapi_ssd"] = args.every_cnn, args.every_ssd
    auditors = {
        name: shared_auditor(name, json.dumps({**detectors[name], "enabled": True}, sort_keys=True))
        for name in every
    }
    for clip in clips:
        start = time.perf_counter()
        looked = dict.fromkeys(auditors, 0)
        fired: dict[str, list[str]] = {name: [] for name in auditors}
        for index, frame in enumerate(iter_frames(clip)):
            for name, auditor in auditors.items():
                if index % every[name]:
                    continue
                looked[name] += 1
                for box in auditor.faces(frame):
                    fired[name].append(f"frame {index}: {box[:4].round().tolist()} {box[4]:.2f}")
        counts = ", ".join(
            f"{name} {len(fired[name])} boxes / {looked[name]} frames" for name in auditors
        )
        print(f"{clip.relative_to(args.clips)}: {counts} ({time.perf_counter() - start:.0f} s)")
        for name, boxes in fired.items():
            for box in boxes:
                print(f"  {name} {box}")


if __name__ == "__main__":
    main()
