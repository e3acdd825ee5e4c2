"""Lift wild 2D tracks (COCO-17, pixels) to 3D with a trained or published lifter.

A COCO-input model (VideoPose3D's in-the-wild recipe, and vidmine's default) takes the
track as it is. A model trained on H36M-layout 2D gets an approximate COCO -> H36M
conversion first. Missing keypoints (NaN) are interpolated over time beforehand.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from vidmine.formats.videopose3d import interpolate_missing, read_custom_2d
from vidmine.lifter.camera import normalize_screen_coordinates
from vidmine.lifter.checkpoint import LoadedLifter, load_lifter
from vidmine.lifter.evaluate import predict
from vidmine.lifter.skeleton import coco_to_h36m_2d, get_layout


def lift_keypoints(
    lifter: LoadedLifter,
    keypoints_px: np.ndarray,
    width: int,
    height: int,
    track_layout: str = "coco",
    tta: bool = True,
    device: torch.device | str = "cpu",
    with_trajectory: bool = True,
) -> np.ndarray:
    """(T, 17, 2) pixel keypoints (NaN = missing) -> (T, 17, 3) camera-space metres.

    Joints are root-relative; when the checkpoint has a trajectory model (semi-supervised
    training) and ``with_trajectory`` is set, its root trajectory is added.
    """
    kp = interpolate_missing(np.asarray(keypoints_px, dtype=np.float32))
    if lifter.input_layout != track_layout:
        if (track_layout, lifter.input_layout) != ("coco", "h36m"):
            raise ValueError(f"cannot feed {track_layout} tracks to a {lifter.input_layout} model")
        kp = coco_to_h36m_2d(kp)
    norm = normalize_screen_coordinates(kp, width, height)
    layout = get_layout(lifter.input_layout)
    pose = predict(lifter.model.to(device), norm, layout, tta, device)
    if with_trajectory and lifter.traj_model is not None:
        pose = pose + predict(lifter.traj_model.to(device), norm, layout, tta, device)
    return pose.astype(np.float32)


def safe_name(name: str) -> str:
    """A track name usable as a file name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "track"


def lift_custom_file(
    model_path: Path,
    input_npz: Path,
    out_dir: Path,
    render: int = 0,
    fps: float = 25.0,
    input_layout: str | None = None,
    device: str = "cpu",
) -> list[Path]:
    """Lift every track of a ``data_2d_custom`` npz; write ``<track>.npz`` (+ GIFs).

    Each output npz holds ``poses_3d`` (T, 17, 3, H36M order, camera space, metres),
    ``keypoints_2d`` (the input pixels), ``width`` and ``height``. The first ``render``
    tracks also get ``<track>.gif`` (2D skeleton beside a rotating 3D skeleton).
    """
    from vidmine.lifter.render import render_lift_gif

    lifter = load_lifter(model_path, input_layout=input_layout)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    tracks = sorted(read_custom_2d(input_npz, allow_missing=True), key=lambda e: e.name)
    for i, track in enumerate(tracks):
        kp, w, h = track.keypoints, track.width, track.height
        pose = lift_keypoints(lifter, kp, w, h, device=device)
        path = out_dir / f"{safe_name(track.name)}.npz"
        np.savez_compressed(path, poses_3d=pose, keypoints_2d=kp, width=w, height=h)
        written.append(path)
        if i < render:
            gif = path.with_suffix(".gif")
            render_lift_gif(kp, pose, w, h, gif, fps=fps)
            written.append(gif)
    return written
