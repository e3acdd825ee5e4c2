"""The detector interface shared by all backends."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from vidmine.errors import BackendUnavailable
from vidmine.tracks import N_KEYPOINTS


@dataclass
class Detections:
    """Detections in one frame, in that frame's pixels.

    ``keypoints`` is (N, 17, 3) COCO-17 x, y, score with NaN rows for boxes without keypoints
    (objects); ``masks`` holds one boolean full-frame mask per box, or None where there is none;
    ``class_scores`` (N, 91) each box's class distribution over COCO category ids (0 =
    background), NaN rows for boxes without one, or None when no box has one.
    """

    boxes: np.ndarray  # (N, 4) float32 x1, y1, x2, y2
    scores: np.ndarray  # (N,) float32
    class_ids: np.ndarray  # (N,) int32 COCO category ids
    keypoints: np.ndarray  # (N, 17, 3) float32
    masks: list[np.ndarray | None] = field(default_factory=list)
    class_scores: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not self.masks:
            self.masks = [None] * len(self.boxes)

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def empty(cls) -> Detections:
        return cls(
            np.zeros((0, 4), np.float32),
            np.zeros(0, np.float32),
            np.zeros(0, np.int32),
            np.zeros((0, N_KEYPOINTS, 3), np.float32),
        )

    @classmethod
    def concat(cls, parts: list[Detections]) -> Detections:
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        return cls(
            np.concatenate([p.boxes for p in parts]).astype(np.float32),
            np.concatenate([p.scores for p in parts]).astype(np.float32),
            np.concatenate([p.class_ids for p in parts]).astype(np.int32),
            np.concatenate([p.keypoints for p in parts]).astype(np.float32),
            [m for p in parts for m in p.masks],
            _concat_class_scores(parts),
        )

    def select(self, keep: np.ndarray) -> Detections:
        index = np.flatnonzero(keep) if keep.dtype == bool else keep
        return Detections(
            self.boxes[index],
            self.scores[index],
            self.class_ids[index],
            self.keypoints[index],
            [self.masks[i] for i in index],
            None if self.class_scores is None else self.class_scores[index],
        )


def _concat_class_scores(parts: list[Detections]) -> np.ndarray | None:
    """The parts' class distributions, NaN rows for a part without; None if no part has one."""
    widths = {p.class_scores.shape[1] for p in parts if p.class_scores is not None}
    if not widths:
        return None
    if len(widths) > 1:
        raise ValueError(f"class distributions of different lengths {sorted(widths)}")
    width = widths.pop()
    return np.concatenate(
        [
            np.full((len(p), width), np.nan, np.float32)
            if p.class_scores is None
            else p.class_scores.astype(np.float32)
            for p in parts
        ]
    )


def no_keypoints(count: int) -> np.ndarray:
    return np.full((count, N_KEYPOINTS, 3), np.nan, np.float32)


class Detector(Protocol):
    """A backend: RGB frames in, one ``Detections`` per frame out."""

    name: str
    batch_size: int

    def detect(self, frames: list[np.ndarray]) -> list[Detections]: ...

    def describe(self) -> dict[str, Any]:
        """Model names and versions, for provenance in the index."""
        ...


BACKENDS = {
    "mediapipe": "vidmine.stages.detect.backends.mediapipe:MediaPipePoseDetector",
    "hog_blazepose": "vidmine.stages.detect.backends.hog:HogBlazePoseDetector",
    "torchvision": "vidmine.stages.detect.backends.torchvision:TorchvisionDetector",
    "detectron2": "vidmine.stages.detect.backends.detectron2:Detectron2Detector",
}


def make_detector(settings: dict[str, Any]) -> Detector:
    """The configured backend, ready to run; ``BackendUnavailable`` if it cannot be."""
    backend = settings["backend"]
    if backend not in BACKENDS:
        raise BackendUnavailable(
            f"unknown detect backend {backend!r} (known: {', '.join(BACKENDS)})"
        )
    module, name = BACKENDS[backend].split(":")
    try:
        cls = getattr(importlib.import_module(module), name)
    except ImportError as exc:
        raise BackendUnavailable(f"detect backend {backend!r}: {exc}") from exc
    return cls(settings)
