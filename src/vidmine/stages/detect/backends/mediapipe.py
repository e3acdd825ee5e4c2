"""MediaPipe PoseLandmarker (BlazePose) from the tflite files inside the mediapipe wheel.

mediapipe 0.10.14 ships the BlazePose detector and full landmark models as bare tflite files
(for its legacy graphs), but the Tasks API, the one that finds several people per frame, loads a
``.task`` bundle: an uncompressed zip of the two models, each carrying image-normalisation
metadata. ``build_pose_bundle`` writes that bundle once, with MediaPipe's own metadata writer
and bundler, into the cache (``$VIDMINE_CACHE/mediapipe``); nothing is downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from vidmine.errors import BackendUnavailable
from vidmine.io import atomic_path
from vidmine.stages.detect.detections import Detections
from vidmine.tracks import PERSON_CLASS_ID

# BlazePose's 33 landmarks -> COCO-17 (same joint meaning; COCO has no hands, feet or mouth).
BLAZEPOSE_TO_COCO = [0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28]
# Input normalisation of the two models (BlazePose detector: [-1, 1]; landmark model: [0, 1]).
DETECTOR_NORM = (127.5, 127.5)
LANDMARK_NORM = (0.0, 255.0)
# Landmarks stop at the eyes and ears: the box grows by these fractions of the landmark extent
# (top: the skull above the eyes; sides and bottom: hands, feet and clothing).
BOX_MARGIN = {"top": 0.25, "side": 0.10, "bottom": 0.05}


def bundle_cache() -> Path:
    return Path(os.environ.get("VIDMINE_CACHE", Path.home() / ".cache" / "vidmine")) / "mediapipe"


def import_mediapipe():
    """The mediapipe module, or ``BackendUnavailable`` saying how to install it."""
    try:
        import mediapipe
        from mediapipe.tasks.python import vision  # noqa: F401  (the Tasks API must be there)
    except ImportError as exc:
        raise BackendUnavailable(
            "detect backend 'mediapipe': mediapipe is not installed "
            "(pip install mediapipe==0.10.14, or use workflow/envs/pose.yaml)"
        ) from exc
    return mediapipe


def wheel_models(variant: str = "full") -> tuple[Path, Path]:
    """Paths of the detector and landmark tflite files inside the installed mediapipe."""
    mediapipe = import_mediapipe()
    modules = Path(mediapipe.__file__).parent / "modules"
    detector = modules / "pose_detection" / "pose_detection.tflite"
    landmarks = modules / "pose_landmark" / f"pose_landmark_{variant}.tflite"
    for path in (detector, landmarks):
        if not path.is_file():
            raise BackendUnavailable(
                f"detect backend 'mediapipe': {path.name} is not in mediapipe "
                f"{mediapipe.__version__}; install mediapipe==0.10.14 (releases from 0.10.30 "
                "ship no models)"
            )
    return detector, landmarks


def _with_image_metadata(model: Path, name: str, norm: tuple[float, float]) -> bytes:
    from mediapipe.tasks.python.metadata.metadata_writers import metadata_writer

    writer = metadata_writer.MetadataWriter.create(bytearray(model.read_bytes()))
    writer.add_general_info(name)
    writer.add_image_input(norm_mean=[norm[0]], norm_std=[norm[1]])
    content, _ = writer.populate()
    return bytes(content)


def build_pose_bundle(variant: str = "full", cache: Path | None = None) -> Path:
    """The PoseLandmarker ``.task`` bundle built from the wheel's tflite files (cached)."""
    import mediapipe
    from mediapipe.tasks.python.metadata.metadata_writers import model_asset_bundle_utils

    detector, landmarks = wheel_models(variant)
    target = (cache or bundle_cache()) / f"pose_landmarker_{variant}-{mediapipe.__version__}.task"
    if target.is_file():
        return target
    models = {
        "pose_detector.tflite": _with_image_metadata(detector, "pose_detector", DETECTOR_NORM),
        "pose_landmarks_detector.tflite": _with_image_metadata(
            landmarks, "pose_landmarks_detector", LANDMARK_NORM
        ),
    }
    with atomic_path(target) as tmp:
        model_asset_bundle_utils.create_model_asset_bundle(models, str(tmp))
    return target


