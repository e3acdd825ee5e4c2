"""Detect, pose and track stage: one track table per clip, from the private (unblurred) clip.

Detection reads the private clip because BlazePose finds people through their faces and blur
hurts face keypoints; only tables leave the private zone. Each clip is decoded once: frames at
``detect_fps`` are retrieved and batched into the backend, the others only grabbed, and the
sampled frames' detections go through ByteTrack as they come.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vidmine.frames import DecodeError, open_capture
from vidmine.layout import DatasetLayout
from vidmine.runner import ItemResult, ShardStage
from vidmine.stages.detect.detections import make_detector
from vidmine.stages.detect.tracking import (
    ClipTracker,
    FrameDetections,
    TrackingSettings,
    appearance_features,
    track_rows,
    track_summaries,
)
from vidmine.tracks import write_tracks

log = logging.getLogger(__name__)


def sampled_frames(n_frames: int, fps: float, detect_fps: float | None) -> list[int]:
    """Clip frame indices to detect on: every frame, or the nearest frame to each tick of
    ``detect_fps`` (TrackVerse resamples to 16 fps)."""
    if not detect_fps or detect_fps >= fps:
        return list(range(n_frames))
    count = int(np.ceil(n_frames / fps * detect_fps - 1e-9))
    picks = np.round(np.arange(count) * fps / detect_fps).astype(int)
    return sorted(set(int(p) for p in picks if p < n_frames))


def iter_sampled(path: Path, wanted: list[int]):
    """(index, RGB frame) for the wanted frames, in one decode pass (others grabbed only)."""
    capture = open_capture(path)
    wanted_set, last = set(wanted), max(wanted, default=-1)
    index, count = 0, 0
    try:
        while index <= last and capture.grab():
            if index in wanted_set:
                ok, frame = capture.retrieve()
                if ok:
                    count += 1
                    yield index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            index += 1
    finally:
        capture.release()
    if count == 0:
        raise DecodeError(f"no decodable frame in {path.name}")


def searched_with(detector, settings: dict[str, Any]) -> str:
    """One line naming the detector and the thresholds that decide who is found."""
    described = detector.describe()
    parts = [described.get("backend", settings["backend"]), str(described.get("model", ""))]
    options = settings.get(settings["backend"], {}) or {}
    parts += [f"{key}={value}" for key, value in sorted(options.items()) if key not in ("masks",)]
    if settings.get("detect_fps"):
        parts.append(f"detect_fps={settings['detect_fps']}")
    return " ".join(p for p in parts if p)


class DetectStage(ShardStage):
    """People (and objects, with a box backend) detected and tracked in every kept clip."""

    name = "detect"

    def __init__(self, layout: DatasetLayout, shard: str, settings: dict[str, Any]):
        super().__init__(layout, shard, settings)
        self.tracking = TrackingSettings.from_config(settings.get("tracking", {}))
        # Built here, before any clip: a missing package or weights stops the job at start.
        self.detector = make_detector(settings)
        self.searched_with = searched_with(self.detector, settings)
        self.timings = {"decode": 0.0, "model": 0.0, "track": 0.0, "frames": 0}

    def item_folder(self) -> Path:
        return self.layout.tracks(self.shard)

    def process(self, item: dict[str, Any]) -> ItemResult:
        path = self.layout.root / item["path"]
        fps = float(item["fps"])
        wanted = sampled_frames(int(item["n_frames"]), fps, self.settings.get("detect_fps"))
        tracker = ClipTracker(self.tracking, min(fps, self.settings.get("detect_fps") or fps))
        timing = dict.fromkeys(("decode", "model", "track"), 0.0)
        try:
            self._detect_and_track(path, wanted, tracker, timing)
        except DecodeError as exc:
            return ItemResult.failed(f"{item['id']}: {exc}")
        started = time.perf_counter()
        rows, kept = track_rows(tracker, item["id"], fps)
        summaries = track_summaries(rows, kept, item)
        target = self.folder / f"{item['id']}.parquet"
        write_tracks(rows, target)
        timing["track"] += time.perf_counter() - started
        for key, value in timing.items():
            self.timings[key] += value
        self.timings["frames"] += len(wanted)
        n_people = sum(1 for s in summaries if s["class_name"] == "person")
        fields = {
            "n_tracks": len(summaries),
            "n_person_tracks": n_people,
            "n_sampled": len(wanted),
            "n_person_detections": tracker.n_person_detections,
            "detector": self.searched_with,
        }
        seconds = {f"{part}_s": value for part, value in timing.items()}  # the timings table
        if n_people == 0:
            # "No people" and "a detector that sees nothing" must be told apart: say how hard
            # the clip was searched, with what, and whether anything was seen at all.
            fields["no_people"] = (
                f"no person track: {tracker.n_person_detections} person detections in "
                f"{len(wanted)} frames searched by {self.searched_with}"
            )
            log.info("%s: %s", item["id"], fields["no_people"])
        for summary in summaries:
            summary["shard"] = self.shard
            summary["path"] = str(target.relative_to(self.layout.root))
        return ItemResult.ok(
            [str(target.relative_to(self.layout.root))], fields, summaries, timings=seconds
        )

    def _detect_and_track(
        self, path: Path, wanted: list[int], tracker: ClipTracker, timing: dict[str, float]
    ) -> None:
        batch: list[tuple[int, np.ndarray]] = []
        frames = iter_sampled(path, wanted)
        while True:
            started = time.perf_counter()
            item = next(frames, None)
            timing["decode"] += time.perf_counter() - started
            if item is not None:
                batch.append(item)
            if batch and (item is None or len(batch) >= self.detector.batch_size):
                self._run_batch(batch, tracker, timing)
                batch = []
            if item is None:
                return

    def _run_batch(
        self, batch: list[tuple[int, np.ndarray]], tracker: ClipTracker, timing: dict[str, float]
    ) -> None:
        started = time.perf_counter()
        detections = self.detector.detect([frame for _, frame in batch])
        timing["model"] += time.perf_counter() - started
        started = time.perf_counter()
        for (index, frame), dets in zip(batch, detections, strict=True):
            features = appearance_features(frame, dets.boxes)
            tracker.update(FrameDetections(index, dets, features))
        timing["track"] += time.perf_counter() - started
