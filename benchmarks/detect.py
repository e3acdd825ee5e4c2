"""Detection speed: every available detect backend on the demo videos, and where the detect
stage's time goes.

Run on demand (not part of the tests):

    .venv/bin/python benchmarks/detect.py
    .venv/bin/python benchmarks/detect.py --videos carphone --repeat 3 --skip-torchvision

mediapipe (BlazePose, the CPU default, with the config's defaults: up to 4 people, masks on),
on whole demo videos (carphone 176x144, 120 frames; bikes 640x272, 250 frames), every frame,
measured in the same run:

* ``model only`` (the baseline): the detector's ``detect([frame])`` on frames already decoded
  into memory, one frame per call as the stage calls it;
* ``decode only``: ``iter_sampled`` over every frame (OpenCV decode and RGB conversion);
* ``whole stage``: ``DetectStage.process`` on the video as one clip (decode, model, ByteTrack
  with appearance features, track table written), with the shares of its decode, model and
  track timings in its wall time (``other``: what none of the three covers);
* ``4 people``: carphone's frames tiled 1x4 side by side (704x144, four drivers), model only,
  with the mean number of people found per frame.

Target (issue): on CPU with mediapipe, the whole stage runs at >= 0.8x the model-only frames/s;
the issue quotes about 14 frames/s for the 4-people case on 2 cores.

torchvision: keypoint R-CNN (keypointrcnn_resnet50_fpn, persons only) on the first
``--torchvision-frames`` frames of carphone, in batches of 1 and 4, on the CPU and on CUDA when
available. No weights can be downloaded on the development machines, so it runs with random
weights (``person_weights: none``, seeded): the time is real, the detections mean nothing, and
the keypoint head's cost depends on how many boxes reach it (printed; random weights may pass
more or fewer than trained ones would). detectron2 is timed the same way when it can be built
(installed, with its weights), else the reason it cannot is printed.

Each measurement is the best of ``--repeat`` runs; models are built and warmed up (one call)
outside the timings.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")  # mediapipe's glog lines on stderr
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from vidmine.config import validate_config  # noqa: E402
from vidmine.errors import BackendUnavailable  # noqa: E402
from vidmine.layout import DatasetLayout  # noqa: E402
from vidmine.sources import demo_video_paths  # noqa: E402
from vidmine.stages.detect.detections import make_detector  # noqa: E402
from vidmine.stages.detect.stage import DetectStage, iter_sampled  # noqa: E402

SHARD = "s00000"
TARGET_RATIO = 0.8
ISSUE_4PEOPLE_FPS = 14.0
BATCH_SIZES = (1, 4)


def probe(path: Path) -> tuple[float, int, int]:
    capture = cv2.VideoCapture(str(path))
    try:
        return (
            capture.get(cv2.CAP_PROP_FPS),
            int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        )
    finally:
        capture.release()


def clip_item(layout: DatasetLayout, name: str, source: Path) -> tuple[dict, list[np.ndarray]]:
    """A link to ``source`` as one private clip of the dataset, its item and its RGB frames."""
    path = layout.private_clips(SHARD) / f"{name}-c000.mp4"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(source)
    fps, width, height = probe(path)
    frames = [frame for _, frame in iter_sampled(path, list(range(100_000)))]
    item = {
        "id": f"{name}-c000",
        "clip_id": f"{name}-c000",
        "video_id": name,
        "path": str(path.relative_to(layout.root)),
        "n_frames": len(frames),
        "fps": fps,
        "width": width,
        "height": height,
        "start_time": 0.0,
        "end_time": len(frames) / fps,
    }
    return item, frames


def time_decode(path: Path, n_frames: int) -> float:
    started = time.perf_counter()
    count = sum(1 for _ in iter_sampled(path, list(range(n_frames))))
    seconds = time.perf_counter() - started
    assert count == n_frames, (count, n_frames)
    return seconds


def time_model(detector, frames: list[np.ndarray]) -> tuple[float, float]:
    """Seconds for ``detect([frame])`` over all frames, and mean detections per frame."""
    found = 0
    started = time.perf_counter()
    for frame in frames:
        found += len(detector.detect([frame])[0])
    return time.perf_counter() - started, found / len(frames)


def time_stage(layout: DatasetLayout, settings: dict, item: dict, warm: np.ndarray):
    """Wall seconds of ``DetectStage.process`` and the stage's own timing fields."""
    stage = DetectStage(layout, SHARD, settings)
    stage.detector.detect([warm])
    started = time.perf_counter()
    result = stage.process(item)
    seconds = time.perf_counter() - started
    if result.status != "ok":
        raise RuntimeError(f"detect stage on {item['id']}: {result.reason}")
    return seconds, result.fields


