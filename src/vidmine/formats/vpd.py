"""VPD (Video Pose Distillation) pose folders and crop file names (docs/formats/vpd.md,
"Pose directory", "Crops").

A pose folder ``pose/<video>/`` holds what VPD's ``extract_square_crops.py`` and the apply
scripts read:

* ``boxes.json``: ``[[frame, [x, y, w, h]], ...]``, the tracked athlete's box per frame.
* ``coco_keypoints.json.gz``: ``[[frame, [[score, [x, y, w, h], [[x, y, conf] x 17]], ...]], ...]``.
* ``mask.json.gz``: ``[[frame, [[score, [x, y, w, h], png_b64], ...]], ...]``, each mask a
  base64 (``encodebytes``, newline-wrapped) 1-bit PNG of the (h, w) box; VPD decodes it to a
  bool array and uses it as a boolean index, so it must be mode '1' (an 'L' PNG would be
  misread as integer indices).

Frames are 0-based decode indices; frames may be missing. Pixel coordinates are those of the
source video. The gzip files are ASCII JSON (VPD opens them with ``encoding='ascii'``).
``meta.json`` is listed in VPD's README but read by no code and has no known schema, so it
is not written.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import io
import json
import math
import os
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from vidmine.formats import FormatError
from vidmine.formats._pickles import load_pickle, one_line, save_pickle
from vidmine.formats.track_crops import TrackCrops
from vidmine.io import gzip_text_atomic, write_text_atomic
from vidmine.tracks import (
    N_KEYPOINTS,
    PERSON_CLASS_ID,
    clamp_to_frame,
    encode_mask_png,
    keypoint_array,
)

BOXES_FILE = "boxes.json"
KEYPOINTS_FILE = "coco_keypoints.json.gz"
MASKS_FILE = "mask.json.gz"
MASK_MIN_SCORE = 0.8  # extract_square_crops.py only crops masks scoring above this
FLOW_CLIP = 20.0  # VPD's --clip default for its flow PNGs


class VpdPose(NamedTuple):
    """One candidate pose of a frame: score, box (x, y, w, h) and (17, 3) x, y, conf."""

    score: float
    box: tuple[float, float, float, float]
    keypoints: np.ndarray


class VpdMask(NamedTuple):
    """One mask of a frame: score, integer box (x, y, w, h), bool (h, w) mask of that box."""

    score: float
    box: tuple[int, int, int, int]
    mask: np.ndarray


def crop_file_names(frame: int, num_prev: int = 1, flow_name: str = "flow") -> dict[str, str]:
    """File names of one frame in a VPD crop folder ``crops/<video>/`` (docs/formats/vpd.md,
    "Crops").

    ``rgb`` ``<frame>.png``; ``prev`` ``<frame>.prev.png`` then ``prev2``, ``prev3``, ... for
    ``--num_prev_frames``; ``mask`` ``<frame>.mask.png`` (only written for frames with a mask
    scoring above 0.8); ``flow`` ``<frame>.<flow_name>.png`` (RAFT's ``--out_name``; the
    README calls it ``flow``). The frame number is not zero-padded: the flow script matches
    ``^\\d+.png$``.
    """
    if int(frame) < 0 or num_prev < 1:
        raise FormatError(f"crop names: frame {frame} / num_prev {num_prev} out of range")
    frame = int(frame)
    names = {"rgb": f"{frame}.png", "prev": f"{frame}.prev.png"}
    for k in range(2, num_prev + 1):
        names[f"prev{k}"] = f"{frame}.prev{k}.png"
    names["mask"] = f"{frame}.mask.png"
    names["flow"] = f"{frame}.{flow_name}.png"
    return names


def _num(value: Any, digits: int) -> float:
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"non-finite value {v}")
    return round(v, digits)


def _box_json(path: Any, frame: int, box: Sequence[float]) -> list[float]:
    vals = list(box)
    if len(vals) != 4:
        raise FormatError(f"{path}: frame {frame}: box {vals} is not [x, y, w, h]")
    try:
        return [_num(v, 3) for v in vals]
    except (TypeError, ValueError) as err:
        raise FormatError(f"{path}: frame {frame}: box {vals}: {one_line(err)}") from None


def decode_mask_png(data: bytes, source: Any = "<mask>") -> np.ndarray:
    """1-bit PNG bytes -> bool (h, w), as VPD decodes them; other modes are refused."""
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except (OSError, ValueError, SyntaxError) as err:
        raise FormatError(f"{source}: mask is not a readable PNG ({one_line(err)})") from None
    if img.mode != "1":
        raise FormatError(f"{source}: mask PNG has mode {img.mode!r}, VPD needs 1-bit ('1')")
    return np.array(img, dtype=bool)


def _dump_gz(path: Path, data: Any) -> None:
    with gzip_text_atomic(path, encoding="ascii") as fh:
        json.dump(data, fh)


def write_vpd_pose(
    video_dir: str | os.PathLike,
    boxes: Mapping[int, Sequence[float]],
    keypoints: Mapping[int, Sequence[VpdPose]],
    masks: Mapping[int, Sequence[VpdMask]] | None = None,
) -> None:
    """Write ``boxes.json``, ``coco_keypoints.json.gz`` and ``mask.json.gz`` of one video.

    ``boxes``: frame -> (x, y, w, h) pixels; ``keypoints``: frame -> candidate poses;
    ``masks``: frame -> masks (``mask.json.gz`` is always written, possibly empty, because
    ``extract_square_crops.py`` requires it). Frames are written in increasing order; frames
    without entries are left out. NaN keypoints are written as x = y = conf = 0.
    """
    folder = Path(video_dir)
    folder.mkdir(parents=True, exist_ok=True)
    box_rows = [[int(f), _box_json(folder / BOXES_FILE, f, b)] for f, b in sorted(boxes.items())]
    kp_rows = []
    for frame, poses in sorted(keypoints.items()):
        entries = []
        for pose in poses:
            kp = np.asarray(pose.keypoints, dtype=np.float64)
            if kp.shape != (N_KEYPOINTS, 3):
                raise FormatError(
                    f"{folder / KEYPOINTS_FILE}: frame {frame}: keypoints {kp.shape}, "
                    "expected (17, 3)"
                )
            bad = ~np.isfinite(kp).all(axis=1)
            kp[bad] = 0.0
            pts = [[round(float(x), 3), round(float(y), 3), round(float(c), 5)] for x, y, c in kp]
            box = _box_json(folder / KEYPOINTS_FILE, frame, pose.box)
            entries.append([_num(pose.score, 5), box, pts])
        if entries:
            kp_rows.append([int(frame), entries])
    mask_rows = []
    for frame, items in sorted((masks or {}).items()):
        entries = []
        for item in items:
            m = np.asarray(item.mask, dtype=bool)
            box = [int(v) for v in item.box]
            if len(box) != 4 or m.shape != (box[3], box[2]):
                raise FormatError(
                    f"{folder / MASKS_FILE}: frame {frame}: mask {m.shape} does not match "
                    f"box {box} (needs (h, w))"
                )
            b64 = base64.encodebytes(encode_mask_png(m)).decode("ascii")
            entries.append([_num(item.score, 5), box, b64])
        if entries:
            mask_rows.append([int(frame), entries])
    write_text_atomic(folder / BOXES_FILE, json.dumps(box_rows))
    _dump_gz(folder / KEYPOINTS_FILE, kp_rows)
    _dump_gz(folder / MASKS_FILE, mask_rows)


def _load_json(path: Path) -> Any:
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rt", encoding="ascii") as fh:
                data = json.load(fh)
        else:
            data = json.loads(path.read_text(encoding="ascii"))
    except (OSError, EOFError, ValueError, zlib.error) as err:
        raise FormatError(f"{path}: not readable JSON ({one_line(err)})") from None
    if not isinstance(data, list):
        raise FormatError(f"{path}: top level is {type(data).__name__}, expected a list")
    return data


def _frame_entry(path: Path, i: int, row: Any) -> tuple[int, Any]:
    if not isinstance(row, list) or len(row) != 2 or not isinstance(row[0], int):
        raise FormatError(f"{path}: entry {i} is not [frame, value]")
    return row[0], row[1]


def _box_tuple(path: Path, frame: int, box: Any) -> tuple[float, float, float, float]:
    if not isinstance(box, list) or len(box) != 4:
        raise FormatError(f"{path}: frame {frame}: box {box!r} is not [x, y, w, h]")
    return tuple(float(v) for v in box)  # type: ignore[return-value]


def _resolve(path: str | os.PathLike, name: str) -> Path:
    p = Path(path)
    return p / name if p.is_dir() else p


def read_vpd_boxes(path: str | os.PathLike) -> dict[int, tuple[float, float, float, float]]:
    """``boxes.json`` (or its folder) -> frame -> (x, y, w, h)."""
    file = _resolve(path, BOXES_FILE)
    out = {}
    for i, row in enumerate(_load_json(file)):
        frame, box = _frame_entry(file, i, row)
        out[frame] = _box_tuple(file, frame, box)
    return out


def read_vpd_keypoints(path: str | os.PathLike) -> dict[int, list[VpdPose]]:
    """``coco_keypoints.json.gz`` (or its folder, or a flat ``<video>.json.gz``) -> poses."""
    file = _resolve(path, KEYPOINTS_FILE)
    out: dict[int, list[VpdPose]] = {}
    for i, row in enumerate(_load_json(file)):
        frame, poses = _frame_entry(file, i, row)
        out[frame] = []
        for pose in poses if isinstance(poses, list) else [None]:
            if not isinstance(pose, list) or len(pose) != 3:
                raise FormatError(f"{file}: frame {frame}: pose is not [score, box, keypoints]")
            kp = np.asarray(pose[2], dtype=np.float32)
            if kp.shape != (N_KEYPOINTS, 3):
                raise FormatError(f"{file}: frame {frame}: keypoints {kp.shape}, expected (17, 3)")
            out[frame].append(VpdPose(float(pose[0]), _box_tuple(file, frame, pose[1]), kp))
    return out


def read_vpd_masks(path: str | os.PathLike) -> dict[int, list[VpdMask]]:
    """``mask.json.gz`` (or its folder) -> frame -> masks decoded to bool (h, w) arrays."""
    file = _resolve(path, MASKS_FILE)
    out: dict[int, list[VpdMask]] = {}
    for i, row in enumerate(_load_json(file)):
        frame, items = _frame_entry(file, i, row)
        out[frame] = []
        for item in items if isinstance(items, list) else [None]:
            if not isinstance(item, list) or len(item) != 3 or not isinstance(item[2], str):
                raise FormatError(f"{file}: frame {frame}: mask is not [score, box, png_b64]")
            try:
                png = base64.decodebytes(item[2].encode("ascii"))
            except (binascii.Error, UnicodeEncodeError) as err:
                raise FormatError(f"{file}: frame {frame}: bad base64 ({one_line(err)})") from None
            mask = decode_mask_png(png, f"{file}: frame {frame}")
            box = tuple(int(v) for v in _box_tuple(file, frame, item[1]))
            if mask.shape != (box[3], box[2]):
                raise FormatError(f"{file}: frame {frame}: mask {mask.shape} vs box {list(box)}")
            out[frame].append(VpdMask(float(item[0]), box, mask))  # type: ignore[arg-type]
    return out


def read_vpd_pose(
    video_dir: str | os.PathLike,
) -> tuple[
    dict[int, tuple[float, float, float, float]], dict[int, list[VpdPose]], dict[int, list[VpdMask]]
]:
    """All three files of a pose folder: (boxes, keypoints, masks)."""
    folder = Path(video_dir)
    return (
        read_vpd_boxes(folder / BOXES_FILE),
        read_vpd_keypoints(folder / KEYPOINTS_FILE),
        read_vpd_masks(folder / MASKS_FILE),
    )


def vpd_keypoint_scores(
    keypoint_scores: np.ndarray, person_score: float | np.ndarray
) -> np.ndarray:
    """Keypoint confidences on the scale VPD's gate expects: the mean of each joint's own
    score and the person's detection score.

    VPD keeps a pose as a teacher target only where the mean of its 17 keypoint confidences
    is at least ``min_pose_score`` (0.5; ``apply_vipe_model.py`` takes ``np.mean(kp[:, 2])``
    as ``kp_score``, ``vpd_dataset/single_frame.py`` drops frames below it). VPD's poses come
    from a top-down keypoint R-CNN, which places every joint of a detected person inside its
    box and rates it on the person's scale, so that mean follows the detection. BlazePose
    rates a joint it cannot see (the legs of a driver filmed from the chest up) near 0, so a
    clearly detected person (detection score 0.82) averages 0.44 and is dropped whole. Averaged
    with the person's detection score, the mean becomes (mean joint score + person score) / 2
    (0.63 for that driver), a person the detector doubts still falls below 0.5, and the order
    of the joints' scores is kept. Rows the tracker filled in score 0 as people, so their
    poses stay below VPD's gate. Scores from a keypoint R-CNN backend (already high for every
    joint of a confident person) barely move.
    """
    scores = np.nan_to_num(np.asarray(keypoint_scores, np.float32), nan=0.0)
    return ((scores + np.float32(person_score)) / 2).astype(np.float32)


def tracks_to_vpd(
    tracks: pd.DataFrame, track_id: int, frame_size: tuple[int, int] | None = None
) -> tuple[
    dict[int, tuple[float, float, float, float]], dict[int, list[VpdPose]], dict[int, list[VpdMask]]
]:
    """One person track of a clip's track table as VPD's (boxes, keypoints, masks).

    VPD follows one athlete per video, so only that track is written: a frame's candidate
    list holds its pose alone (other people would compete for the best mask/pose). Poses of
    interpolated rows are kept with the row's score (0); masks come from ``mask_png``, whose
    box is the integer box ``[floor(x1), floor(y1), ceil(x2), ceil(y2))`` of the track table.
    Keypoint confidences are :func:`vpd_keypoint_scores`; with ``frame_size`` (width, height)
    the keypoints are moved into the frame, where a keypoint R-CNN puts every joint.
    """
    rows = tracks[(tracks["track_id"] == track_id) & (tracks["class_id"] == PERSON_CLASS_ID)]
    if not len(rows):
        raise FormatError(f"track table: no person track {track_id}")
    rows = rows.sort_values("frame", kind="stable")
    kps = keypoint_array(rows)
    kps[..., 2] = vpd_keypoint_scores(kps[..., 2], rows["score"].to_numpy(np.float32)[:, None])
    if frame_size is not None:
        kps[..., :2] = clamp_to_frame(kps[..., :2], *frame_size)
    boxes, poses, masks = {}, {}, {}
    for i, row in enumerate(rows.itertuples(index=False)):
        frame = int(row.frame)
        x1, y1, x2, y2 = float(row.x1), float(row.y1), float(row.x2), float(row.y2)
        box = (x1, y1, x2 - x1, y2 - y1)
        boxes[frame] = box
        if row.keypoints is not None:
            poses[frame] = [VpdPose(float(row.score), box, kps[i])]
        if row.mask_png is not None:
            mask = decode_mask_png(bytes(row.mask_png), f"{row.clip_id} frame {frame}")
            ix, iy = math.floor(x1), math.floor(y1)
            w, h = math.ceil(x2) - ix, math.ceil(y2) - iy
            if mask.shape != (h, w):
                raise FormatError(
                    f"{row.clip_id} frame {frame}: mask {mask.shape} vs integer box {(h, w)}"
                )
            masks[frame] = [VpdMask(float(row.score), (ix, iy, w, h), mask)]
    return boxes, poses, masks


# ------------------------------------------------------------------ crop and flow PNGs


def encode_flow_png(
    flow: np.ndarray, clip: float = FLOW_CLIP, subtract_median: bool = False
) -> np.ndarray:
    """VPD's flow image: (H, W, 3) uint8 in OpenCV's BGR order, B = dx, G = dy, R = 128.

    Clip to [-clip, clip], add clip, scale by 255 / (2 clip + 1) in float32 and truncate to
    uint8, so 0 px -> 124, +20 -> 248, -20 -> 0. ``cv2.imwrite`` of the result writes VPD's
    ``<frame>.<name>.png``. ``subtract_median`` removes each channel's median first (VPD's
    ``--subtract_median``, which cancels camera pans).
    """
    flow = np.asarray(flow, np.float32)
    if flow.ndim != 3 or flow.shape[-1] != 2:
        raise ValueError(f"need an (H, W, 2) flow, got {flow.shape}")
    if subtract_median:
        flow = flow - np.median(flow, axis=(0, 1)).astype(np.float32)
    c = np.float32(clip)
    scaled = (np.clip(np.nan_to_num(flow), -c, c) + c) * np.float32(255 / (2 * clip + 1))
    image = np.empty((*flow.shape[:2], 3), np.uint8)
    image[..., :2] = scaled.astype(np.uint8)
    image[..., 2] = 128
    return image


def decode_flow_png(image: np.ndarray, clip: float = FLOW_CLIP) -> np.ndarray:
    """Flow from a VPD flow image as ``cv2.imread`` returns it (BGR): ``pixel (2c+1)/255 - c``.

    Encoding truncates, so the decoded value is at most one step (41/255 px for c = 20) below
    the clipped original. (VPD's own training loader uses ``pixel / 255 - 0.5`` instead, which
    is not this inverse; docs/formats/vpd.md, "Flow PNGs".)
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] < 2:
        raise ValueError(f"need an (H, W, 3) flow image, got {image.shape}")
    step = np.float32((2 * clip + 1) / 255)
    return image[..., :2].astype(np.float32) * step - np.float32(clip)


