"""HMMR's training input pipeline, re-implemented in numpy for the tests: what human_dynamics
(0887f37) does to one serialized train example, so a test can read vidmine's records as HMMR's
trainer would and fail where HMMR would fail or silently train on garbage.

Written from reading (not copied from):

* ``src/util/data_utils.py::parse_example_proto_temporal`` - the feature map (FixedLen
  ``meta/N`` and ``mosh/shape`` (10,), VarLen lists with their dtypes, ``image/phis`` only in
  the precomputed-phi mode), ``process_tensors`` (an absent or empty VarLen feature becomes a
  tensor of the default value, 0, with no error: that is how missing phis turn into zeros),
  ``pick_sequences`` (a random window of T frames, which needs N >= T), the labels'
  concatenation, the image shape forced to (T, 224, 224, 3) or (T, 300, 300, 3);
* ``src/data_loader_sequence.py::SequenceDataLoader.read_data`` - rescale to [-1, 1] with
  precomputed phis, else ``TubePreprocessor``; labels transposed to (T, 25, 3);
* ``src/util/tube_augmentation.py::TubePreprocessor.preprocess_image`` at zero jitter
  (translation 0, scale 2 ** 0, no flip): pad by ``112 + trans_max 20 + 50``, crop 224 around
  ``image/centers``, labels ``(2 * x / 224 - 1) * vis``.
"""

from __future__ import annotations

import cv2
import numpy as np
from tfrecord import example_pb2

T_DEFAULT = 20  # src/config.py: flags.DEFINE_integer('T', 20, ...)
IMG_SIZE = 224  # config.img_size
TRANS_MAX = 20  # config.trans_max
NUM_KPS = 25  # config.num_kps

# parse_example_proto_temporal's VarLen features and their dtypes.
VARLEN = {
    "image/heightwidths": "int64",
    "image/filenames": "bytes",
    "image/centers": "int64",
    "image/visibilities": "int64",
    "image/xys": "float",
    "image/face_pts": "float",
    "image/toe_pts": "float",
    "mosh/poses": "float",
    "mosh/gt3ds": "float",
    "image/encoded": "bytes",
}
_KIND = {"bytes_list": "bytes", "float_list": "float", "int64_list": "int64"}


class HmmrWouldFail(AssertionError):
    """Where TensorFlow would raise while HMMR parses or batches the example."""


def _features(data: bytes) -> dict[str, tuple[str, list]]:
    proto = example_pb2.Example.FromString(data)
    out = {}
    for key, feature in proto.features.feature.items():
        kind = feature.WhichOneof("kind")
        out[key] = (_KIND[kind], list(getattr(feature, kind).value))
    return out


def _process_tensors(values: list, n: int, window: slice, shape: tuple[int, ...]) -> np.ndarray:
    """process_tensors: empty -> zeros of ``shape``; else reshape (N, -1), take the window,
    reshape to ``shape`` (an error when the sizes disagree)."""
    if not values:
        return np.zeros(shape, np.float32)
    arr = np.asarray(values)
    if arr.size % n:
        raise HmmrWouldFail(f"{arr.size} values do not reshape to ({n}, -1)")
    per_frame = arr.reshape(n, -1)[window]
    if per_frame.size != int(np.prod(shape)):
        raise HmmrWouldFail(f"{per_frame.shape} does not reshape to {shape}")
    return per_frame.reshape(shape)


def _decode(jpeg: bytes) -> np.ndarray:
    """decode_jpeg: RGB, float in [0, 1)."""
    bgr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise HmmrWouldFail("image/encoded holds something that is not a JPEG")
    return bgr[:, :, ::-1].astype(np.float32) / 255.0


