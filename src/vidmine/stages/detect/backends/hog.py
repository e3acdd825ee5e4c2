"""Small people in wide shots: OpenCV's HOG people detector in front of BlazePose, top-down.

BlazePose (the ``mediapipe`` backend) is built for one person near the camera; on a campus
camera with 60-120 px tall pedestrians it finds almost nobody (README, "Detection", has the
held-out figures). This backend keeps BlazePose for the people it does see on the whole frame
and adds the pedestrian detector whose weights ship inside OpenCV itself: Dalal-Triggs HOG with
OpenCV's default linear SVM (``cv2.HOGDescriptor_getDefaultPeopleDetector``), run on the frame
upscaled so that a ``min_person_height`` person fills HOG's 64x128 window. Each HOG person that
the full-frame pass missed is cropped with a margin, enlarged and given to BlazePose alone
(``num_poses=1``): pose estimated top-down, as keypoint R-CNN and VPD do, with the keypoints and
mask mapped back to the frame. A HOG person whose crop yields no pose keeps its box with NaN
keypoints, so the track is not broken by one hard frame.

No maintained offline library does this pairing; it is written here, and kept to the glue.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from vidmine.stages.detect.backends.mediapipe import (
    MediaPipePoseDetector,
    landmarks_to_coco,
    pose_score,
)
from vidmine.stages.detect.detections import Detections, no_keypoints
from vidmine.tracks import PERSON_CLASS_ID

HOG_WINDOW = (64, 128)
# HOG's 128 px window holds a person about 100 px tall (Dalal-Triggs train with a 16 px margin
# above and below); its boxes are trimmed by these fractions to the person's own extent (chosen
# on the tuning half of tests/real_footage/people.csv: recall 0.72 -> 0.85 at IoU >= 0.5).
WINDOW_PERSON_HEIGHT = 100
BOX_TRIM = {"side": 0.20, "top_bottom": 0.10}
# A HOG person overlapping a full-frame BlazePose person this much is the same person.
SAME_PERSON_IOU = 0.3
CROP_MARGIN = 0.25  # context around a HOG box given to BlazePose, as a fraction of its size


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) IoU of x1, y1, x2, y2 boxes."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


class HogPeopleDetector:
    """OpenCV HOG + linear SVM people boxes, with the settings of the ``hog`` section."""

    def __init__(self, options: dict[str, Any]):
        self.min_person_height = float(options.get("min_person_height", 50))
        self.hit_threshold = float(options.get("hit_threshold", 0.0))
        self.nms_iou = float(options.get("nms_iou", 0.4))
        self.scale_step = float(options.get("scale_step", 1.05))
        self.upscale = max(1.0, WINDOW_PERSON_HEIGHT / self.min_person_height)
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def __call__(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 4) person boxes in frame pixels and their (N,) SVM margins."""
        image = frame
        if self.upscale > 1.0:
            image = cv2.resize(frame, None, fx=self.upscale, fy=self.upscale)
        if min(image.shape[:2]) < HOG_WINDOW[0] or image.shape[0] < HOG_WINDOW[1]:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        rects, margins = self.hog.detectMultiScale(
            image,
            hitThreshold=self.hit_threshold,
            winStride=(8, 8),
            padding=(8, 8),
            scale=self.scale_step,
        )
        if len(rects) == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        margins = np.asarray(margins, np.float32).ravel()
        keep = np.asarray(
            cv2.dnn.NMSBoxes(
                [[float(v) for v in r] for r in rects],
                margins.tolist(),
                float(margins.min()),
                self.nms_iou,
            )
        ).ravel()
        rects = np.asarray(rects, np.float32)[keep] / self.upscale
        margins = margins[keep]
        x, y, w, h = rects.T
        dx, dy = BOX_TRIM["side"] * w, BOX_TRIM["top_bottom"] * h
        boxes = np.stack([x + dx, y + dy, x + w - dx, y + h - dy], axis=1)
        height, width = frame.shape[:2]
        boxes = np.clip(boxes, 0, [width, height, width, height]).astype(np.float32)
        tall_enough = boxes[:, 3] - boxes[:, 1] >= 0.8 * self.min_person_height
        return boxes[tall_enough], margins[tall_enough]


