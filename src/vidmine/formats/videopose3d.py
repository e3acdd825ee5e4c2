"""VideoPose3D's npz files (docs/formats/videopose3d.md, "Detectron npz", "Custom 2D npz",
"Human3.6M npz"): exports of person tracks, imports of Human3.6M.

* ``data_2d_custom_<name>.npz`` ("Custom 2D npz"): what ``run.py -d custom -k <name>`` trains or
  infers on. vidmine writes one "video" per person track, so every track becomes a sequence the
  model can lift (VideoPose3D itself keeps only the best-scoring person per frame of a video).
* ``<video>.npz`` from ``infer_video_d2.py`` ("Detectron npz"): per-frame Detectron-style
  detections, the input of ``prepare_data_2d_custom.py``, for people who want to run that script
  themselves.
* ``data_3d_h36m.npz`` / ``data_2d_h36m_<src>.npz`` ("Human3.6M npz"): Human3.6M in VideoPose3D's
  layout, read back as plain dicts. :func:`vidmine.lifter.data.load_h36m` builds training sequences
  from the same files; these readers validate them and serve other consumers.

All npz files store pickled Python objects. They are written with numpy-1-compatible pickles
(see :mod:`vidmine.formats._pickles`) and read with a restricted unpickler instead of
``allow_pickle=True``. The files load in VideoPose3D with ``np.load(..., allow_pickle=True)``.

The lifter (:mod:`vidmine.lifter`) reads these files through this module too, and fills
missing keypoints with :func:`interpolate_missing`, the one gap rule of both: this module
imports no lifter code (and so no torch, which the export environment does not have).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vidmine.formats import FormatError
from vidmine.formats._pickles import load_npz, npz_item, save_npz
from vidmine.tracks import (
    COCO_LEFT,
    COCO_RIGHT,
    N_KEYPOINTS,
    PERSON_CLASS_ID,
    clamp_to_frame,
    keypoint_array,
)

# Keypoints scoring below this are filled from the joint's trusted frames (BlazePose's
# visibility: occluded joints score 0.2-0.3, joints off the image below 0.1).
DEFAULT_MIN_KEYPOINT_SCORE = 0.3
# The literal action name VideoPose3D's custom dataset uses (docs/formats/videopose3d.md,
# "Notes for readers and writers").
CUSTOM_ACTION = "custom"
H36M_CAMERA_IDS = ("54138969", "55011271", "58860488", "60457274")  # positions_2d list order
H36M_MOCAP_JOINTS = 32
H36M_JOINTS = 17
# The 17 of the 32 mocap joints VideoPose3D keeps (docs/formats/videopose3d.md, "Human3.6M npz");
# defined here, in the torch-free format module, and used by the lifter's H36M reader too.
H36M_KEPT_32 = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)


# VideoPose3D's published lifters that ``lifter.lift_model`` can name: URL and 2D input
# layout. ``pretrained_h36m_detectron_coco.bin`` is the in-the-wild model of INFERENCE.md
# (COCO-17 in, 243 frames; docs/formats/videopose3d-checkpoints.md). No checksum is
# published; ``lifter.lift_model_sha256`` pins one.
PUBLISHED_LIFTERS: dict[str, tuple[str, str]] = {
    "videopose3d_coco": (
        "https://dl.fbaipublicfiles.com/video-pose-3d/pretrained_h36m_detectron_coco.bin",
        "coco",
    ),
}
LIFT_WITH_TRAINED = "trained"  # lifter.lift_model's default: the dataset's own model


@dataclass
class CustomEntry:
    """One sequence of a custom 2D dataset: a person track, named like a video.

    ``keypoints`` is (T, 17, 2) float32 pixels in COCO order, one row per frame from the
    track's first to its last frame, inside the frame (VideoPose3D's Detectron keypoints always
    are). ``scores`` is (T, 17) float32, the detector's confidence of each keypoint (0 where it
    was filled in), written beside ``positions_2d`` as ``scores_2d`` (VideoPose3D reads only
    ``positions_2d`` and ``metadata``, so the extra key changes nothing for it). ``first_frame``
    is the clip frame of row 0 and ``video`` the file name of the video whose frame i is row i
    (both recorded in ``video_metadata``, beside the ``w`` / ``h`` VideoPose3D reads).
    """

    name: str
    width: int
    height: int
    keypoints: np.ndarray
    first_frame: int = 0
    scores: np.ndarray | None = None
    video: str | None = None


def track_key(clip_id: str, track_id: int) -> str:
    """The sequence name of a track: ``{clip_id}-t{track_id:03d}``."""
    return f"{clip_id}-t{int(track_id):03d}"


def custom_2d_path(folder: str | os.PathLike, dataset_name: str) -> Path:
    """Where ``run.py -k <dataset_name>`` looks: ``<folder>/data_2d_custom_<name>.npz``."""
    return Path(folder) / f"data_2d_custom_{dataset_name}.npz"


def _check_keypoints(path: Any, name: str, kp: Any, allow_missing: bool = False) -> np.ndarray:
    arr = np.asarray(kp, dtype=np.float32)
    if arr.ndim != 3 or arr.shape[1:] != (N_KEYPOINTS, 2) or len(arr) == 0:
        raise FormatError(f"{path}: {name}: keypoints shape {arr.shape}, expected (T>0, 17, 2)")
    if not allow_missing and not np.isfinite(arr).all():
        raise FormatError(f"{path}: {name}: keypoints contain NaN/inf (interpolate first)")
    return arr


def write_custom_2d(
    path: str | os.PathLike,
    dataset_name: str,
    entries: Sequence[CustomEntry],
    allow_empty: bool = False,
) -> Path:
    """Write ``data_2d_custom_<dataset_name>.npz`` (docs/formats/videopose3d.md, "Custom 2D npz");
    return the file written.

    ``path`` is VideoPose3D's ``data/`` folder, or the npz file itself, whose name must then be
    ``data_2d_custom_<dataset_name>.npz`` because that is the only name ``run.py -k`` finds.
    Keys: ``positions_2d`` = {name: {'custom': [kp (T, 17, 2) float32]}} (a one-camera list)
    and ``metadata`` = COCO layout, symmetry lists and ``video_metadata`` {name: {w, h}}.
    VideoPose3D needs at least one sequence; ``allow_empty`` writes a file without any (an
    export of a dataset with no person track still has its target).
    """
    target = Path(path)
    expected = custom_2d_path(target, dataset_name).name
    if target.suffix == ".npz":
        if target.name != expected:
            raise FormatError(f"{target}: VideoPose3D (-k {dataset_name}) only reads {expected}")
    else:
        target = target / expected
    if not entries and not allow_empty:
        raise FormatError(f"{target}: no sequences to write (VideoPose3D needs at least one)")
    positions: dict[str, dict[str, list[np.ndarray]]] = {}
    scores: dict[str, dict[str, list[np.ndarray]]] = {}
    videos: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if entry.name in positions:
            raise FormatError(f"{target}: sequence name {entry.name!r} appears twice")
        if int(entry.width) <= 0 or int(entry.height) <= 0:
            raise FormatError(f"{target}: {entry.name}: size {entry.width}x{entry.height}")
        kp = _check_keypoints(target, entry.name, entry.keypoints)
        positions[entry.name] = {CUSTOM_ACTION: [kp]}
        scores[entry.name] = {CUSTOM_ACTION: [_entry_scores(target, entry, len(kp))]}
        videos[entry.name] = {"w": int(entry.width), "h": int(entry.height)}
        videos[entry.name]["first_frame"] = int(entry.first_frame)
        if entry.video is not None:
            videos[entry.name]["video"] = str(entry.video)
    metadata = {
        "layout_name": "coco",
        "num_joints": N_KEYPOINTS,
        "keypoints_symmetry": [list(COCO_LEFT), list(COCO_RIGHT)],
        "video_metadata": videos,
    }
    save_npz(target, {"positions_2d": positions, "metadata": metadata, "scores_2d": scores})
    return target


def _entry_scores(path: Path, entry: CustomEntry, n_frames: int) -> np.ndarray:
    """The entry's (T, 17) keypoint scores; ones when it has none (hand-made entries)."""
    if entry.scores is None:
        return np.ones((n_frames, N_KEYPOINTS), np.float32)
    arr = np.asarray(entry.scores, dtype=np.float32)
    if arr.shape != (n_frames, N_KEYPOINTS) or not np.isfinite(arr).all():
        raise FormatError(
            f"{path}: {entry.name}: scores shape {arr.shape}, expected ({n_frames}, 17)"
        )
    return arr


