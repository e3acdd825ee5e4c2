"""HMMR / InstaVariety tfrecords (docs/formats/hmmr.md, "TFRecord layout"), written and read without
TensorFlow.

One ``tf.train.Example`` (not a SequenceExample) per track, every per-frame feature flattened
in C order, with the keys and list types of HMMR's ``convert_to_example_temporal`` (the code,
not ``doc/datasets.md``: ``image/toe_pts``, float ``image/phis``, N x 2 ``image/heightwidths``,
int64 ``image/crop_pts``, -1 placeholders for ``mosh/shape`` and ``mosh/poses``).

Framing: each record is ``uint64 length, masked crc32c(length), data, masked crc32c(data)``.
The ``tfrecord`` package's writer could produce it, but its reader does not verify checksums
and reports a truncated file without naming it, and its writer cannot write atomically, so
the framing is done here (with ``crc32c``) and only its bundled ``example_pb2`` (the
``tensorflow.Example`` protobuf) is used. That module is imported lazily: importing the
``tfrecord`` package also imports torch when it is installed.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import crc32c
import cv2
import numpy as np

from vidmine.formats import FormatError
from vidmine.formats._pickles import one_line
from vidmine.io import atomic_path
from vidmine.tracks import COCO_KEYPOINTS

# HMMR's 25 joints (docs/formats/hmmr.md, "Per-frame JSON tracks"): LSP-14, 5 face points, 6 toe
# points. Slots 0 and 5 hold OpenPose heels (the "ankle" slots of HMR's cocoplus), the true ankles
# are 23 and 24.
HMMR_JOINTS: tuple[str, ...] = (
    "R Heel",
    "R Knee",
    "R Hip",
    "L Hip",
    "L Knee",
    "L Heel",
    "R Wrist",
    "R Elbow",
    "R Shoulder",
    "L Shoulder",
    "L Elbow",
    "L Wrist",
    "Neck",
    "Head",
    "Nose",
    "L Eye",
    "R Eye",
    "L Ear",
    "R Ear",
    "L Big Toe",
    "R Big Toe",
    "L Small Toe",
    "R Small Toe",
    "L Ankle",
    "R Ankle",
)
N_HMMR = len(HMMR_JOINTS)
# COCO-17 name -> HMMR name, by meaning. HMMR joints without a COCO source (heels, neck, head,
# toes) get visibility 0.
COCO_TO_HMMR_NAMES: dict[str, str] = {
    "nose": "Nose",
    "left_eye": "L Eye",
    "right_eye": "R Eye",
    "left_ear": "L Ear",
    "right_ear": "R Ear",
    "left_shoulder": "L Shoulder",
    "right_shoulder": "R Shoulder",
    "left_elbow": "L Elbow",
    "right_elbow": "R Elbow",
    "left_wrist": "L Wrist",
    "right_wrist": "R Wrist",
    "left_hip": "L Hip",
    "right_hip": "R Hip",
    "left_knee": "L Knee",
    "right_knee": "R Knee",
    "left_ankle": "L Ankle",
    "right_ankle": "R Ankle",
}
# hmmr index -> coco index
HMMR_FROM_COCO: dict[int, int] = {
    HMMR_JOINTS.index(h): COCO_KEYPOINTS.index(c) for c, h in COCO_TO_HMMR_NAMES.items()
}

# Feature key -> tf.train.Feature list type, as convert_to_example_temporal writes them.
FEATURE_TYPES: dict[str, str] = {
    "meta/N": "int64",
    "meta/has_3d": "int64",
    "meta/has_3d_joints": "int64",
    "mosh/shape": "float",
    "mosh/poses": "float",
    "mosh/gt3ds": "float",
    "image/cams": "float",
    "image/filenames": "bytes",
    "image/heightwidths": "int64",
    "image/xys": "float",
    "image/visibilities": "int64",
    "image/face_pts": "float",
    "image/toe_pts": "float",
    "image/centers": "int64",
    "image/scale_factors": "float",
    "image/crop_pts": "int64",
    "image/encoded": "bytes",
    "image/phis": "float",
    "image/encoded_og": "bytes",
    "meta/time_pts": "int64",
}
OPTIONAL_FEATURES = frozenset({"image/phis", "image/encoded_og", "meta/time_pts"})
REQUIRED_FEATURES = tuple(k for k in FEATURE_TYPES if k not in OPTIONAL_FEATURES)
# Values per frame of the features whose length is a multiple of N.
PER_FRAME: dict[str, int] = {
    "mosh/poses": 72,
    "mosh/gt3ds": 14 * 3,
    "image/cams": 3,
    "image/heightwidths": 2,
    "image/xys": 2 * 14,
    "image/visibilities": 14,
    "image/face_pts": 3 * 5,
    "image/toe_pts": 3 * 6,
    "image/centers": 2,
    "image/crop_pts": 2,
    "image/encoded": 1,
    "image/phis": 2048,  # PHI_DIM
    "image/encoded_og": 1,
}
HMR_BOX_DIAGONAL = 150.0  # HMMR scales each frame so the visible-joint box diagonal is 150 px
PHI_DIM = 2048  # image/phis per frame: HMR's resnet_v2_50 global pool
HMR_CHECKPOINT = "hmr_noS5.ckpt-642561"  # the phi encoder HMMR's data preparation loads
RAW_CROP = 300  # insta_variety_to_tfrecords.process_image: 300 x 300 crop, edge pad 300
# Crop side of each record layout (hmmr_example): precomputed-phi train, raw train, test.
Layout = Literal["phi", "raw", "test"]
LAYOUT_CROP: dict[str, int] = {"phi": 224, "raw": RAW_CROP, "test": 224}
# insta_variety_to_tfrecords.py MIN_NUM_FRAMES: clean_video drops shorter tracks (train and test)
HMMR_MIN_FRAMES = 40

Example = dict[str, Any]  # feature key -> np.ndarray (int64 / float32) or list[bytes]

_MASK_DELTA = 0xA282EAD8
_LIST_KIND = {"float32": "float", "int64": "int64"}


def _masked_crc(data: bytes) -> int:
    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def _example_pb2() -> Any:
    from tfrecord import example_pb2  # lazy: the package import pulls in torch if present

    return example_pb2


def _feature_values(path: Any, index: int, key: str, value: Any) -> list[Any]:
    kind = FEATURE_TYPES[key]
    if kind == "bytes":
        items = [value] if isinstance(value, bytes | str) else list(value)
        return [v.encode() if isinstance(v, str) else bytes(v) for v in items]
    arr = np.asarray(value).reshape(-1)
    if kind == "int64":
        if arr.size and not np.issubdtype(arr.dtype, np.integer) and not np.all(arr % 1 == 0):
            raise FormatError(f"{path}: example {index}: {key} must hold integers")
        return arr.astype(np.int64).tolist()
    return arr.astype(np.float32).tolist()


def _check_example(path: Any, index: int, example: Mapping[str, Any]) -> None:
    unknown = sorted(set(example) - set(FEATURE_TYPES))
    missing = [k for k in REQUIRED_FEATURES if k not in example]
    if unknown or missing:
        raise FormatError(f"{path}: example {index}: unknown keys {unknown}, missing {missing}")
    n_arr = np.asarray(example["meta/N"]).reshape(-1)
    if n_arr.size != 1 or int(n_arr[0]) <= 0:
        raise FormatError(f"{path}: example {index}: meta/N must be one positive integer")
    n = int(n_arr[0])

    def length(key: str) -> int:
        value = example[key]
        if FEATURE_TYPES[key] == "bytes":
            return 1 if isinstance(value, bytes | str) else len(value)
        return int(np.asarray(value).size)

    expected = {key: n * per for key, per in PER_FRAME.items() if key in example}
    expected.update({"meta/has_3d": 1, "meta/has_3d_joints": 1, "mosh/shape": 10})
    if "meta/time_pts" in example:
        expected["meta/time_pts"] = 2
    for key, want in expected.items():
        if length(key) != want:
            raise FormatError(
                f"{path}: example {index}: {key} has {length(key)} values, expected {want}"
            )
    if length("image/scale_factors") not in (n, 2 * n):
        raise FormatError(f"{path}: example {index}: image/scale_factors needs N or 2N values")
    if length("image/filenames") < n:  # the train script keeps the untrimmed list (>= N)
        raise FormatError(f"{path}: example {index}: image/filenames has fewer than N names")


def serialize_example(example: Mapping[str, Any], path: Any = "<memory>", index: int = 0) -> bytes:
    """One example dict -> serialized ``tf.train.Example`` bytes (after checking lengths)."""
    _check_example(path, index, example)
    pb = _example_pb2()
    features = {}
    for key, value in example.items():
        values = _feature_values(path, index, key, value)
        kind = FEATURE_TYPES[key]
        if kind == "bytes":
            features[key] = pb.Feature(bytes_list=pb.BytesList(value=values))
        elif kind == "float":
            features[key] = pb.Feature(float_list=pb.FloatList(value=values))
        else:
            features[key] = pb.Feature(int64_list=pb.Int64List(value=values))
    return pb.Example(features=pb.Features(feature=features)).SerializeToString()


def write_hmmr_tfrecord(path: str | os.PathLike, examples: Iterable[Mapping[str, Any]]) -> int:
    """Write examples (one per track) to an uncompressed tfrecord file; return how many."""
    count = 0
    with atomic_path(Path(path)) as tmp, open(tmp, "wb") as fh:
        for index, example in enumerate(examples):
            data = serialize_example(example, path, index)
            header = struct.pack("<Q", len(data))
            fh.write(header)
            fh.write(struct.pack("<I", _masked_crc(header)))
            fh.write(data)
            fh.write(struct.pack("<I", _masked_crc(data)))
            count += 1
    return count


def _iter_records(path: str | os.PathLike) -> Iterable[bytes]:
    with open(path, "rb") as fh:
        index = 0
        while True:
            header = fh.read(8)
            if not header:
                return
            if len(header) < 8:
                raise FormatError(f"{path}: record {index}: truncated length field")
            (length,) = struct.unpack("<Q", header)
            crc_bytes = fh.read(4)
            if len(crc_bytes) < 4 or struct.unpack("<I", crc_bytes)[0] != _masked_crc(header):
                raise FormatError(f"{path}: record {index}: bad length checksum (not a tfrecord?)")
            data = fh.read(length)
            crc_bytes = fh.read(4)
            if len(data) < length or len(crc_bytes) < 4:
                raise FormatError(f"{path}: record {index}: truncated ({len(data)}/{length} bytes)")
            if struct.unpack("<I", crc_bytes)[0] != _masked_crc(data):
                raise FormatError(f"{path}: record {index}: data checksum mismatch")
            yield data
            index += 1


def parse_example(data: bytes, path: Any = "<memory>", index: int = 0) -> Example:
    """Serialized ``tf.train.Example`` -> dict: int64 / float32 arrays, lists of bytes."""
    pb = _example_pb2()
    try:
        proto = pb.Example.FromString(data)
    except Exception as err:  # protobuf's DecodeError has no stable import path
        raise FormatError(f"{path}: record {index}: not an Example ({one_line(err)})") from None
    out: Example = {}
    for key, feature in proto.features.feature.items():
        kind = feature.WhichOneof("kind")
        if kind == "bytes_list":
            out[key] = list(feature.bytes_list.value)
        elif kind == "float_list":
            out[key] = np.asarray(feature.float_list.value, dtype=np.float32)
        elif kind == "int64_list":
            out[key] = np.asarray(feature.int64_list.value, dtype=np.int64)
        else:
            out[key] = np.zeros(0, dtype=np.float32)
    return out


def read_hmmr_tfrecord(path: str | os.PathLike) -> list[Example]:
    """All examples of a tfrecord file, checksums verified, each checked against
    docs/formats/hmmr.md, "TFRecord layout"."""
    out = []
    for index, data in enumerate(_iter_records(path)):
        example = parse_example(data, path, index)
        for key, value in example.items():
            want = FEATURE_TYPES.get(key)
            got = "bytes" if isinstance(value, list) else _LIST_KIND[value.dtype.name]
            if want is not None and got != want and len(value):
                raise FormatError(f"{path}: record {index}: {key} is a {got} list, not {want}")
        _check_example(path, index, example)
        out.append(example)
    return out


def hmmr_labels(example: Mapping[str, Any]) -> np.ndarray:
    """(N, 25, 3) x, y, visibility, assembled the way HMMR's loader does.

    ``parse_example_proto_temporal``: concat(xys (N,2,14), vis (N,1,14)) along axis 1, then
    with face (N,3,5) and toes (N,3,6) along axis 2, then transpose to (N, 25, 3).
    """
    n = int(np.asarray(example["meta/N"]).reshape(-1)[0])
    xys = np.asarray(example["image/xys"], np.float32).reshape(n, 2, 14)
    vis = np.asarray(example["image/visibilities"], np.float32).reshape(n, 1, 14)
    face = np.asarray(example["image/face_pts"], np.float32).reshape(n, 3, 5)
    toes = np.asarray(example["image/toe_pts"], np.float32).reshape(n, 3, 6)
    labels = np.concatenate([np.concatenate([xys, vis], axis=1), face, toes], axis=2)
    return labels.transpose(0, 2, 1)


def coco_to_hmmr(keypoints: np.ndarray, min_score: float = 0.1) -> np.ndarray:
    """(T, 17, 3) COCO x, y, score -> (T, 25, 3) HMMR x, y, visibility (0/1).

    A joint is visible when its score is >= ``min_score`` (HMMR's OpenPose threshold, 0.1,
    applied to the detector's keypoint score) and finite. Unmapped joints are (0, 0, 0).
    """
    kp = np.asarray(keypoints, dtype=np.float32)
    if kp.ndim != 3 or kp.shape[1:] != (len(COCO_KEYPOINTS), 3):
        raise FormatError(f"keypoints: shape {kp.shape}, expected (T, 17, 3)")
    out = np.zeros((len(kp), N_HMMR, 3), dtype=np.float32)
    for h, c in HMMR_FROM_COCO.items():
        xy = kp[:, c, :2]
        ok = np.isfinite(xy).all(axis=1) & np.isfinite(kp[:, c, 2]) & (kp[:, c, 2] >= min_score)
        out[:, h, :2] = np.where(np.isfinite(xy), xy, 0.0)
        out[:, h, 2] = ok
    return out


def _crop_params(kp25: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre and scale of one frame, HMMR's rule: visible joints' box -> 150 px diagonal.

    HMMR takes min/max of the visible joints; a frame with fewer than two visible joints (or
    a degenerate extent) falls back to the tracker box. HMMR also median/Gaussian-smooths the
    per-frame values; vidmine's boxes come from a tracker already, so frames are used as is.
    """
    vis = kp25[:, 2] > 0
    if vis.sum() >= 2:
        lo, hi = kp25[vis, :2].min(axis=0), kp25[vis, :2].max(axis=0)
        diag = float(np.linalg.norm(hi - lo))
        if diag >= 0.5:
            return (lo + hi) / 2, HMR_BOX_DIAGONAL / diag
    x1, y1, x2, y2 = (float(v) for v in box)
    diag = float(np.hypot(x2 - x1, y2 - y1))
    if not np.isfinite(diag) or diag < 0.5:
        raise FormatError(f"box {box.tolist()}: too small to crop")
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2], np.float32), HMR_BOX_DIAGONAL / diag