def speed(frames: int, seconds: float, base: float | None) -> str:
    fps = frames / seconds
    ratio = f"  x{fps / base:.2f}" if base else ""
    return f"{fps:9.1f} frames/s{ratio}" if fps >= 10 else f"{fps:9.3f} frames/s{ratio}"


def mediapipe_section(args, layout: DatasetLayout, settings: dict) -> dict[str, float]:
    """The mediapipe tables; returns model-only frames/s by video (for later ratios)."""
    try:
        detector = make_detector(settings)
    except BackendUnavailable as exc:
        print(f"mediapipe: unavailable ({exc})")
        return {}
    info = detector.describe()
    options = settings["mediapipe"]
    print(
        f"mediapipe {info['mediapipe']} {info['model']} (up to {options['num_poses']} people, "
        f"masks {'on' if options['masks'] else 'off'}), {os.cpu_count()} CPU cores, "
        f"best of {args.repeat}"
    )
    paths = demo_video_paths()
    model_fps: dict[str, float] = {}
    decoded: dict[str, list[np.ndarray]] = {}
    verdicts = []
    for name in args.videos:
        item, frames = clip_item(layout, name, paths[name])
        decoded[name] = frames
        n = len(frames)
        detector.detect([frames[0]])
        model_s = decode_s = stage_s = float("inf")
        fields: dict = {}
        people = 0.0
        for _ in range(args.repeat):
            seconds, people = time_model(detector, frames)
            model_s = min(model_s, seconds)
            decode_s = min(decode_s, time_decode(layout.root / item["path"], n))
            seconds, stage_fields = time_stage(layout, settings, item, frames[0])
            if seconds < stage_s:
                stage_s, fields = seconds, stage_fields
        base = n / model_s
        model_fps[name] = base
        assert fields["n_sampled"] == n, fields
        shares = {k: fields[f"{k}_s"] / stage_s for k in ("decode", "model", "track")}
        shares["other"] = max(0.0, 1.0 - sum(shares.values()))
        share_text = " | ".join(f"{k} {v:4.0%}" for k, v in shares.items())
        ratio = (n / stage_s) / base
        verdict = "ok" if ratio >= TARGET_RATIO else "NOT met"
        verdicts.append(verdict)
        print(f"{name} {item['width']}x{item['height']}, {n} frames")
        print(f"  model only  {speed(n, model_s, base)}  ({people:.2f} people/frame)")
        print(f"  decode only {speed(n, decode_s, base)}")
        print(f"  whole stage {speed(n, stage_s, base)}  ({share_text})")
        print(f"  target (whole stage >= {TARGET_RATIO}x model only): {verdict} (x{ratio:.2f})")

    if "carphone" in args.videos:
        tiled = [np.concatenate([f] * 4, axis=1) for f in decoded["carphone"]]
        detector.detect([tiled[0]])
        seconds, people = min(time_model(detector, tiled) for _ in range(args.repeat))
        height, width = tiled[0].shape[:2]
        print(f"4 people: carphone tiled 1x4 ({width}x{height}), {len(tiled)} frames")
        print(
            f"  model only  {speed(len(tiled), seconds, model_fps['carphone'])} vs carphone  "
            f"({people:.2f} people/frame; issue: ~{ISSUE_4PEOPLE_FPS:.0f} frames/s on 2 cores)"
        )
    if verdicts:
        print(f"target: {'ok' if all(v == 'ok' for v in verdicts) else 'NOT met'}")
    detector.close()
    return model_fps