def write_vpd_crops(
    folder: Path,
    crops: TrackCrops,
    flow: tuple[np.ndarray, np.ndarray] | None,
    scores: dict[int, float],
) -> dict[str, int]:
    """One track's crop folder (docs/formats/vpd.md, "Crops", "Flow PNGs"): rgb, prev, mask and flow
    PNGs per frame.

    ``<frame>.mask.png`` is written only where the track's mask scores above VPD's 0.8 (the
    score written with it in ``mask.json.gz``), as ``extract_square_crops.py`` would.
    """
    folder.mkdir(parents=True, exist_ok=True)
    flow_rows = {} if flow is None else {int(f): i for i, f in enumerate(flow[1])}
    counts = {"crops": 0, "masks": 0, "flows": 0}

    def save(name: str, image: np.ndarray) -> None:
        if not cv2.imwrite(str(folder / name), image):
            raise OSError(f"{folder / name}: cv2.imwrite failed")

    for i, frame in enumerate(crops.frames.astype(int)):
        names = crop_file_names(int(frame))
        save(names["rgb"], crops.crops[i])
        save(names["prev"], crops.prev_crops[i])
        counts["crops"] += 1
        has_mask = crops.masks is not None and crops.has_mask is not None and crops.has_mask[i]
        if has_mask and scores.get(int(frame), 0.0) > MASK_MIN_SCORE:
            save(names["mask"], crops.masks[i].astype(np.uint8) * 255)
            counts["masks"] += 1
        if flow is not None and int(frame) in flow_rows:
            save(names["flow"], encode_flow_png(flow[0][flow_rows[int(frame)]]))
            counts["flows"] += 1
    return counts