def read_custom_2d(path: str | os.PathLike, allow_missing: bool = False) -> list[CustomEntry]:
    """Read a custom 2D dataset back into entries (the first camera of each sequence).

    VideoPose3D's files hold no missing keypoint, so NaN / inf is refused unless
    ``allow_missing``: the lifter reads hand-made files too and fills gaps itself
    (:func:`interpolate_missing`).
    """
    arrays = load_npz(path)
    positions = npz_item(path, arrays, "positions_2d")
    metadata = npz_item(path, arrays, "metadata")
    if not isinstance(positions, dict) or not isinstance(metadata, dict):
        raise FormatError(f"{path}: positions_2d and metadata must be dicts")
    if metadata.get("layout_name", "coco") != "coco" or metadata.get("num_joints") != 17:
        raise FormatError(
            f"{path}: layout {metadata.get('layout_name')!r} with "
            f"{metadata.get('num_joints')} joints, expected coco with 17"
        )
    videos = metadata.get("video_metadata")
    if not isinstance(videos, dict):
        raise FormatError(f"{path}: metadata has no video_metadata dict")
    scores = npz_item(path, arrays, "scores_2d") if "scores_2d" in arrays else {}
    if not isinstance(scores, dict):
        raise FormatError(f"{path}: scores_2d must be a dict like positions_2d")
    out = []
    for name, actions in positions.items():
        if not isinstance(actions, dict) or CUSTOM_ACTION not in actions:
            raise FormatError(f"{path}: {name}: no {CUSTOM_ACTION!r} action")
        cams = actions[CUSTOM_ACTION]
        if not isinstance(cams, list | tuple) or len(cams) == 0:
            raise FormatError(f"{path}: {name}: {CUSTOM_ACTION!r} must be a list of cameras")
        if name not in videos or not {"w", "h"} <= set(videos[name]):
            raise FormatError(f"{path}: {name}: no w/h in metadata video_metadata")
        kp = _check_keypoints(path, name, cams[0], allow_missing)
        video = videos[name]
        entry = CustomEntry(name, int(video["w"]), int(video["h"]), kp)
        entry.first_frame = int(video.get("first_frame", 0))
        entry.video = video.get("video")
        entry.scores = _read_scores(path, name, scores.get(name), len(kp))
        out.append(entry)
    return out


