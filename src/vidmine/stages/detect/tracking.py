"""ByteTrack over one clip's detections, then the track table rows.

Linking uses ``trackers``' ByteTrack (supervision dropped its own in 0.31). vidmine adds what a
dataset needs around it: one tracker per class so a person's id never jumps to their bicycle,
a fresh tracker per clip so tracks never cross a scene cut, dropping boxes the tracker left
unmatched (id -1), a minimum track length, and VideoPose3D-style linear interpolation of the
frames between detections (detection may run at a lower rate than the clip).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import supervision as sv
from trackers import ByteTrackTracker

from vidmine.stages.detect.detections import Detections
from vidmine.tracks import COCO_CATEGORIES, PERSON_CLASS_ID, TRACK_COLUMNS, encode_mask_png

# ByteTrack's buffer counts frames of a 30 fps video (trackers' convention).
TRACKERS_BUFFER_FPS = 30.0


@dataclass
class TrackingSettings:
    """ByteTrack and track-cleaning parameters (config section ``detect.tracking``).

    Defaults follow TrackVerse's parse_tracks.py (docs/formats/trackverse.md,
    "Detection and tracking parameters"): detections above ``track_thresh`` are matched first, those
    between ``low_thresh`` and it second, a new track needs ``new_track_thresh``; a lost track is
    kept ``buffer_seconds`` (12 frames at 16 fps). TrackVerse's match threshold mixes IoU with
    appearance embeddings; with IoU alone vidmine uses ByteTrack's own default (cost 0.8, i.e. IoU
    >= 0.2).
    """

    track_thresh: float = 0.55
    new_track_thresh: float = 0.65
    low_thresh: float = 0.1
    match_iou: float = 0.2
    buffer_seconds: float = 0.75
    min_consecutive: int = 2
    min_track_seconds: float = 1.0
    max_gap_seconds: float = 0.5

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> TrackingSettings:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in section.items() if k in known})


@dataclass
class FrameDetections:
    """Detections of one sampled frame, with that frame's index in the clip."""

    frame: int
    detections: Detections
    features: np.ndarray | None = None  # (N, D) appearance features, one per box


class ClipTracker:
    """Online tracking of one clip: feed sampled frames in order, then ``rows()``."""

    def __init__(self, settings: TrackingSettings, detect_fps: float):
        self.settings = settings
        self.detect_fps = detect_fps
        self.trackers: dict[int, ByteTrackTracker] = {}
        self.observations: list[dict[str, Any]] = []
        self.n_person_detections = 0  # before tracking: tells "nobody" from "never confirmed"

    def _tracker(self, class_id: int) -> ByteTrackTracker:
        if class_id not in self.trackers:
            s = self.settings
            self.trackers[class_id] = ByteTrackTracker(
                lost_track_buffer=max(0, round(s.buffer_seconds * TRACKERS_BUFFER_FPS)),
                frame_rate=self.detect_fps,
                track_activation_threshold=s.new_track_thresh,
                minimum_consecutive_frames=s.min_consecutive,
                minimum_iou_threshold=s.match_iou,
                high_conf_det_threshold=s.track_thresh,
            )
        return self.trackers[class_id]

    def update(self, item: FrameDetections) -> None:
        dets = item.detections
        keep = dets.scores > self.settings.low_thresh
        self.n_person_detections += int(np.sum(keep & (dets.class_ids == PERSON_CLASS_ID)))
        # Every class's tracker sees every sampled frame (empty ones too), so lost tracks age.
        for class_id in set(self.trackers) | set(dets.class_ids[keep].tolist()):
            index = np.flatnonzero(keep & (dets.class_ids == class_id))
            tracked = self._tracker(class_id).update(
                sv.Detections(
                    xyxy=dets.boxes[index].reshape(-1, 4).astype(np.float32),
                    confidence=dets.scores[index].astype(np.float32),
                    class_id=np.full(len(index), class_id),
                    data={"det_index": index},
                )
            )
            if len(tracked) == 0:
                continue
            for tracker_id, det_index in zip(
                tracked.tracker_id, tracked.data["det_index"], strict=True
            ):
                if tracker_id < 0:
                    continue  # not (yet) a confirmed track: dropped, as ByteTrack reports it
                self.observations.append(
                    {
                        "key": (class_id, int(tracker_id)),
                        "frame": item.frame,
                        "det": int(det_index),
                        "detections": dets,
                        "feature": None if item.features is None else item.features[det_index],
                    }
                )

    def tracks(self, fps: float) -> list[list[dict[str, Any]]]:
        """Confirmed tracks long enough to keep, in order of first appearance."""
        by_key: dict[tuple[int, int], list[dict[str, Any]]] = {}
        for obs in self.observations:
            by_key.setdefault(obs["key"], []).append(obs)
        tracks = sorted(by_key.values(), key=lambda t: (t[0]["frame"], t[0]["key"]))
        min_frames = self.settings.min_track_seconds * fps
        return [t for t in tracks if t[-1]["frame"] - t[0]["frame"] + 1 >= min_frames]