def landmarks_to_coco(landmarks: list[Any], width: int, height: int) -> np.ndarray:
    """(17, 3) COCO keypoints in pixels, with BlazePose's visibility as the score."""
    points = np.array([(lm.x, lm.y, lm.visibility) for lm in landmarks], np.float32)
    coco = points[BLAZEPOSE_TO_COCO].copy()
    coco[:, 0] *= width
    coco[:, 1] *= height
    return coco


def landmark_box(landmarks: list[Any], width: int, height: int) -> np.ndarray:
    """Person box from all 33 landmarks, grown by ``BOX_MARGIN`` and clipped to the frame."""
    xy = np.array([(lm.x * width, lm.y * height) for lm in landmarks], np.float32)
    x1, y1 = xy.min(axis=0)
    x2, y2 = xy.max(axis=0)
    w, h = x2 - x1, y2 - y1
    box = [
        x1 - BOX_MARGIN["side"] * w,
        y1 - BOX_MARGIN["top"] * h,
        x2 + BOX_MARGIN["side"] * w,
        y2 + BOX_MARGIN["bottom"] * h,
    ]
    return np.clip(np.array(box, np.float32), 0, [width, height, width, height])


def pose_score(coco: np.ndarray) -> float:
    """Detection score of a pose: mean visibility of its better-seen half of the joints.

    The Tasks API hides the detector's score (every returned pose passed
    ``min_pose_detection_confidence``); the mean over all 17 joints would punish people seen
    from the waist up (about 0.45 for carphone's driver against 0.85 for bikes' walker), so the
    best 9 joints speak for the person.
    """
    visibility = np.sort(coco[:, 2])[::-1]
    return float(visibility[:9].mean())


class MediaPipePoseDetector:
    """Several people per frame, COCO-17 keypoints and optional person masks."""

    name = "mediapipe"

    def __init__(self, settings: dict[str, Any]):
        options = settings.get("mediapipe", {})
        self.batch_size = 1  # the Tasks API takes one image per call
        self.variant = options.get("model", "full")
        self.masks = bool(options.get("masks", True))
        self.mask_threshold = float(options.get("mask_threshold", 0.5))
        mp = import_mediapipe()
        from mediapipe.tasks.python import BaseOptions, vision

        self._mp = mp
        bundle = build_pose_bundle(self.variant)
        self.landmarker = vision.PoseLandmarker.create_from_options(
            vision.PoseLandmarkerOptions(
                base_options=BaseOptions(model_asset_path=str(bundle)),
                running_mode=vision.RunningMode.IMAGE,
                num_poses=int(options.get("num_poses", 4)),
                min_pose_detection_confidence=float(options.get("min_detection_confidence", 0.5)),
                min_pose_presence_confidence=float(options.get("min_presence_confidence", 0.5)),
                output_segmentation_masks=self.masks,
            )
        )
        self.version = mp.__version__

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": f"blazepose_{self.variant}",
            "mediapipe": self.version,
        }

    def detect(self, frames: list[np.ndarray]) -> list[Detections]:
        return [self._detect_one(frame) for frame in frames]

    def _detect_one(self, frame: np.ndarray) -> Detections:
        height, width = frame.shape[:2]
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=frame)
        result = self.landmarker.detect(image)
        if not result.pose_landmarks:
            return Detections.empty()
        keypoints = np.stack([landmarks_to_coco(p, width, height) for p in result.pose_landmarks])
        boxes = np.stack([landmark_box(p, width, height) for p in result.pose_landmarks])
        masks: list[np.ndarray | None] = [None] * len(boxes)
        if self.masks and result.segmentation_masks:
            masks = [m.numpy_view() > self.mask_threshold for m in result.segmentation_masks]
        return Detections(
            boxes,
            np.array([pose_score(k) for k in keypoints], np.float32),
            np.full(len(boxes), PERSON_CLASS_ID, np.int32),
            keypoints,
            masks,
        )

    def close(self) -> None:
        self.landmarker.close()