def batched_section(name: str, note: str, settings_for, frames: list[np.ndarray], repeat: int):
    """Frames/s of a batched backend per device and batch size, against CPU batch 1."""
    import torch

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    base = None
    head_boxes: list[int] = []  # boxes that reach R-CNN's keypoint head (its cost grows with them)
    for device in devices:
        torch.manual_seed(0)  # the same random weights in every run and on every device
        try:
            detector = make_detector(settings_for(device))
        except BackendUnavailable as exc:
            print(f"{name}: unavailable ({exc})")
            return
        roi_heads = getattr(getattr(detector, "person", None), "roi_heads", None)
        if roi_heads is not None:
            roi_heads.register_forward_hook(
                lambda _module, _inputs, output: head_boxes.extend(
                    len(r["boxes"]) for r in output[0]
                )
            )
        if base is None:
            threads = torch.get_num_threads()
            print(f"{name} {detector.describe()['model']}, {len(frames)} frames of carphone")
            print(f"  torch {torch.__version__}, {threads} CPU threads; {note}")
        detector.detect(frames[:1])
        for batch in BATCH_SIZES:
            if device != "cpu":
                detector.detect(frames[:batch])
            best, boxes = float("inf"), 0
            for _ in range(repeat):
                started = time.perf_counter()
                boxes = 0
                head_boxes.clear()
                for i in range(0, len(frames), batch):
                    boxes += sum(len(d) for d in detector.detect(frames[i : i + batch]))
                best = min(best, time.perf_counter() - started)
            base = base or len(frames) / best
            line = f"  {device:4s} batch {batch} {speed(len(frames), best, base)} vs cpu batch 1"
            found = f"{boxes / len(frames):.0f} boxes/frame kept"
            if head_boxes:
                found += f", {np.mean(head_boxes):.0f} at the keypoint head"
            print(f"{line}  ({found})")
        del detector
    if devices == ["cpu"]:
        print("  cuda: not available")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--videos", nargs="+", default=["carphone", "bikes"])
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement (best kept)")
    parser.add_argument("--torchvision-frames", type=int, default=8)
    parser.add_argument("--skip-torchvision", action="store_true")
    args = parser.parse_args()
    unknown = set(args.videos) - set(demo_video_paths())
    if unknown:
        parser.error(f"unknown demo videos: {', '.join(sorted(unknown))}")
    config = validate_config({"datasets": {"d": {"source": {"type": "demo"}}}})["datasets"]["d"]
    settings = {**config["detect"], "backend": "mediapipe"}

    with tempfile.TemporaryDirectory() as tmp:
        layout = DatasetLayout(Path(tmp) / "results", "bench")
        mediapipe_section(args, layout, settings)

    carphone = demo_video_paths()["carphone"]
    frames = [f for _, f in iter_sampled(carphone, list(range(args.torchvision_frames)))]
    if args.skip_torchvision:
        print("torchvision: skipped (--skip-torchvision)")
    else:
        batched_section(
            "torchvision",
            "RANDOM weights (person_weights: none, nothing can be\n  downloaded here, seed 0): "
            "the timing is real, the detections are meaningless, and the\n  keypoint head's "
            "share depends on how many boxes reach it",
            lambda device: {
                "backend": "torchvision",
                "batch_size": max(BATCH_SIZES),
                "torchvision": {
                    "person_weights": "none",
                    "object_model": None,
                    "object_weights": "none",
                    "score_threshold": 0.5,
                    "device": device,
                },
            },
            frames,
            args.repeat,
        )
    batched_section(
        "detectron2",
        "configured weights",
        lambda device: {
            "backend": "detectron2",
            "batch_size": max(BATCH_SIZES),
            "detectron2": {**config["detect"].get("detectron2", {}), "device": device},
        },
        frames,
        args.repeat,
    )


if __name__ == "__main__":
    main()