def encode_mask(mask: np.ndarray, box: np.ndarray) -> bytes | None:
    """The mask inside the integer box [floor(x1), floor(y1), ceil(x2), ceil(y2)) as a 1-bit
    PNG (what VPD stores, base64-encoded, in mask.json.gz); ``tracks.decode_mask_png`` reads
    it back."""
    x1, y1 = int(np.floor(box[0])), int(np.floor(box[1]))
    x2, y2 = int(np.ceil(box[2])), int(np.ceil(box[3]))
    patch = mask[max(y1, 0) : y2, max(x1, 0) : x2]
    return encode_mask_png(patch) if patch.size else None


def _detected_row(obs: dict[str, Any], clip_id: str, track_id: int, fps: float) -> dict:
    dets: Detections = obs["detections"]
    i = obs["det"]
    class_id = int(dets.class_ids[i])
    keypoints = dets.keypoints[i]
    mask = dets.masks[i]
    class_scores = None if dets.class_scores is None else dets.class_scores[i]
    return {
        "clip_id": clip_id,
        "frame": obs["frame"],
        "time": obs["frame"] / fps,
        "track_id": track_id,
        "class_id": class_id,
        "class_name": COCO_CATEGORIES[class_id] if class_id < len(COCO_CATEGORIES) else "",
        "x1": dets.boxes[i, 0],
        "y1": dets.boxes[i, 1],
        "x2": dets.boxes[i, 2],
        "y2": dets.boxes[i, 3],
        "score": dets.scores[i],
        "keypoints": None if np.isnan(keypoints).all() else keypoints.reshape(-1).tolist(),
        "interpolated": False,
        "mask_png": None if mask is None else encode_mask(mask, dets.boxes[i]),
        "class_scores": (
            None if class_scores is None or np.isnan(class_scores).all() else class_scores.tolist()
        ),
    }


def _interpolate(a: dict, b: dict, frame: int) -> dict:
    """A row between two detected rows of a track, linear in box and keypoints."""
    w = (frame - a["frame"]) / (b["frame"] - a["frame"])
    row = dict(a, frame=frame, interpolated=True, score=0.0, mask_png=None, class_scores=None)
    row["time"] = a["time"] + w * (b["time"] - a["time"])
    for key in ("x1", "y1", "x2", "y2"):
        row[key] = (1 - w) * a[key] + w * b[key]
    if a["keypoints"] is not None and b["keypoints"] is not None:
        ka, kb = np.asarray(a["keypoints"]), np.asarray(b["keypoints"])
        row["keypoints"] = ((1 - w) * ka + w * kb).tolist()
    return row