def _read_scores(path: Any, name: str, actions: Any, n_frames: int) -> np.ndarray | None:
    """A sequence's (T, 17) scores from ``scores_2d`` (files from elsewhere have none)."""
    if actions is None:
        return None
    cams = actions.get(CUSTOM_ACTION) if isinstance(actions, dict) else None
    arr = np.asarray(cams[0], np.float32) if isinstance(cams, list | tuple) and cams else None
    if arr is None or arr.shape != (n_frames, N_KEYPOINTS):
        raise FormatError(f"{path}: {name}: scores_2d is not ({n_frames}, 17) per sequence")
    return arr


def interpolate_missing(kp: np.ndarray) -> np.ndarray:
    """Fill missing (NaN / inf) keypoints: linear over frames, clamped at the ends.

    VideoPose3D's ``prepare_data_2d_custom`` rule for frames without a detection
    (docs/formats/videopose3d.md, "Custom 2D npz" step 4), applied per joint and coordinate so that
    a single dropped joint is filled too. A joint never seen in any frame has nothing to interpolate
    from; it takes the mean of the frame's other joints so the array stays finite (the lifter needs
    finite input; the custom-2D export leaves such tracks out before it gets here). Returns a
    float32 copy; a ``ValueError`` when some frame has no keypoint at all to fill from.
    """
    out = np.array(kp, dtype=np.float32, copy=True)
    frames = np.arange(out.shape[0])
    for j in range(out.shape[1]):
        for c in range(out.shape[2]):
            col = out[:, j, c]
            ok = np.isfinite(col)
            if ok.all() or not ok.any():
                continue
            col[~ok] = np.interp(frames[~ok], frames[ok], col[ok])
    if not np.isfinite(out).all():
        centre = np.nanmean(out, axis=1, keepdims=True)
        if not np.isfinite(centre).all():
            raise ValueError("track has frames with no keypoints at all and nothing to fill from")
        out = np.where(np.isfinite(out), out, centre)
    return out


def _person_rows(tracks: pd.DataFrame) -> pd.DataFrame:
    if not len(tracks):
        return tracks
    people = tracks[(tracks["class_id"] == PERSON_CLASS_ID) & tracks["keypoints"].notna()]
    return people.sort_values(["track_id", "frame"], kind="stable")