class HogBlazePoseDetector:
    """BlazePose on the whole frame, plus HOG people posed top-down on their own crops."""

    name = "hog_blazepose"

    def __init__(self, settings: dict[str, Any]):
        options = settings.get("hog_blazepose", {})
        self.people = HogPeopleDetector(options)
        self.crop_height = int(options.get("pose_crop_height", 256))
        self.batch_size = 1
        self.full_frame = MediaPipePoseDetector(settings)
        single = {**settings, "mediapipe": {**settings.get("mediapipe", {}), "num_poses": 1}}
        self.top_down = MediaPipePoseDetector(single)

    def describe(self) -> dict[str, Any]:
        return {
            **self.full_frame.describe(),
            "backend": self.name,
            "people_detector": f"opencv_hog_default_people_svm-{cv2.__version__}",
            "min_person_height": self.people.min_person_height,
            "hit_threshold": self.people.hit_threshold,
        }

    def detect(self, frames: list[np.ndarray]) -> list[Detections]:
        return [self._detect_one(frame) for frame in frames]

    def _detect_one(self, frame: np.ndarray) -> Detections:
        seen = self.full_frame.detect([frame])[0]
        boxes, margins = self.people(frame)
        if len(boxes) and len(seen):
            boxes_new = box_iou(boxes, seen.boxes).max(axis=1) < SAME_PERSON_IOU
            boxes, margins = boxes[boxes_new], margins[boxes_new]
        posed = [
            self._pose_in_box(frame, box, margin)
            for box, margin in zip(boxes, margins, strict=True)
        ]
        return Detections.concat([seen, *posed])

    def _pose_in_box(self, frame: np.ndarray, box: np.ndarray, margin: float) -> Detections:
        height, width = frame.shape[:2]
        x1, y1, x2, y2 = box
        mx, my = CROP_MARGIN * (x2 - x1), CROP_MARGIN * (y2 - y1)
        cx1, cy1 = int(max(x1 - mx, 0)), int(max(y1 - my, 0))
        cx2, cy2 = int(min(x2 + mx, width)), int(min(y2 + my, height))
        crop = frame[cy1:cy2, cx1:cx2]
        zoom = self.crop_height / max(crop.shape[0], 1)
        crop = np.ascontiguousarray(cv2.resize(crop, None, fx=zoom, fy=zoom))
        image = self._image(crop)
        result = self.top_down.landmarker.detect(image)
        # The person's score is the detector's own: HOG's SVM margin through a logistic, so a
        # box at the decision boundary scores 0.5 (a documented mapping, like BlazePose's).
        score = np.float32(1.0 / (1.0 + np.exp(-margin)))
        keypoints = no_keypoints(1)
        mask = None
        if result.pose_landmarks:
            coco = landmarks_to_coco(result.pose_landmarks[0], crop.shape[1], crop.shape[0])
            coco[:, 0] = coco[:, 0] / zoom + cx1
            coco[:, 1] = coco[:, 1] / zoom + cy1
            keypoints = coco[None]
            score = np.float32(max(score, pose_score(coco)))
            if self.top_down.masks and result.segmentation_masks:
                mask = self._paste_mask(result.segmentation_masks[0], (cx1, cy1, cx2, cy2), frame)
        return Detections(
            box[None].astype(np.float32),
            np.array([score], np.float32),
            np.array([PERSON_CLASS_ID], np.int32),
            keypoints,
            [mask],
        )

    def _image(self, rgb: np.ndarray):
        mp = self.top_down._mp
        return mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb)

    def _paste_mask(self, mask, crop_box: tuple[int, int, int, int], frame: np.ndarray):
        cx1, cy1, cx2, cy2 = crop_box
        small = cv2.resize(mask.numpy_view(), (cx2 - cx1, cy2 - cy1))
        full = np.zeros(frame.shape[:2], bool)
        full[cy1:cy2, cx1:cx2] = small > self.top_down.mask_threshold
        return full

    def close(self) -> None:
        self.full_frame.close()
        self.top_down.close()