def track_rows(
    tracker: ClipTracker, clip_id: str, fps: float
) -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]]]:
    """Track table rows of a clip (TRACK_COLUMNS) and the observations of each kept track."""
    max_gap = max(1, round(tracker.settings.max_gap_seconds * fps))
    rows: list[dict[str, Any]] = []
    kept = tracker.tracks(fps)
    for track_id, observations in enumerate(kept, start=1):
        detected = [_detected_row(o, clip_id, track_id, fps) for o in observations]
        for a, b in zip(detected, detected[1:], strict=False):
            rows.append(a)
            if b["frame"] - a["frame"] <= max_gap:
                rows.extend(_interpolate(a, b, f) for f in range(a["frame"] + 1, b["frame"]))
        rows.append(detected[-1])
    return [{k: r[k] for k in TRACK_COLUMNS} for r in rows], kept


def no_keypoint_score(keypoints: Any) -> float:
    return float("nan") if keypoints is None else float(np.mean(keypoints[2::3]))


def track_summaries(
    rows: list[dict[str, Any]],
    kept: list[list[dict[str, Any]]],
    clip: dict[str, Any],
) -> list[dict[str, Any]]:
    """One row per track for the shard's track summary table."""
    width, height, fps = float(clip["width"]), float(clip["height"]), float(clip["fps"])
    by_track: dict[int, list[dict[str, Any]]] = {}
    for row in rows:  # rows come grouped by track, in frame order
        by_track.setdefault(row["track_id"], []).append(row)
    summaries = []
    for track_id, observations in enumerate(kept, start=1):
        mine = by_track[track_id]
        detected = [r for r in mine if not r["interpolated"]]
        boxes = np.array([[r["x1"], r["y1"], r["x2"], r["y2"]] for r in detected], np.float64)
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        heights = np.maximum(boxes[:, 3] - boxes[:, 1], 1.0)
        frames = np.array([r["frame"] for r in detected], np.float64)
        motion = 0.0
        if len(detected) > 1:
            # Box-centre speed in box heights per second: scale-free, so near and far people
            # compare (TrackVerse ranks by flow magnitude; this is its cheap stand-in).
            step = np.linalg.norm(np.diff(centres, axis=0), axis=1) / heights[1:]
            motion = float(np.sum(step) / ((frames[-1] - frames[0]) / fps))
        features = [o["feature"] for o in observations if o["feature"] is not None]
        embedding = None
        if features:
            mean = np.mean(features, axis=0)
            embedding = (mean / max(np.linalg.norm(mean), 1e-9)).astype(np.float32).tolist()
        kp_scores = [no_keypoint_score(r["keypoints"]) for r in detected]
        summaries.append(
            {
                "clip_id": clip["clip_id"],
                "video_id": clip["video_id"],
                "track_id": track_id,
                "class_id": mine[0]["class_id"],
                "class_name": mine[0]["class_name"],
                "start_frame": int(mine[0]["frame"]),
                "end_frame": int(mine[-1]["frame"]),
                "n_rows": len(mine),
                "n_detected": len(detected),
                "seconds": (mine[-1]["frame"] - mine[0]["frame"] + 1) / fps,
                "mean_score": float(np.mean([r["score"] for r in detected])),
                "mean_keypoint_score": float(np.nanmean(kp_scores)) if kp_scores else None,
                "mean_area": float(
                    np.mean((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
                    / (width * height)
                ),
                "motion": motion,
                "embedding": embedding,
            }
        )
    return summaries


def appearance_features(frame_rgb: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N, 64) hue-saturation histograms of the boxes, L1-normalised.

    The offline appearance embedding for curation's redundancy measures (TrackVerse uses
    ResNet-50 features, which need downloaded weights): cheap, and two tracks of the same
    person or object in similar light come out close.
    """
    hsv = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2HSV)
    height, width = frame_rgb.shape[:2]
    out = np.zeros((len(boxes), 64), np.float32)
    for i, box in enumerate(boxes):
        x1, y1 = max(int(box[0]), 0), max(int(box[1]), 0)
        x2, y2 = min(int(np.ceil(box[2])), width), min(int(np.ceil(box[3])), height)
        if x2 <= x1 or y2 <= y1:
            continue
        hist = cv2.calcHist([hsv[y1:y2, x1:x2]], [0, 1], None, [16, 4], [0, 180, 0, 256])
        out[i] = hist.reshape(-1) / max(hist.sum(), 1.0)
    return out