FEATURES_SUFFIX = ".emb.pkl"


class VpdFeature(NamedTuple):
    """One frame of a VPD embedding pickle (docs/formats/vpd.md, "Embedding pickles"): the
    frame number, a ``(D,)`` or ``(k, D)`` float array (row 0 the pose, row 1 its horizontal
    flip, more rows for jitters) and a metadata dict (``kp_score``, ``is_mean``, ``is_flip``
    for the teacher; empty for the student)."""

    frame: int
    embedding: np.ndarray
    meta: dict[str, Any]


def features_path(folder: str | os.PathLike, video: str) -> Path:
    """``<folder>/<video>.emb.pkl``: where VPD's loaders look for a video's features."""
    return Path(folder) / f"{video}{FEATURES_SUFFIX}"


def write_vpd_features(path: str | os.PathLike, features: Sequence[VpdFeature]) -> None:
    """Write one video's features as VPD's ``store_pickle`` does: a plain list of
    ``(frame, ndarray, dict)`` tuples sorted by frame, atomically, loadable by numpy 1.x.

    Arrays are stored as float32 (what VPD's models produce); tuples, not the NamedTuple, so
    VPD's ``pickle.load`` needs nothing of vidmine importable.
    """
    rows = sorted(
        (
            (int(f.frame), np.ascontiguousarray(f.embedding, dtype=np.float32), dict(f.meta))
            for f in features
        ),
        key=lambda row: row[0],
    )
    for frame, emb, _ in rows:
        if emb.ndim not in (1, 2) or emb.size == 0 or not np.isfinite(emb).all():
            raise ValueError(f"{path}: frame {frame}: embedding {emb.shape} must be finite 1-D/2-D")
    save_pickle(path, rows)


