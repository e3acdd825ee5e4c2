"""Temporal-3D-Pose-Kinetics pickles (docs/formats/kinetics.md): import as track rows and lifter
arrays.

Each ``<youtube_id>_<start>_<end>.pkl`` is a Python 2 pickle of a dict of numpy arrays for
the inlier frames of one 10 s Kinetics clip (at most one person per frame). The files come
from the internet, and unpickling can run arbitrary code, so they are read with
:class:`vidmine.formats._pickles.RestrictedUnpickler`: it rebuilds numpy arrays and plain
containers and refuses any other global before calling it (``encoding='latin1'`` for the
Python 2 str data).

Code-derived facts followed here:

* The visualiser reads ``camera`` (singular), the README says ``cameras``; both are accepted.
* ``2d_keypoints`` are scaled by the image **height** on both axes (``run_visualise``), not
  by width/height as the README says: x_px = x * H, y_px = y * H.
* ``3d_keypoints`` may have 19 joints (cocoplus, the README text) or 24 (its stated shape);
  24 is used only if its first 19 joints reproject onto ``2d_keypoints`` (checked per file).
* Frame index of entry i is ``round(time[i] * fps)`` in the trimmed clip (the visualiser).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vidmine.formats import FormatError
from vidmine.formats._pickles import RestrictedUnpickler, load_pickle
from vidmine.tracks import COCO_KEYPOINTS, PERSON, PERSON_CLASS_ID, TRACK_COLUMNS

__all__ = [
    "COCOPLUS_JOINTS",
    "KineticsClip",
    "RestrictedUnpickler",
    "cocoplus_to_coco",
    "cocoplus_to_h36m",
    "kinetics_to_lifter_arrays",
    "kinetics_to_track_rows",
    "parse_kinetics_name",
    "read_kinetics_pkl",
]

# plot_utils.HMR_JOINT_NAMES (docs/formats/kinetics.md, "The 19 cocoplus joints").
COCOPLUS_JOINTS: tuple[str, ...] = (
    "right_ankle",
    "right_knee",
    "right_hip",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_wrist",
    "right_elbow",
    "right_shoulder",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "neck",
    "head_top",
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
)
# COCO index k <- cocoplus index of the same name (neck and head_top have no COCO joint).
COCO_FROM_COCOPLUS: tuple[int, ...] = tuple(COCOPLUS_JOINTS.index(n) for n in COCO_KEYPOINTS)
# H36M-17 (VideoPose3D order) from cocoplus-19: direct joints, or None for the synthesised
# ones (hip = mid-hips, spine = midway hip -> neck). Thorax <- neck, Neck/Nose <- nose,
# Head <- head_top. Approximate: HMR's hips/neck are not Human3.6M's mocap markers.
_H36M_FROM_COCOPLUS: tuple[int | None, ...] = (
    None,  # 0 hip (pelvis)
    2,  # 1 r_hip
    1,  # 2 r_knee
    0,  # 3 r_foot (ankle)
    3,  # 4 l_hip
    4,  # 5 l_knee
    5,  # 6 l_foot (ankle)
    None,  # 7 spine
    12,  # 8 thorax <- neck
    14,  # 9 neck/nose <- nose
    13,  # 10 head <- head_top
    9,  # 11 l_shoulder
    10,  # 12 l_elbow
    11,  # 13 l_wrist
    8,  # 14 r_shoulder
    7,  # 15 r_elbow
    6,  # 16 r_wrist
)
REQUIRED_KEYS = ("time", "smpl_shape", "smpl_pose", "3d_keypoints", "2d_keypoints")
_NAME = re.compile(r"^(?P<yid>.+)_(?P<start>\d+)_(?P<end>\d+)$")
_REPROJECTION_TOL = 0.02  # normalised (height) units, for telling the 3D joint sets apart


@dataclass
class KineticsClip:
    """One pickle's content: N inlier frames of one person."""

    youtube_id: str
    start: int
    end: int
    time: np.ndarray  # (N,) seconds from the start of the 10 s clip
    smpl_shape: np.ndarray  # (N, 10)
    smpl_pose: np.ndarray  # (N, 72)
    keypoints_3d: np.ndarray  # (N, 19 or 24, 3) as stored
    keypoints_2d: np.ndarray  # (N, 19, 2) normalised by image height
    cameras: np.ndarray  # (N, 3) s, tx, ty
    vertices: np.ndarray | None  # (N, 6890, 3) or None (the noverts archive)

    def __len__(self) -> int:
        return len(self.time)