def _augment_at_zero_jitter(image: np.ndarray, label: np.ndarray, center: np.ndarray):
    """TubePreprocessor.preprocess_image with no jitter: (224 crop in [-1, 1], (3, 25) label)."""
    margin = IMG_SIZE // 2
    safe = margin + TRANS_MAX + 50
    padded = np.pad(image, ((safe, safe), (safe, safe), (0, 0)), mode="edge")
    start = center.astype(int) + safe - margin
    crop = padded[start[1] : start[1] + IMG_SIZE, start[0] : start[0] + IMG_SIZE]
    x = label[0] + safe - start[0]
    y = label[1] + safe - start[1]
    vis = (label[2] > 0).astype(np.float32)
    final = np.stack([2.0 * x / IMG_SIZE - 1.0, 2.0 * y / IMG_SIZE - 1.0, vis]) * vis
    return (crop - 0.5) * 2.0, final


def read_like_hmmr_training(
    data: bytes, precomputed_phi: bool, T: int = T_DEFAULT, start: int = 0
) -> dict[str, np.ndarray]:
    """One serialized example as HMMR's trainer gets it: ``phis`` (T, 2048) with precomputed
    phis, ``images`` (T, 224, 224, 3) in [-1, 1] and ``labels`` (T, 25, 3), for the window of
    T frames at ``start`` (pick_sequences draws it at random)."""
    feats = _features(data)
    for key in ("meta/N", "mosh/shape"):
        if key not in feats:
            raise HmmrWouldFail(f"FixedLenFeature {key} is missing")
    n_values = feats["meta/N"][1]
    if feats["meta/N"][0] != "int64" or len(n_values) != 1:
        raise HmmrWouldFail("meta/N is not one int64")
    if feats["mosh/shape"][0] != "float" or len(feats["mosh/shape"][1]) != 10:
        raise HmmrWouldFail("mosh/shape is not 10 floats")
    varlen = dict(VARLEN)
    if precomputed_phi:
        varlen["image/phis"] = "float"
    for key, kind in varlen.items():
        if key in feats and feats[key][1] and feats[key][0] != kind:
            raise HmmrWouldFail(f"{key} is a {feats[key][0]} list, the loader reads {kind}")
    n = int(n_values[0])
    if n - T + 1 <= 0 or not 0 <= start <= n - T:
        raise HmmrWouldFail(f"pick_sequences: N = {n} frames cannot give a window of T = {T}")
    window = slice(start, start + T)

    def get(key: str, shape: tuple[int, ...]) -> np.ndarray:
        return _process_tensors(feats.get(key, ("", []))[1], n, window, shape)

    out: dict[str, np.ndarray] = {}
    if precomputed_phi:
        out["phis"] = get("image/phis", (T, 2048)).astype(np.float32)
    jpegs = feats.get("image/encoded", ("", []))[1]
    if len(jpegs) != n:
        raise HmmrWouldFail(f"{len(jpegs)} images for N = {n}")
    images = np.stack([_decode(j) for j in jpegs[window]])
    side = IMG_SIZE if precomputed_phi else 300
    if images.shape != (T, side, side, 3):  # images.set_shape((T, side, side, 3))
        raise HmmrWouldFail(f"images {images.shape}, the loader fixes {(T, side, side, 3)}")
    sizes = get("image/heightwidths", (T, 2)).astype(np.int64)
    centers = get("image/centers", (T, 2)).astype(np.int64)
    xys = get("image/xys", (T, 2, 14))
    vis = get("image/visibilities", (T, 1, 14))
    face = get("image/face_pts", (T, 3, 5))
    toes = get("image/toe_pts", (T, 3, 6))
    labels = np.concatenate([np.concatenate([xys, vis], axis=1), face, toes], axis=2)
    labels = labels[:, :, :NUM_KPS].astype(np.float32)
    if precomputed_phi:
        out["images"] = (images - 0.5) * 2.0
    else:
        pairs = [_augment_at_zero_jitter(images[t], labels[t], centers[t]) for t in range(T)]
        out["images"] = np.stack([p[0] for p in pairs])
        labels = np.stack([p[1] for p in pairs])
    out["labels"] = labels.transpose(0, 2, 1)
    out["image_sizes"] = sizes
    out["centers"] = centers
    return out