def tracks_to_custom_entries(
    tracks: pd.DataFrame,
    clip_row: Mapping[str, Any] | pd.Series,
    min_score: float = DEFAULT_MIN_KEYPOINT_SCORE,
) -> list[CustomEntry]:
    """The person tracks of one clip's track table as custom-2D entries.

    Each track covers its first to last frame; interpolated rows are used like detected ones.
    Keypoints are then made what VideoPose3D's Detectron path gives it (:func:`trusted_keypoints`):
    inside the frame, and where the detector was unsure (score below ``min_score``, or off
    the image) filled from the same joint's trusted neighbours. A track with a joint that has
    no position in any frame is skipped (there is nothing to place it from).
    """
    clip_id = str(clip_row["clip_id"])
    width, height = int(clip_row["width"]), int(clip_row["height"])
    out = []
    for track_id, rows in _person_rows(tracks).groupby("track_id", sort=True):
        if rows["frame"].duplicated().any():
            raise FormatError(f"{clip_id}: track {track_id} has two rows for one frame")
        frames = rows["frame"].to_numpy(dtype=np.int64)
        first = int(frames.min())
        kp = np.full((int(frames.max()) - first + 1, N_KEYPOINTS, 3), np.nan, dtype=np.float32)
        kp[frames - first] = keypoint_array(rows)
        if not np.isfinite(kp[..., :2]).all(axis=2).any(axis=0).all():
            continue  # some joint never located: nothing to place it from
        xy, scores = trusted_keypoints(kp, width, height, min_score)
        key = track_key(clip_id, int(track_id))
        out.append(CustomEntry(key, width, height, xy, first, scores))
    return out


def trusted_keypoints(
    keypoints: np.ndarray, width: int, height: int, min_score: float
) -> tuple[np.ndarray, np.ndarray]:
    """(T, 17, 3) x, y, score of one track -> (T, 17, 2) positions inside the frame, (T, 17)
    scores.

    VideoPose3D's 2D input comes from Detectron's keypoint R-CNN, whose joints always lie in the
    person's box, so in the image. BlazePose instead extrapolates joints it cannot see far
    beyond the border at a low score (a driver's hips at y = 454 in a 144-pixel frame), which
    VideoPose3D's normalisation turns into y = 4.3 where it expects about +-0.8. So a joint is
    trusted where it is inside the frame and scores at least ``min_score``; every other
    position of that joint is interpolated over frames from its trusted ones (clamped at the
    ends), the rule ``prepare_data_2d_custom.py`` applies to frames without a detection. A
    joint never trusted in the track keeps the detector's positions, moved into the frame
    (where keypoint R-CNN would put it). The score is the detector's where its position is
    used and 0 where the position was filled in.
    """
    xy = np.array(keypoints[..., :2], dtype=np.float32, copy=True)
    conf = np.nan_to_num(np.asarray(keypoints[..., 2], np.float32), nan=0.0)
    located = np.isfinite(xy).all(axis=-1)
    inside = located & (xy[..., 0] >= 0) & (xy[..., 0] <= width - 1)
    inside &= (xy[..., 1] >= 0) & (xy[..., 1] <= height - 1)
    trusted = inside & (conf >= min_score)
    used = np.where(trusted.any(axis=0), trusted, located)  # per joint: trusted, else located
    frames = np.arange(len(xy))
    for j in range(xy.shape[1]):
        keep = used[:, j]
        for c in range(2):
            xy[~keep, j, c] = np.interp(frames[~keep], frames[keep], xy[keep, j, c])
    return clamp_to_frame(xy, width, height), np.where(used, conf, 0.0).astype(np.float32)


# --- Detectron per-clip npz (docs/formats/videopose3d.md, "Detectron npz") ------------------


