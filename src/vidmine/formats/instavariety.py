"""InstaVariety per-frame OpenPose JSON tracks (docs/formats/hmmr.md, "Per-frame JSON tracks") ->
vidmine track rows.

Layout: ``<root>/<download_tag>/<video_id>/<track_id>/<frame>.json``. Each file is one frame
of one track: ``frame`` (0-based), ``imloc`` (the 1-based ffmpeg image name), ``track_id``,
``bbox {xmin, ymin, xmax, ymax}`` and one ``{x, y, logits, probability}`` dict per OpenPose
BODY_25 joint, keyed by the names HMMR uses ("R Heel", "L Big Toe", ...). ``logits`` is the
OpenPose confidence that HMMR thresholds at 0.1.

COCO-17 keypoints are taken by name (:data:`COCO_FROM_BODY25`): nose <- Nose, left/right_eye
<- L/R Eye, left/right_ear <- L/R Ear, left/right_shoulder <- L/R Shoulder, left/right_elbow <-
L/R Elbow, left/right_wrist <- L/R Wrist, left/right_hip <- L/R Hip, left/right_knee <- L/R Knee,
left/right_ankle <- L/R Ankle.

COCO's ankles come from OpenPose's true ankles ("L/R Ankle", HMMR's slots 23/24), not from the
heels HMMR puts in its LSP "ankle" slots. Neck, heels and toes have no COCO joint and are
dropped. A joint missing from the JSON, or reported by OpenPose as undetected (x = y =
logits = 0), becomes NaN with score 0.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vidmine.formats import FormatError
from vidmine.formats._pickles import one_line
from vidmine.formats.hmmr import COCO_TO_HMMR_NAMES, HMMR_JOINTS
from vidmine.tracks import COCO_KEYPOINTS, PERSON, PERSON_CLASS_ID, TRACK_COLUMNS

# The 24 names HMMR reads from each JSON ("Head" is never read, so never expected).
BODY25_NAMES: tuple[str, ...] = tuple(name for name in HMMR_JOINTS if name != "Head")
# InstaVariety's JSON uses HMMR's 25 joint names, so the COCO -> name mapping is HMMR's.
COCO_FROM_BODY25: dict[str, str] = COCO_TO_HMMR_NAMES
_BBOX_KEYS = ("xmin", "ymin", "xmax", "ymax")


@dataclass
class InstaFrame:
    """One per-frame JSON: the frame, its image name, the track, box and named joints."""

    frame: int
    imloc: str
    track_id: Any
    bbox: tuple[float, float, float, float]  # xmin, ymin, xmax, ymax pixels
    joints: dict[str, tuple[float, float, float]]  # name -> (x, y, logits)


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


def read_instavariety_frame(path: str | os.PathLike) -> InstaFrame:
    """Read and check one per-frame JSON file."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise FormatError(f"{path}: not readable JSON ({one_line(err)})") from None
    if not isinstance(data, dict):
        raise FormatError(f"{path}: top level is {type(data).__name__}, expected an object")
    missing = [k for k in ("frame", "imloc", "track_id", "bbox") if k not in data]
    if missing:
        raise FormatError(f"{path}: missing keys {missing}")
    bbox = data["bbox"]
    if not isinstance(bbox, dict) or not set(_BBOX_KEYS) <= set(bbox):
        raise FormatError(f"{path}: bbox must have {list(_BBOX_KEYS)}")
    joints = {}
    for name, value in data.items():
        if name not in BODY25_NAMES and not (isinstance(value, dict) and "logits" in value):
            continue  # frame, imloc, track_id, bbox and anything else that is not a joint
        if not isinstance(value, dict) or not {"x", "y", "logits"} <= set(value):
            raise FormatError(f"{path}: joint {name!r} needs x, y and logits")
        try:
            joints[name] = (_float(value["x"]), _float(value["y"]), _float(value["logits"]))
        except (TypeError, ValueError) as err:
            raise FormatError(f"{path}: joint {name!r}: {one_line(err)}") from None
    try:
        frame = int(data["frame"])
        box = tuple(float(bbox[k]) for k in _BBOX_KEYS)
    except (TypeError, ValueError) as err:
        raise FormatError(f"{path}: frame/bbox: {one_line(err)}") from None
    return InstaFrame(frame, str(data["imloc"]), data["track_id"], box, joints)  # type: ignore[arg-type]