def read_vpd_features(path: str | os.PathLike) -> list[VpdFeature]:
    """Read a VPD embedding pickle restrictedly (numpy arrays and plain containers only: no
    callable named by the file is ever run), checking its structure; every problem is one
    :class:`FormatError` line naming the file and the entry."""
    data = load_pickle(path)
    if not isinstance(data, list):
        raise FormatError(
            f"{path}: expected a list of (frame, ndarray, dict), got {type(data).__name__}"
        )
    out: list[VpdFeature] = []
    width = None
    for i, row in enumerate(data):
        if not isinstance(row, tuple | list) or len(row) != 3:
            raise FormatError(f"{path}: entry {i} is not a (frame, ndarray, dict) triple")
        frame, emb, meta = row
        if isinstance(frame, bool) or not isinstance(frame, int | np.integer) or frame < 0:
            raise FormatError(f"{path}: entry {i}: frame {frame!r} is not a frame number")
        if not isinstance(emb, np.ndarray) or emb.ndim not in (1, 2) or emb.dtype.kind != "f":
            raise FormatError(
                f"{path}: entry {i} (frame {frame}): embedding is not a 1-D/2-D float array"
            )
        if not isinstance(meta, dict):
            raise FormatError(f"{path}: entry {i} (frame {frame}): metadata is not a dict")
        if width is not None and emb.shape[-1] != width:
            raise FormatError(
                f"{path}: entry {i} (frame {frame}): "
                f"embedding width {emb.shape[-1]}, earlier {width}"
            )
        width = emb.shape[-1]
        out.append(VpdFeature(int(frame), emb, meta))
    return out
