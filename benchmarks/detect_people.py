"""People detection on real wide-shot footage: hog_blazepose (the offline default) against
MediaPipe's BlazePose alone (the baseline), on OpenCV's campus camera (``vtest.avi`` from the
Debian package opencv-doc, 768x576, 10 fps, 60-150 px tall pedestrians).

Run on demand (not part of the tests):

    apt-get install opencv-doc                      # scripts/setup.sh installs it
    .venv/bin/python benchmarks/detect_people.py [--frames 40] [--repeat 3]

For each backend, frames/s of ``detect([frame])`` on frames already decoded into memory (the
stage calls it one frame at a time), the two alternating ``--repeat`` times (min and median of
the per-run seconds are printed; the machines are shared and noisy), and the ratio to the
baseline measured in the same run. Then recall and precision of person boxes (IoU >= 0.5) on
the held-out hand-labelled frames of ``tests/real_footage/people.csv``, and a sweep of
``min_person_height`` (the speed/recall trade the config exposes).

Target (issue 23): recall on people >= 60 px tall at least twice MediaPipe's alone.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests"))

from real_footage import media_path, person_box_scores, read_video_frames  # noqa: E402

from vidmine.config import validate_config  # noqa: E402
from vidmine.stages.detect.detections import make_detector  # noqa: E402


def detect_settings(**overrides) -> dict:
    config = {"datasets": {"d": {"source": {"type": "demo"}, "detect": overrides}}}
    return validate_config(config)["datasets"]["d"]["detect"]


def seconds_per_frame(detector, frames: list) -> float:
    started = time.perf_counter()
    for frame in frames:
        detector.detect([frame])
    return (time.perf_counter() - started) / len(frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40, help="frames timed per run")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    cache = Path(tempfile.mkdtemp(prefix="vidmine-people-"))
    video = media_path("opencv-doc:vtest.avi", cache)
    decoded = read_video_frames(video, set(range(0, 10 * args.frames, 10)))
    frames = [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for _, f in sorted(decoded.items())]
    backends = {
        "mediapipe": detect_settings(backend="mediapipe"),
        "hog_blazepose": detect_settings(backend="hog_blazepose"),
    }
    detectors = {name: make_detector(settings) for name, settings in backends.items()}
    runs: dict[str, list[float]] = {name: [] for name in detectors}
    for _ in range(args.repeat):
        for name, detector in detectors.items():
            runs[name].append(seconds_per_frame(detector, frames))
    base = min(runs["mediapipe"])
    print(f"{len(frames)} frames of {video.name} (768x576), {args.repeat} alternating runs")
    for name, times in runs.items():
        print(
            f"  {name:14s} min {1 / min(times):6.1f} frames/s, median "
            f"{1 / statistics.median(times):6.1f} frames/s, time x{min(times) / base:.1f} "
            "the baseline"
        )
    print("held-out person boxes (IoU >= 0.5):")
    for name, detector in detectors.items():
        t = person_box_scores(lambda rgb, d=detector: d.detect([rgb])[0].boxes, "held_out", cache)
        print(
            f"  {name:14s} recall {t['recall']:.3f}, >= 60 px {t['recall_tall']:.3f}, "
            f"precision {t['precision']:.3f}"
        )
    print("min_person_height sweep (hog_blazepose):")
    for height in (40, 50, 70, 100):
        detector = make_detector(
            detect_settings(backend="hog_blazepose", hog_blazepose={"min_person_height": height})
        )
        speed = 1 / seconds_per_frame(detector, frames[:10])
        t = person_box_scores(lambda rgb, d=detector: d.detect([rgb])[0].boxes, "held_out", cache)
        print(
            f"  {height:3d} px: {speed:5.1f} frames/s, recall {t['recall']:.3f}, "
            f">= 60 px {t['recall_tall']:.3f}, precision {t['precision']:.3f}"
        )
        detector.close()


if __name__ == "__main__":
    main()