@dataclass
class HmmrFrame:
    """One frame of a track, cropped as HMMR's data preparation crops it (before the crop is
    JPEG-encoded): labels (25, 3) x, y in crop pixels and visibility 0/1; ``center`` and
    ``start`` (the crop origin) in the resized frame, before HMMR's edge pad; ``scale``.
    ``crop`` may be dropped (None) once encoded, so a long track holds JPEGs, not pixels."""

    size: int
    crop: np.ndarray | None  # (size, size, 3) BGR uint8
    labels: np.ndarray
    center: np.ndarray
    start: np.ndarray
    scale: float

    def encode(self, jpeg_quality: int = 95) -> bytes:
        if self.crop is None:
            raise FormatError("track: the crop was dropped before it was encoded")
        ok, jpg = cv2.imencode(".jpg", self.crop, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
        if not ok:
            raise FormatError("track: JPEG encoding failed")
        return jpg.tobytes()


def crop_hmmr_frame(
    frame_bgr: np.ndarray, kp25: np.ndarray, box: np.ndarray, crop_size: int
) -> HmmrFrame:
    """HMMR's ``process_image`` for one frame: scale so the person's joint box has a 150 px
    diagonal, edge-pad, crop ``crop_size`` square around the rounded centre (one
    ``cv2.warpAffine`` with replicated borders does resize + pad + crop). Joints without a COCO
    source are (0, 0, 0)."""
    center, scale = _crop_params(kp25, box)
    center_scaled = np.round(center * scale).astype(np.int64)
    start = center_scaled - crop_size // 2
    affine = np.array([[scale, 0, -start[0]], [0, scale, -start[1]]], dtype=np.float64)
    crop = cv2.warpAffine(
        frame_bgr,
        affine,
        (crop_size, crop_size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    labels = np.zeros((N_HMMR, 3), np.float32)
    labels[:, :2] = kp25[:, :2] * scale - start
    labels[:, 2] = kp25[:, 2]
    labels[[h for h in range(N_HMMR) if h not in HMMR_FROM_COCO]] = 0.0
    return HmmrFrame(crop_size, crop, labels, center_scaled, start, float(scale))


def hmmr_layout(mode: str, precomputed_phi: bool) -> Layout:
    """The layout a split's records take: test -> ``test``; train -> ``phi`` for HMMR's
    ``--precomputed_phi=True`` (its default) or ``raw`` for ``--precomputed_phi=False``."""
    if mode not in ("train", "test"):
        raise FormatError(f"track: mode {mode!r}, expected 'train' or 'test'")
    if mode == "test":
        return "test"
    return "phi" if precomputed_phi else "raw"


def hmmr_example(
    frames: Sequence[HmmrFrame],
    layout: Layout,
    *,
    filenames: Sequence[str],
    jpegs: Sequence[bytes] | None = None,
    phis: np.ndarray | None = None,
    time_pts: tuple[int, int] | None = None,
) -> Example:
    """The example of a track's cropped frames, in one of HMMR's three layouts
    (docs/formats/hmmr.md):

    * ``phi`` (train, ``precomputed_phi=True``): 224 crops (the tube augmentor's crop at zero
      jitter), labels ``(2 * x / 224 - 1) * vis``, ``image/phis`` (N, 2048) required,
      centres in the 300-crop frame and crop points of the 300 crop, as HMMR writes them.
    * ``raw`` (train, ``precomputed_phi=False``): 300 crops, labels in crop pixels, centres
      in the crop, no phis; HMMR's loader augments and crops 224 itself.
    * ``test``: 224 crops, pixel labels, one scale per frame, ``meta/time_pts``.

    ``jpegs`` are the frames' encoded crops (encoded here when not given).
    """
    n = len(frames)
    if n == 0:
        raise FormatError("track: no frames")
    size = LAYOUT_CROP[layout]
    if any(f.size != size for f in frames):
        raise FormatError(f"track: {layout} layout needs {size} x {size} crops")
    if len(filenames) < n:
        raise FormatError(f"track: {len(filenames)} filenames for {n} frames")
    if layout == "phi":
        if phis is None or np.asarray(phis).shape != (n, PHI_DIM):
            got = None if phis is None else np.asarray(phis).shape
            raise FormatError(f"track: the phi layout needs phis ({n}, {PHI_DIM}), got {got}")
    elif phis is not None:
        raise FormatError(f"track: the {layout} layout takes no phis (HMMR would not read them)")
    labels = np.stack([f.labels for f in frames]).astype(np.float32)
    starts = np.stack([f.start for f in frames]).astype(np.int64)
    centers = np.stack([f.center for f in frames]).astype(np.int64) - starts
    crop_pts = starts + size  # HMMR pads by the crop size before cropping
    if layout == "phi":
        vis = labels[:, :, 2:3]
        labels[:, :, :2] = (2.0 * labels[:, :, :2] / size - 1.0) * vis
        offset = (RAW_CROP - size) // 2  # the 224 crop sits centred in HMMR's 300 crop
        centers, crop_pts = centers + offset, starts - offset + RAW_CROP
    lab = labels.transpose(0, 2, 1)  # (N, 3, 25): rows x, y, vis
    encoded = list(jpegs) if jpegs is not None else [f.encode() for f in frames]
    if len(encoded) != n:
        raise FormatError(f"track: {len(encoded)} JPEGs for {n} frames")
    example: Example = {
        "meta/N": np.array([n], np.int64),
        "meta/has_3d": np.array([0], np.int64),
        "meta/has_3d_joints": np.array([0], np.int64),
        "mosh/shape": np.full(10, -1.0, np.float32),
        "mosh/poses": np.full(n * 72, -1.0, np.float32),
        "mosh/gt3ds": np.zeros(n * 14 * 3, np.float32),
        "image/cams": np.zeros(n * 3, np.float32),
        "image/filenames": [str(v).encode() for v in filenames],
        "image/heightwidths": np.tile(np.array([size, size], np.int64), n),
        "image/xys": lab[:, :2, :14].reshape(-1).astype(np.float32),
        "image/visibilities": lab[:, 2, :14].reshape(-1).astype(np.int64),
        "image/face_pts": lab[:, :, 14:19].reshape(-1).astype(np.float32),
        "image/toe_pts": lab[:, :, 19:25].reshape(-1).astype(np.float32),
        "image/centers": centers.reshape(-1),
        "image/crop_pts": crop_pts.reshape(-1),
        "image/encoded": encoded,
    }
    scales = np.asarray([f.scale for f in frames], np.float32)
    if layout == "test":
        example["image/scale_factors"] = scales
        example["meta/time_pts"] = np.asarray(time_pts or (0, n), np.int64)
    else:
        example["image/scale_factors"] = np.repeat(scales, 2)  # [fy, fx] per frame
    if layout == "phi":
        example["image/phis"] = np.asarray(phis, np.float32).reshape(-1)
    return example


def track_to_hmmr_example(
    frames_bgr: Sequence[np.ndarray],
    keypoints: np.ndarray,
    boxes: np.ndarray,
    *,
    mode: Literal["train", "test"] = "train",
    precomputed_phi: bool = True,
    filenames: Sequence[str] | None = None,
    phis: np.ndarray | Callable[[np.ndarray], np.ndarray] | None = None,
    time_pts: tuple[int, int] | None = None,
    min_score: float = 0.1,
    jpeg_quality: int = 95,
) -> Example:
    """One person track -> an HMMR example dict (docs/formats/hmmr.md, "Preprocessing",
    "TFRecord layout", :func:`hmmr_example`).

    ``frames_bgr``: the track's T full frames (BGR uint8); ``keypoints``: (T, 17, 3) COCO
    x, y, score in frame pixels; ``boxes``: (T, 4) x1, y1, x2, y2. Labels are the 25 HMMR joints
    (:func:`coco_to_hmmr`). ``phis`` (train with ``precomputed_phi``): the (T, 2048) features, or
    the encoder to compute them from the BGR crops (an :class:`~vidmine.exports.hmr_encoder.
    HmrEncoder`).
    """
    kp = np.asarray(keypoints, dtype=np.float32)
    bx = np.asarray(boxes, dtype=np.float32)
    n = len(frames_bgr)
    if n == 0 or len(kp) != n or bx.shape != (n, 4):
        raise FormatError(
            f"track: {n} frames, keypoints {kp.shape}, boxes {bx.shape}: lengths must match"
        )
    layout = hmmr_layout(mode, precomputed_phi)
    kp25 = coco_to_hmmr(kp, min_score)
    crops = [
        crop_hmmr_frame(frame, kp25[t], bx[t], LAYOUT_CROP[layout])
        for t, frame in enumerate(frames_bgr)
    ]
    if callable(phis):
        phis = phis(np.stack([c.crop for c in crops]))
    names = filenames if filenames is not None else [f"{t:06d}.jpg" for t in range(n)]
    return hmmr_example(
        crops,
        layout,
        filenames=names,
        jpegs=[c.encode(jpeg_quality) for c in crops],
        phis=phis,
        time_pts=time_pts,
    )


def hmmr_test_file_name(download_tag: str, video_id: str) -> str:
    """HMMR's test file name, ``<tag>_<video_id>.tfrecord`` (one example per file)."""
    return f"{download_tag}_{video_id}.tfrecord"


def hmmr_train_file_name(shard: int, copy: int = 0, model_name: str | None = HMR_CHECKPOINT) -> str:
    """HMMR's train shard name, ``insta_variety_%02d_copy%02d[_<model>].tfrecord``: the phi
    encoder's checkpoint name is appended only when phis are stored (``process_videos``)."""
    suffix = f"_{model_name}" if model_name else ""
    return f"insta_variety_{shard:02d}_copy{copy:02d}{suffix}.tfrecord"
