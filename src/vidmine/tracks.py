"""The track table: what detection and tracking write per clip, and what crops, flow, exports
and the lifter read.

One parquet file per clip (``tracks/{shard}/{clip_id}.parquet``), one row per (frame, track):
never one file per frame. Coordinates are pixels of the clip (which has the source video's
resolution). Keypoints follow COCO-17 order (``COCO_KEYPOINTS``) as flat ``x, y, score`` triples,
the layout of Detectron's keypoint R-CNN that VideoPose3D and VPD consume.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from vidmine.io import write_table_atomic

COCO_KEYPOINTS = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
N_KEYPOINTS = len(COCO_KEYPOINTS)
# Left/right joint indices (VideoPose3D's custom-dataset metadata uses the same lists).
COCO_LEFT = [1, 3, 5, 7, 9, 11, 13, 15]
COCO_RIGHT = [2, 4, 6, 8, 10, 12, 14, 16]
# Bones for drawing skeletons.
COCO_BONES = [
    (0, 1), (0, 2), (1, 3), (2, 4), (5, 6), (5, 7), (7, 9), (6, 8), (8, 10),
    (5, 11), (6, 12), (11, 12), (11, 13), (13, 15), (12, 14), (14, 16),
]  # fmt: skip
PERSON_CLASS_ID = 1  # COCO category id

# COCO category names by id (the 80 "thing" classes of the 91-id numbering that torchvision and
# Detectron use); index = category id. The track table's class_name and TrackVerse's labels.
COCO_CATEGORIES = [
    "__background__", "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train",
    "truck", "boat", "traffic light", "fire hydrant", "N/A", "stop sign", "parking meter",
    "bench", "bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra",
    "giraffe", "N/A", "backpack", "umbrella", "N/A", "N/A", "handbag", "tie", "suitcase",
    "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove",
    "skateboard", "surfboard", "tennis racket", "bottle", "N/A", "wine glass", "cup", "fork",
    "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot",
    "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed", "N/A",
    "dining table", "N/A", "N/A", "toilet", "N/A", "tv", "laptop", "mouse", "remote",
    "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "N/A",
    "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
]  # fmt: skip
PERSON = "person"

TRACK_SCHEMA = pa.schema(
    [
        ("clip_id", pa.string()),
        ("frame", pa.int32()),  # frame index within the clip (clip's native fps)
        ("time", pa.float64()),  # seconds from the clip's first frame
        ("track_id", pa.int32()),  # >= 1, unique within the clip; tracks never cross clips
        ("class_id", pa.int32()),  # COCO category id (person = 1)
        ("class_name", pa.string()),
        ("x1", pa.float32()),
        ("y1", pa.float32()),
        ("x2", pa.float32()),
        ("y2", pa.float32()),
        ("score", pa.float32()),  # detection score; 0 on interpolated rows
        # 17 x (x, y, score), flat; null for objects without keypoints
        ("keypoints", pa.list_(pa.float32(), 3 * N_KEYPOINTS)),
        ("interpolated", pa.bool_()),  # filled in by gap interpolation, not detected
        # person mask inside the integer box [floor(x1), floor(y1), ceil(x2), ceil(y2)), as a
        # 1-bit PNG; null where the backend gave none
        ("mask_png", pa.binary()),
        # the box's class distribution (index = COCO category id, 0 = background) where the
        # backend gives one (torchvision's box detector); null elsewhere and on interpolated rows
        ("class_scores", pa.list_(pa.float32())),
    ]
)
TRACK_COLUMNS = TRACK_SCHEMA.names


def empty_tracks() -> pd.DataFrame:
    """A track table with no rows (a clip without people is an empty table, not an error)."""
    return TRACK_SCHEMA.empty_table().to_pandas()


def write_tracks(rows: pd.DataFrame | list[dict[str, Any]], path: str | Path) -> None:
    """Write one clip's track table atomically, sorted by track then frame."""
    frame = pd.DataFrame(rows, columns=TRACK_COLUMNS) if isinstance(rows, list) else rows
    # class_scores is optional: rows of backends without it (and tables made before it) have none
    if "class_scores" not in frame.columns:
        frame = frame.assign(class_scores=None)
    values = [v if isinstance(v, list | np.ndarray) else None for v in frame.class_scores]
    frame = frame.assign(class_scores=pd.Series(values, index=frame.index, dtype=object))
    if len(frame):
        frame = frame.sort_values(["track_id", "frame"], kind="stable")
    table = pa.Table.from_pandas(frame[TRACK_COLUMNS], schema=TRACK_SCHEMA, preserve_index=False)
    write_table_atomic(table, path)


def read_tracks(path: str | Path) -> pd.DataFrame:
    return pd.read_parquet(path)


def keypoint_array(tracks: pd.DataFrame) -> np.ndarray:
    """Keypoints of the rows as (N, 17, 3) float32 (x, y, score); NaN rows where absent."""
    out = np.full((len(tracks), N_KEYPOINTS, 3), np.nan, dtype=np.float32)
    for i, value in enumerate(tracks["keypoints"]):
        if value is not None:
            out[i] = np.asarray(value, dtype=np.float32).reshape(N_KEYPOINTS, 3)
    return out


def clamp_to_frame(xy: np.ndarray, width: int, height: int) -> np.ndarray:
    """Pixel positions (..., 2) moved into [0, w - 1] x [0, h - 1]; NaN stays NaN.

    Where a top-down keypoint R-CNN (the source of VideoPose3D's and VPD's 2D poses) puts a
    joint it cannot see: inside the person's box, so inside the image. BlazePose places such
    joints beyond the border instead.
    """
    out = np.array(xy, dtype=np.float32, copy=True)
    out[..., 0] = np.clip(out[..., 0], 0, width - 1)
    out[..., 1] = np.clip(out[..., 1], 0, height - 1)
    return out


def boxes_array(tracks: pd.DataFrame) -> np.ndarray:
    """Boxes of the rows as (N, 4) float32 x1, y1, x2, y2."""
    return tracks[["x1", "y1", "x2", "y2"]].to_numpy(dtype=np.float32)


def encode_mask_png(mask: np.ndarray) -> bytes:
    """A boolean (h, w) mask as a 1-bit PNG: the ``mask_png`` cell, and VPD's mask encoding."""
    import cv2  # here, not at the top: the track table's readers (the CLI too) need no OpenCV

    ok, data = cv2.imencode(".png", np.asarray(mask, np.uint8) * 255, [cv2.IMWRITE_PNG_BILEVEL, 1])
    if not ok:
        raise ValueError(f"cannot PNG-encode a mask of shape {np.shape(mask)}")
    return data.tobytes()


def decode_mask_png(data: bytes | None) -> np.ndarray | None:
    """A ``mask_png`` cell as a bool (h, w) array; None when absent or undecodable."""
    if data is None or len(data) == 0:
        return None
    import cv2

    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if image is None or image.size == 0:
        return None
    return image > 0