def parse_kinetics_name(name: str | os.PathLike) -> tuple[str, int, int]:
    """``<youtube_id>_<start>_<end>[.pkl]`` -> (youtube_id, start, end); parsed from the right
    because YouTube ids may contain ``_``."""
    stem = Path(name).name
    stem = stem[: -len(".pkl")] if stem.endswith(".pkl") else stem
    match = _NAME.match(stem)
    if not match:
        raise FormatError(f"{name}: not named <youtube_id>_<start>_<end>.pkl")
    return match["yid"], int(match["start"]), int(match["end"])


def _array(path: Any, data: Mapping[str, Any], key: str, shape: tuple[int | None, ...]) -> Any:
    arr = np.asarray(data[key])
    if arr.dtype == object or arr.ndim != len(shape):
        raise FormatError(f"{path}: {key} has shape {arr.shape}, expected {shape}")
    for got, want in zip(arr.shape, shape, strict=True):
        if want is not None and got != want:
            raise FormatError(f"{path}: {key} has shape {arr.shape}, expected {shape}")
    return arr.astype(np.float32)


def read_kinetics_pkl(path: str | os.PathLike) -> KineticsClip:
    """Read one pickle safely and check its keys and shapes against docs/formats/kinetics.md,
    "Keys"."""
    youtube_id, start, end = parse_kinetics_name(path)
    data = load_pickle(path)
    if not isinstance(data, dict):
        raise FormatError(f"{path}: top level is {type(data).__name__}, expected a dict")
    data = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in data.items()}
    cam_key = "cameras" if "cameras" in data else "camera"
    missing = [k for k in (*REQUIRED_KEYS, cam_key) if k not in data]
    if missing:
        raise FormatError(f"{path}: missing keys {missing} (has {sorted(map(str, data))})")
    time = _array(path, data, "time", (None,))
    n = len(time)
    kp3 = _array(path, data, "3d_keypoints", (n, None, 3))
    if kp3.shape[1] not in (19, 24):
        raise FormatError(f"{path}: 3d_keypoints has {kp3.shape[1]} joints, expected 19 or 24")
    vertices = data.get("vertices")
    return KineticsClip(
        youtube_id=youtube_id,
        start=start,
        end=end,
        time=time.astype(np.float64),
        smpl_shape=_array(path, data, "smpl_shape", (n, 10)),
        smpl_pose=_array(path, data, "smpl_pose", (n, 72)),
        keypoints_3d=kp3,
        keypoints_2d=_array(path, data, "2d_keypoints", (n, 19, 2)),
        cameras=_array(path, data, cam_key, (n, 3)),
        vertices=None if vertices is None else _array(path, data, "vertices", (n, 6890, 3)),
    )


def cocoplus_to_coco(points: np.ndarray) -> np.ndarray:
    """(..., 19, C) cocoplus -> (..., 17, C) COCO order, by joint name."""
    return np.asarray(points)[..., list(COCO_FROM_COCOPLUS), :]


def cocoplus_to_h36m(points: np.ndarray) -> np.ndarray:
    """(N, 19, 3) cocoplus -> (N, 17, 3) Human3.6M-17 (VideoPose3D order), approximately."""
    p = np.asarray(points, dtype=np.float32)
    out = np.zeros((len(p), 17, p.shape[2]), dtype=np.float32)
    for h, c in enumerate(_H36M_FROM_COCOPLUS):
        if c is not None:
            out[:, h] = p[:, c]
    out[:, 0] = (p[:, 2] + p[:, 3]) / 2  # pelvis = mid-hips
    out[:, 7] = (out[:, 0] + p[:, 12]) / 2  # spine = midway pelvis -> neck
    return out


def _project(clip: KineticsClip, joints: np.ndarray, convention: str) -> np.ndarray:
    s = clip.cameras[:, None, :1]
    t = clip.cameras[:, None, 1:3]
    if convention == "readme":  # s * (X + t), HMR's batch_orth_proj
        return s * (joints[:, :, :2] + t)
    return s * joints[:, :, :2] + t  # the visualiser's renderer: s * X + t


def _cocoplus_3d(clip: KineticsClip, source: Any) -> tuple[np.ndarray, str]:
    """The 19 cocoplus 3D joints and the projection convention that fits ``2d_keypoints``."""
    joints = clip.keypoints_3d[:, :19]
    errors = {
        conv: float(np.nanmedian(np.abs(_project(clip, joints, conv) - clip.keypoints_2d)))
        for conv in ("readme", "renderer")
    }
    convention = min(errors, key=errors.__getitem__)
    if clip.keypoints_3d.shape[1] == 24 and errors[convention] > _REPROJECTION_TOL:
        raise FormatError(
            f"{source}: 3d_keypoints has 24 joints whose first 19 do not reproject onto "
            f"2d_keypoints (median error {errors[convention]:.3f}); their order is unknown"
        )
    return joints, convention