def read_instavariety_track(track_dir: str | os.PathLike) -> list[InstaFrame]:
    """All frames of one track folder, in frame order.

    HMMR sorts the file names lexicographically, which is frame order only for zero-padded
    names (the padding is unknown, docs/formats/hmmr.md, "Per-frame JSON tracks"); sorting by the
    ``frame`` field is the same for padded names and correct for unpadded ones.
    """
    files = sorted(Path(track_dir).glob("*.json"))
    if not files:
        raise FormatError(f"{track_dir}: no per-frame .json files")
    frames = sorted((read_instavariety_frame(f) for f in files), key=lambda fr: fr.frame)
    seen = [fr.frame for fr in frames]
    if len(set(seen)) != len(seen):
        raise FormatError(f"{track_dir}: two files for the same frame")
    return frames


def read_instavariety_video(video_dir: str | os.PathLike) -> dict[str, list[InstaFrame]]:
    """Every track of ``<tag>/<video_id>/``: track folder name -> frames (folders sorted)."""
    folder = Path(video_dir)
    tracks = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    if not tracks:
        raise FormatError(f"{video_dir}: no track folders")
    return {p.name: read_instavariety_track(p) for p in tracks}


def frame_coco_keypoints(frame: InstaFrame) -> np.ndarray:
    """(17, 3) COCO x, y, score of one frame (NaN x, y and score 0 where missing)."""
    out = np.full((len(COCO_KEYPOINTS), 3), np.nan, dtype=np.float32)
    out[:, 2] = 0.0
    for k, coco_name in enumerate(COCO_KEYPOINTS):
        value = frame.joints.get(COCO_FROM_BODY25[coco_name])
        if value is None:
            continue
        x, y, logit = value
        undetected = x == 0 and y == 0 and logit == 0
        if not (math.isfinite(x) and math.isfinite(y)) or undetected:
            continue
        out[k] = (x, y, logit if math.isfinite(logit) else 0.0)
    return out


def _track_number(track_id: Any, source: str) -> int:
    try:
        number = int(track_id)
    except (TypeError, ValueError):
        number = -1
    if number < 0 or str(track_id).strip() != str(number):
        raise FormatError(f"{source}: track_id {track_id!r} is not a non-negative integer")
    return number + 1  # vidmine track ids start at 1


def instavariety_to_track_rows(
    tracks: Sequence[Sequence[InstaFrame]], clip_id: str, fps: float
) -> pd.DataFrame:
    """Tracks (lists of frames) of one video as a vidmine track table.

    track_id = the JSON ``track_id`` + 1 (vidmine ids start at 1); time = frame / fps;
    the box is the JSON bbox; score = mean confidence of the detected COCO joints (OpenPose
    gives no box score); no masks; nothing is interpolated.
    """
    if fps <= 0:
        raise FormatError(f"{clip_id}: fps {fps} must be positive")
    rows = []
    used: dict[int, Any] = {}
    for frames in tracks:
        for fr in frames:
            tid = _track_number(fr.track_id, f"{clip_id} frame {fr.frame}")
            if used.setdefault(tid, id(frames)) != id(frames):
                raise FormatError(f"{clip_id}: track_id {fr.track_id} used by two tracks")
            kp = frame_coco_keypoints(fr)
            seen = kp[:, 2][np.isfinite(kp[:, 0])]
            rows.append(
                {
                    "clip_id": clip_id,
                    "frame": fr.frame,
                    "time": fr.frame / fps,
                    "track_id": tid,
                    "class_id": PERSON_CLASS_ID,
                    "class_name": PERSON,
                    "x1": fr.bbox[0],
                    "y1": fr.bbox[1],
                    "x2": fr.bbox[2],
                    "y2": fr.bbox[3],
                    "score": float(seen.mean()) if len(seen) else 0.0,
                    "keypoints": kp.reshape(-1).tolist(),
                    "interpolated": False,
                    "mask_png": None,
                }
            )
    return pd.DataFrame(rows, columns=TRACK_COLUMNS)