def tracks_to_detectron(
    tracks: pd.DataFrame, n_frames: int, width: int, height: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per-frame detections of a clip's track table, as :func:`write_detectron_clip` takes them.

    Only detected person rows with keypoints are used (interpolated rows are not detections):
    boxes[t] is (N, 5) x1, y1, x2, y2, score and keypoints[t] is (N, 17, 3) x, y, score, the
    positions moved into the ``width`` x ``height`` frame as Detectron's own always are
    (:func:`clamp_to_frame`; scores unchanged, so a guessed joint keeps its low score).
    """
    boxes = [np.zeros((0, 5), np.float32) for _ in range(n_frames)]
    kps = [np.zeros((0, N_KEYPOINTS, 3), np.float32) for _ in range(n_frames)]
    people = _person_rows(tracks)
    if len(people):
        people = people[~people["interpolated"].astype(bool)]
    for frame, rows in people.groupby("frame", sort=True):
        if not 0 <= int(frame) < n_frames:
            raise FormatError(f"track table: frame {frame} outside the clip's {n_frames} frames")
        box = rows[["x1", "y1", "x2", "y2", "score"]].to_numpy(dtype=np.float32)
        boxes[int(frame)] = box
        points = keypoint_array(rows)
        points[..., :2] = clamp_to_frame(points[..., :2], width, height)
        kps[int(frame)] = points
    return boxes, kps


def write_detectron_clip(
    path: str | os.PathLike,
    boxes: Sequence[np.ndarray | None],
    keypoints: Sequence[np.ndarray | None],
    width: int,
    height: int,
) -> None:
    """Write ``infer_video_d2.py``'s output for one clip (docs/formats/videopose3d.md,
    "Detectron npz"), e.g. ``clip.mp4.npz``.

    ``boxes[t]``: (N, 5) x1, y1, x2, y2, score; ``keypoints[t]``: (N, 17, 3) x, y, score (or
    None / empty for no detection). Stored as Detectron1's ``[[], B]`` class lists in explicit
    ``(T, 2)`` object arrays (numpy >= 1.24 refuses the ragged lists the original saved),
    keypoints as (N, 4, 17) rows x, y, logit (zeros, as Detectron2 gives none), prob.
    """
    target = Path(path)
    if target.suffix != ".npz":
        raise FormatError(f"{target}: prepare_data_2d_custom.py only reads *.npz files")
    if len(boxes) != len(keypoints) or len(boxes) == 0:
        raise FormatError(f"{target}: {len(boxes)} box frames vs {len(keypoints)} keypoint frames")
    n = len(boxes)
    box_arr = np.empty((n, 2), dtype=object)
    kp_arr = np.empty((n, 2), dtype=object)
    segments = np.empty((n,), dtype=object)  # always None in the Detectron2 script
    for t in range(n):
        b = np.zeros((0, 5), np.float32) if boxes[t] is None else np.asarray(boxes[t], np.float32)
        k = (
            np.zeros((0, N_KEYPOINTS, 3), np.float32)
            if keypoints[t] is None
            else np.asarray(keypoints[t], np.float32)
        )
        if b.ndim != 2 or b.shape[1] != 5:
            raise FormatError(f"{target}: frame {t}: boxes shape {b.shape}, expected (N, 5)")
        if k.ndim != 3 or k.shape[1:] != (N_KEYPOINTS, 3) or len(k) != len(b):
            raise FormatError(
                f"{target}: frame {t}: keypoints shape {k.shape}, expected ({len(b)}, 17, 3)"
            )
        box_arr[t, 0] = []
        kp_arr[t, 0] = []
        if len(b) == 0:
            box_arr[t, 1] = []
            kp_arr[t, 1] = []
        else:
            rows = np.stack([k[:, :, 0], k[:, :, 1], np.zeros_like(k[:, :, 0]), k[:, :, 2]], 1)
            box_arr[t, 1] = b
            kp_arr[t, 1] = rows.astype(np.float32)  # (N, 4, 17)
    metadata = {"w": int(width), "h": int(height)}
    save_npz(
        target, {"boxes": box_arr, "keypoints": kp_arr, "segments": segments, "metadata": metadata}
    )


def read_detectron_clip(
    path: str | os.PathLike,
) -> tuple[list[np.ndarray], list[np.ndarray], dict[str, int]]:
    """Read a Detectron-style npz: boxes (N, 5), keypoints (N, 17, 3) x, y, prob per frame."""
    arrays = load_npz(path)
    for key in ("boxes", "keypoints", "metadata"):
        if key not in arrays:
            raise FormatError(f"{path}: missing key {key!r} (has {sorted(arrays)})")
    metadata = npz_item(path, arrays, "metadata")
    if not isinstance(metadata, dict) or not {"w", "h"} <= set(metadata):
        raise FormatError(f"{path}: metadata must be a dict with w and h")
    bb, kp = arrays["boxes"], arrays["keypoints"]
    if len(bb) != len(kp):
        raise FormatError(f"{path}: {len(bb)} box frames vs {len(kp)} keypoint frames")
    boxes, keypoints = [], []
    for t in range(len(bb)):
        b, k = bb[t][1], kp[t][1]
        if len(b) == 0 or len(k) == 0:
            boxes.append(np.zeros((0, 5), np.float32))
            keypoints.append(np.zeros((0, N_KEYPOINTS, 3), np.float32))
            continue
        b, k = np.asarray(b, np.float32), np.asarray(k, np.float32)
        if b.ndim != 2 or b.shape[1] != 5 or k.shape != (len(b), 4, N_KEYPOINTS):
            raise FormatError(f"{path}: frame {t}: boxes {b.shape} / keypoints {k.shape}")
        boxes.append(b)
        keypoints.append(np.stack([k[:, 0], k[:, 1], k[:, 3]], axis=-1))
    return boxes, keypoints, {"w": int(metadata["w"]), "h": int(metadata["h"])}


# --- Human3.6M (docs/formats/videopose3d.md, "Human3.6M npz") -------------------------------


def read_h36m_3d(path: str | os.PathLike) -> dict[str, dict[str, np.ndarray]]:
    """``data_3d_h36m.npz`` -> subject -> action -> (T, 32, 3) float32 world metres.

    (T, 17, 3) arrays (already reduced to VideoPose3D's joints) are accepted too; use
    :func:`h36m_reduce_to_17` to go from 32 to 17 joints.
    """
    arrays = load_npz(path)
    positions = npz_item(path, arrays, "positions_3d")
    if not isinstance(positions, dict):
        raise FormatError(f"{path}: positions_3d must be a dict subject -> action -> array")
    out: dict[str, dict[str, np.ndarray]] = {}
    for subject, actions in positions.items():
        if not isinstance(actions, dict):
            raise FormatError(f"{path}: {subject}: expected a dict of actions")
        out[str(subject)] = {}
        for action, pos in actions.items():
            arr = np.asarray(pos, dtype=np.float32)
            if arr.ndim != 3 or arr.shape[1:] not in ((H36M_MOCAP_JOINTS, 3), (H36M_JOINTS, 3)):
                raise FormatError(
                    f"{path}: {subject}/{action}: shape {arr.shape}, expected (T, 32, 3)"
                )
            out[str(subject)][str(action)] = arr
    return out


def read_h36m_2d(
    path: str | os.PathLike,
) -> tuple[dict[str, dict[str, list[np.ndarray | None]]], dict[str, Any]]:
    """``data_2d_h36m_<src>.npz`` -> (subject -> action -> 4 cameras' (T, J, 2) px, metadata).

    Cameras are in the order of :data:`H36M_CAMERA_IDS`; a missing camera is None. J is
    ``metadata['num_joints']``. The gt file's metadata has no ``layout_name``
    (docs/formats/videopose3d.md, "Surprises").
    """
    arrays = load_npz(path)
    positions = npz_item(path, arrays, "positions_2d")
    metadata = npz_item(path, arrays, "metadata")
    if not isinstance(positions, dict) or not isinstance(metadata, dict):
        raise FormatError(f"{path}: positions_2d and metadata must be dicts")
    if "num_joints" not in metadata or "keypoints_symmetry" not in metadata:
        raise FormatError(f"{path}: metadata lacks num_joints / keypoints_symmetry")
    joints = int(metadata["num_joints"])
    out: dict[str, dict[str, list[np.ndarray | None]]] = {}
    for subject, actions in positions.items():
        if not isinstance(actions, dict):
            raise FormatError(f"{path}: {subject}: expected a dict of actions")
        out[str(subject)] = {}
        for action, cams in actions.items():
            if not isinstance(cams, list | tuple) or len(cams) != len(H36M_CAMERA_IDS):
                raise FormatError(f"{path}: {subject}/{action}: expected a list of 4 cameras")
            views: list[np.ndarray | None] = []
            for cam, kp in enumerate(cams):
                if kp is None:
                    views.append(None)
                    continue
                arr = np.asarray(kp, dtype=np.float32)
                if arr.ndim != 3 or arr.shape[1] != joints or arr.shape[2] < 2:
                    raise FormatError(
                        f"{path}: {subject}/{action} camera {cam}: shape {arr.shape}, "
                        f"expected (T, {joints}, 2)"
                    )
                views.append(arr)
            out[str(subject)][str(action)] = views
    return out, metadata


def h36m_reduce_to_17(positions: np.ndarray) -> np.ndarray:
    """(T, 32, 3) mocap joints -> VideoPose3D's 17 (docs/formats/videopose3d.md, "Human3.6M npz");
    17-joint input unchanged."""
    arr = np.asarray(positions)
    if arr.shape[1] == H36M_JOINTS:
        return arr
    if arr.shape[1] != H36M_MOCAP_JOINTS:
        raise FormatError(f"h36m positions: {arr.shape[1]} joints, expected 32 or 17")
    return arr[:, list(H36M_KEPT_32)]