def kinetics_to_track_rows(
    clip: KineticsClip,
    clip_id: str,
    width: int,
    height: int,
    fps: float,
    n_frames: int | None = None,
    track_id: int = 1,
) -> pd.DataFrame:
    """The clip's person as a vidmine track table (one row per inlier frame).

    Frame = ``round(time * fps)`` into the trimmed 10 s clip (the visualiser's rule; later
    duplicates of a frame are dropped, frames >= ``n_frames`` too); time = frame / fps.
    Keypoints: cocoplus -> COCO by name, pixels = normalised * ``height`` on both axes, score 1
    (fitted model joints, no confidence is stored). The box is the extent of all 19 joints,
    with score 1; no mask.
    """
    if fps <= 0 or width <= 0 or height <= 0:
        raise FormatError(f"{clip_id}: fps {fps}, size {width}x{height} must be positive")
    px = clip.keypoints_2d.astype(np.float64) * float(height)
    frames = np.rint(clip.time * fps).astype(np.int64)
    rows = []
    seen: set[int] = set()
    for i, frame in enumerate(frames.tolist()):
        if frame < 0 or frame in seen or (n_frames is not None and frame >= n_frames):
            continue
        seen.add(frame)
        pts = px[i]
        coco = cocoplus_to_coco(pts)
        kp = np.concatenate([coco, np.ones((len(coco), 1))], axis=1).astype(np.float32)
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        rows.append(
            {
                "clip_id": clip_id,
                "frame": frame,
                "time": frame / fps,
                "track_id": int(track_id),
                "class_id": PERSON_CLASS_ID,
                "class_name": PERSON,
                "x1": float(lo[0]),
                "y1": float(lo[1]),
                "x2": float(hi[0]),
                "y2": float(hi[1]),
                "score": 1.0,
                "keypoints": kp.reshape(-1).tolist(),
                "interpolated": False,
                "mask_png": None,
            }
        )
    return pd.DataFrame(rows, columns=TRACK_COLUMNS)


def kinetics_to_lifter_arrays(
    clip: KineticsClip,
    width: int,
    height: int,
    focal_px: float | None = None,
    source: Any = None,
) -> dict[str, Any]:
    """2D input and pseudo-3D targets for :func:`vidmine.lifter.data.dataset_from_arrays`.

    Returns ``pos2d`` (N, 17, 2) COCO pixels, ``pos3d`` (N, 17, 3) H36M-17 camera-space metres
    (SMPL units; y down, z forward like HMR's camera frame), ``intrinsics`` (the normalised
    9-vector), ``res`` (width, height), ``time`` (N,) and ``convention``.

    Depth is not in the data (weak perspective). The root is placed where a pinhole camera of
    focal ``focal_px`` (default: max(width, height), an assumption) with the principal point
    at the image centre reproduces the weak-perspective projection: Z = f / (s * H), and
    X, Y shifted by the translation of whichever projection convention (README's s * (X + t)
    or the renderer's s * X + t, docs/formats/kinetics.md, "Camera and projection") fits
    ``2d_keypoints`` better.
    """
    name = source or f"{clip.youtube_id}_{clip.start}_{clip.end}.pkl"
    joints, convention = _cocoplus_3d(clip, name)
    f = float(focal_px) if focal_px is not None else float(max(width, height))
    s = clip.cameras[:, 0].astype(np.float64)
    if np.any(s <= 0):
        raise FormatError(f"{name}: camera scale must be positive")
    t = clip.cameras[:, 1:3].astype(np.float64)
    shift = t if convention == "readme" else t / s[:, None]
    centre = np.array([width / 2.0, height / 2.0])
    z = f / (s * height)
    offset_xy = shift - centre[None, :] / (s[:, None] * height)
    cam = joints.astype(np.float64).copy()
    cam[:, :, :2] += offset_xy[:, None, :]
    cam[:, :, 2] += z[:, None]
    intrinsics = np.array(
        [f / width * 2, f / width * 2, 0.0, 0.0, 0, 0, 0, 0, 0], dtype=np.float32
    )  # centre principal point -> normalised (0, 0)
    return {
        "pos2d": cocoplus_to_coco(clip.keypoints_2d.astype(np.float32) * float(height)),
        "pos3d": cocoplus_to_h36m(cam.astype(np.float32)),
        "intrinsics": intrinsics,
        "res": (int(width), int(height)),
        "time": clip.time,
        "convention": convention,
    }
