"""face-api's face SSD (an SSD MobileNet V1 face detector) run in NumPy, for the audit.

The model is the face detector of face-api.js, as the npm package ``@vladmandic/face-api``
(MIT) ships it: TensorFlow Object Detection API's SSD MobileNet V1 exported to TensorFlow.js
weights (``model/ssd_mobilenetv1_model-weights_manifest.json`` and its ``.bin``: uint8-quantised
tensors, each ``q * scale + min``, and the 5,118 anchors in float32). Its graph is not in the
files: face-api builds it in TypeScript (``src/ssdMobilenetv1/``), so no Python package can
load these weights; this module builds the same network from reading that code (1.7.15):

- input: the frame padded to a square at its bottom and right, resized to 512 x 512, RGB,
  ``x / 127.5 - 1``;
- MobileNet V1: a 3x3 convolution (stride 2) and 13 depthwise + pointwise pairs (strides 2 at
  pairs 2, 4, 6 and 12), TensorFlow's ``same`` padding; the pointwise convolutions carry their
  batch norm folded into an offset, the depthwise ones an explicit batch norm (epsilon 1e-3);
  ReLU6 after each;
- SSD head: four more 1x1 / 3x3-stride-2 pairs after pair 13; box and class predictors (1x1
  convolutions) on pair 11 (32x32, 3 anchors), pair 13 (16x16) and the four extra maps (6
  anchors each); the face score is the sigmoid of class 1 of 3;
- boxes decoded against the shipped anchors with the Object Detection API's box coder (scales
  10, 10, 5, 5), then non-maximum suppression at IoU 0.5.

Its 512 px input sees a face of 25 px in a 1280 px frame as 10 px, too small for its smallest
anchors, so ``tile_side`` also runs it on overlapping tiles of the frame (each resized to 512):
tiles of 256 px look at the frame doubled. The weights come from the npm registry's tarball of
the package (``FACE_API_TARBALL``, checked against its SHA-256, cached by ``vidmine.weights``,
so ``vidmine fetch-weights`` fetches it ahead of offline jobs); they are read out of the tarball
without unpacking it.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import cv2
import numpy as np

from vidmine.stages.audit.backends import suppressed

FACE_API_VERSION = "1.7.15"
FACE_API_TARBALL = (
    f"https://registry.npmjs.org/@vladmandic/face-api/-/face-api-{FACE_API_VERSION}.tgz"
)
# SHA-256 of that tarball (the registry lists its sha512 integrity, checked against it once)
FACE_API_SHA256 = "0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031"
SSD_MODEL = "ssd_mobilenetv1_model"
INPUT_SIDE = 512
BATCH_NORM_EPSILON = 0.0010000000474974513  # face-api's mobileNetV1.ts
STRIDE_2_PAIRS = (2, 4, 6, 12)
VIEWS_IOU = 0.7  # boxes of one face from several views (whole frame, tiles) merged above this
BOX_SCALES = np.array([10.0, 10.0, 5.0, 5.0], np.float32)  # the box coder's y, x, h, w scales


class FaceApiWeightsError(ValueError):
    """A face-api tarball whose model files are missing or do not match their manifest."""


def read_tfjs_weights(tarball: Path, model: str = SSD_MODEL) -> dict[str, np.ndarray]:
    """The named tensors of ``package/model/<model>`` inside the npm tarball, dequantised to
    float32, read from the tarball's members (nothing is unpacked)."""
    with tarfile.open(tarball, "r:gz") as archive:

        def member(name: str) -> bytes:
            try:
                handle = archive.extractfile(f"package/model/{name}")
            except KeyError:
                handle = None
            if handle is None:
                raise FaceApiWeightsError(f"{tarball}: no package/model/{name} in the tarball")
            return handle.read()

        manifest = json.loads(member(f"{model}-weights_manifest.json"))
        tensors: dict[str, np.ndarray] = {}
        for group in manifest:
            data = b"".join(member(path) for path in group["paths"])
            offset = 0
            for entry in group["weights"]:
                values, offset = _tensor(entry, data, offset, tarball)
                tensors[entry["name"]] = values
            if offset != len(data):
                raise FaceApiWeightsError(
                    f"{tarball}: {model}: the manifest describes {offset} bytes, the files hold"
                    f" {len(data)}"
                )
    return tensors


def _tensor(entry: dict, data: bytes, offset: int, tarball: Path) -> tuple[np.ndarray, int]:
    """One manifest entry's tensor (dequantised when quantised) and the offset after it."""
    count = int(np.prod(entry["shape"])) if entry["shape"] else 1
    quantization = entry.get("quantization")
    stored = np.dtype(quantization["dtype"] if quantization else entry["dtype"])
    end = offset + count * stored.itemsize
    if end > len(data):
        raise FaceApiWeightsError(f"{tarball}: {entry['name']}: the weight files end early")
    values = np.frombuffer(data, stored, count, offset).astype(np.float32)
    if quantization:
        values = values * np.float32(quantization["scale"]) + np.float32(quantization["min"])
    return values.reshape(entry["shape"]), end


def _pad_same(x: np.ndarray, kernel: int, stride: int) -> np.ndarray:
    """TensorFlow's ``same`` padding of an HWC array (the odd pixel goes bottom and right)."""

    def amounts(size: int) -> tuple[int, int]:
        total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
        return total // 2, total - total // 2

    return np.pad(x, (amounts(x.shape[0]), amounts(x.shape[1]), (0, 0)))


def _taps(x: np.ndarray, kernel: int, stride: int) -> list[np.ndarray]:
    """The ``kernel * kernel`` shifted views of ``x`` a strided ``same`` convolution reads."""
    rows, cols = (
        (-(-x.shape[0] // stride) - 1) * stride + 1,
        (-(-x.shape[1] // stride) - 1) * stride + 1,
    )
    padded = _pad_same(x, kernel, stride)
    return [
        padded[dy : dy + rows : stride, dx : dx + cols : stride]
        for dy in range(kernel)
        for dx in range(kernel)
    ]


def _conv(x: np.ndarray, filters: np.ndarray, bias: np.ndarray, stride: int) -> np.ndarray:
    """A ``same`` convolution with TensorFlow's [kh, kw, in, out] filters, as one matrix product
    over the stacked taps (a 1x1 one is a product over the channels)."""
    if filters.shape[0] == 1:
        return x[::stride, ::stride] @ filters[0, 0] + bias
    stacked = np.concatenate(_taps(x, filters.shape[0], stride), axis=2)
    return stacked @ filters.reshape(-1, filters.shape[3]) + bias


def _depthwise(x: np.ndarray, filters: np.ndarray, stride: int) -> np.ndarray:
    """A 3x3 depthwise ``same`` convolution ([3, 3, C, 1] filters): nine multiply-adds."""
    out = np.zeros((-(-x.shape[0] // stride), -(-x.shape[1] // stride), x.shape[2]), np.float32)
    for tap, weight in zip(_taps(x, 3, stride), filters.reshape(9, -1), strict=True):
        out += tap * weight
    return out


def _relu6(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0, 6, out=x)


class FaceApiSsd:
    """The network with its weights (``read_tfjs_weights``); ``detect`` finds faces in a BGR
    frame, boxes ``x1, y1, x2, y2, score`` in frame pixels."""

    def __init__(self, tensors: dict[str, np.ndarray]):
        self.t = tensors
        anchors = tensors["Output/extra_dim"][0]  # (5118, 4): ymin, xmin, ymax, xmax
        self.anchor_size = anchors[:, 2:] - anchors[:, :2]
        self.anchor_centre = anchors[:, :2] + self.anchor_size / 2

    def _pointwise(self, prefix: str, index: int, x: np.ndarray, stride: int) -> np.ndarray:
        name = f"{prefix}/Conv2d_{index}_pointwise"
        weights = self.t[f"{name}/weights"]
        return _relu6(_conv(x, weights, self.t[f"{name}/convolution_bn_offset"], stride))

    def _pair(self, index: int, x: np.ndarray) -> np.ndarray:
        name = f"MobilenetV1/Conv2d_{index}_depthwise"
        stride = 2 if index in STRIDE_2_PAIRS else 1
        x = _depthwise(x, self.t[f"{name}/depthwise_weights"], stride)
        scale = self.t[f"{name}/BatchNorm/gamma"] / np.sqrt(
            self.t[f"{name}/BatchNorm/moving_variance"] + BATCH_NORM_EPSILON
        )
        shift = self.t[f"{name}/BatchNorm/beta"] - self.t[f"{name}/BatchNorm/moving_mean"] * scale
        return self._pointwise("MobilenetV1", index, _relu6(x * scale + shift), 1)

    def forward(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Decoded boxes (5118, 4: ymin, xmin, ymax, xmax relative to the input) and face
        scores of one 512 x 512 RGB image."""
        x = self._pointwise("MobilenetV1", 0, rgb.astype(np.float32) / 127.5 - 1, 2)
        maps = []
        for index in range(1, 14):
            x = self._pair(index, x)
            if index in (11, 13):
                maps.append(x)
        for extra in range(4):
            x = self._pointwise("Prediction", 2 * extra, x, 1)
            x = self._pointwise("Prediction", 2 * extra + 1, x, 2)
            maps.append(x)
        codes, logits = [], []
        for index, feature in enumerate(maps):
            name = f"Prediction/BoxPredictor_{index}"
            for out, kind, width in ((codes, "BoxEncoding", 4), (logits, "Class", 3)):
                filters = self.t[f"{name}/{kind}Predictor/weights"]
                found = _conv(feature, filters, self.t[f"{name}/{kind}Predictor/biases"], 1)
                out.append(found.reshape(-1, width))
        code = np.concatenate(codes) / BOX_SCALES
        score = 1 / (1 + np.exp(-np.concatenate(logits)[:, 1]))
        centre = code[:, :2] * self.anchor_size + self.anchor_centre
        half = np.exp(code[:, 2:]) * self.anchor_size / 2
        return np.concatenate([centre - half, centre + half], axis=1), score

    def detect(self, frame: np.ndarray, min_score: float) -> np.ndarray:
        """Faces in the whole BGR ``frame`` at ``min_score``, as face-api's ``locateFaces``."""
        height, width = frame.shape[:2]
        side = max(height, width)
        square = np.zeros((side, side, 3), np.uint8)
        square[:height, :width] = frame
        resized = cv2.resize(square, (INPUT_SIDE, INPUT_SIDE), interpolation=cv2.INTER_LINEAR)
        boxes, scores = self.forward(cv2.cvtColor(resized, cv2.COLOR_BGR2RGB))
        keep = scores > min_score
        corners = boxes[keep] * side  # ymin, xmin, ymax, xmax in frame pixels, clipped below
        found = np.column_stack([corners[:, [1, 0, 3, 2]], scores[keep]]).astype(np.float32)
        found[:, [0, 2]] = found[:, [0, 2]].clip(0, width)
        found[:, [1, 3]] = found[:, [1, 3]].clip(0, height)
        return suppressed(found, min_score)

    def detect_tiled(self, frame: np.ndarray, min_score: float, tile_side: int) -> np.ndarray:
        """The whole frame, and tiles of ``tile_side`` px overlapping by half (when the frame is
        larger), each through the network; boxes of one face from several views merged.

        Boxes cut by a tile edge are kept: dropping them (the face lies whole in a neighbouring
        tile) lost a third of the labelled faces the tiles find, since the network's boxes are
        looser than the face and a face near a tile edge is cut in every tile it lies in."""
        found = [self.detect(frame, min_score)]
        height, width = frame.shape[:2]
        if tile_side and max(height, width) > tile_side:
            for y, x in tile_origins(height, width, tile_side):
                boxes = self.detect(frame[y : y + tile_side, x : x + tile_side], min_score)
                boxes[:, [0, 2]] += x
                boxes[:, [1, 3]] += y
                found.append(boxes)
        # across views only near-copies are merged: the best-scored view's box is often the
        # loosest, and merging at 0.5 would keep it over the well-fitting ones
        return suppressed(np.concatenate(found), min_score, VIEWS_IOU)


def tile_origins(height: int, width: int, side: int) -> list[tuple[int, int]]:
    """Top-left corners of tiles of ``side`` px at steps of half a tile, the last ones flush
    with the bottom and right edges, so every face up to half a tile lies wholly in one."""

    def starts(size: int) -> list[int]:
        if size <= side:
            return [0]
        step = side // 2
        return sorted({*range(0, size - side, step), size - side})

    return [(y, x) for y in starts(height) for x in starts(width)]
