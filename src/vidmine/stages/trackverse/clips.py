"""Which clip frames TrackVerse's visual metrics see of a track, and the crop of each.

TrackVerse computes motion and embeddings on the track's own clip (``tracks_mp4/<fn>``, written
by extract_tracks.py), read back by visual_metrics.py. vidmine writes no track clips; it takes
the same frames and the same crop windows straight from the scene clip, in one decode pass per
clip for all its tracks (docs/formats/trackverse.md, "Track clip extraction",
"TrackVerse's visual metrics"; docs/formats/trackverse.md says where this differs: no x264 round
trip, and PIL's resize is OpenCV's here):

* the track clip starts at the first detection and lasts ``min(last - first, 180 s)``, at the
  source rate: ``int(duration * fps)`` frames (extract_tracks.py, ``VideoReader``);
* its crop window per frame: the detector boxes Gaussian-smoothed (sigma ``int(0.66 s / mean
  gap)`` samples), grown to one aspect ratio (the mean w/h clamped to [2/3, 3/2]), kept inside the
  frame, linearly interpolated between detections, cut with integer bounds and resized to the
  mean window size (even) (``extract_track``);
* motion reads that clip at 16 fps (``VideoDB(frame_rate=16)``: frame ``round(j / 16 * rate)``
  of a clip written at ``rate = round(fps)``);
* embeddings read its keyframes (``skip_nonkey_frames``: x264 with ``gop_size = rate // 2``, a
  keyframe every ``rate // 2`` frames). TrackVerse's reader repeats each keyframe once for every
  frame since the previous keyframe, so its mean weights the first keyframe 1 and the others
  ``rate // 2``; ``key_weights`` keeps that weighting.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vidmine.frames import iter_frames

MAX_TRACK_SECONDS = 180.0  # extract_tracks.py: min(duration, 180)
MOTION_FPS = 16.0  # visual_metrics.compute_optical_flow: VideoDB(frame_rate=16)
SMOOTH_SECONDS = 0.66  # extract_track: std = int(0.66 / mean timestamp gap)
MIN_ASPECT, MAX_ASPECT = 2 / 3, 3 / 2


@dataclass
class TrackFrames:
    """One record's view of its clip: the clip frames of its track clip, crop window per frame,
    and the positions (in the track clip) that motion and the embedding read."""

    fn: str
    clip_frames: np.ndarray  # (N,) clip frame of each track-clip frame
    windows: np.ndarray  # (N, 4) x, y, w, h crop window per track-clip frame
    out_size: tuple[int, int]  # (width, height) every crop is resized to
    motion_positions: list[int]
    key_positions: list[int]
    key_weights: list[float]
    crops: dict[int, np.ndarray] = field(default_factory=dict)  # position -> BGR crop

    def wanted(self) -> dict[int, list[int]]:
        """Clip frame -> the track-clip positions that need its crop."""
        out: dict[int, list[int]] = {}
        for position in sorted(set(self.motion_positions) | set(self.key_positions)):
            out.setdefault(int(self.clip_frames[position]), []).append(position)
        return out

    def motion_crops(self) -> list[np.ndarray]:
        return [self.crops[p] for p in self.motion_positions if p in self.crops]

    def key_crops(self) -> tuple[list[np.ndarray], list[float]]:
        pairs = zip(self.key_positions, self.key_weights, strict=True)
        kept = [(self.crops[p], w) for p, w in pairs if p in self.crops]
        return [c for c, _ in kept], [w for _, w in kept]


def gaussian_smooth(values: np.ndarray, sigma: int) -> np.ndarray:
    """scipy.ndimage.gaussian_filter(values, sigma) (mode 'reflect', truncate 4), which
    extract_track uses; scipy is not in the video env, so OpenCV's kernel and numpy's
    symmetric padding (scipy's 'reflect') do the same."""
    if sigma <= 0:
        return values.astype(np.float64)
    radius = int(4.0 * sigma + 0.5)
    kernel = cv2.getGaussianKernel(2 * radius + 1, sigma, cv2.CV_64F).reshape(-1)
    padded = np.pad(values.astype(np.float64), radius, mode="symmetric")
    return np.convolve(padded, kernel, mode="valid")


def crop_windows(
    ts: np.ndarray, boxes: np.ndarray, frame_hw: tuple[int, int]
) -> tuple[np.ndarray, tuple[int, int]]:
    """extract_track's windows at the detections: smoothed, one aspect ratio, inside the
    frame; and the output size (mean w, mean h, each floored to even)."""
    frame_h, frame_w = frame_hw
    gaps = np.diff(ts)
    sigma = int(SMOOTH_SECONDS / gaps.mean()) if len(gaps) and gaps.mean() > 0 else 0
    x, y, w, h = (gaussian_smooth(column, sigma) for column in boxes.T)
    cx, cy, aspect = x + w / 2, y + h / 2, w / h
    target = float(np.clip(aspect.mean(), MIN_ASPECT, MAX_ASPECT))
    h = np.where(aspect > target, w / target, h)
    w = np.where(aspect < target, h * target, w)
    too_tall, too_wide = h > frame_h, w > frame_w
    h, w = np.where(too_tall, frame_h, h), np.where(too_tall, frame_h * target, w)
    w, h = np.where(too_wide, frame_w, w), np.where(too_wide, frame_w / target, h)
    y = np.clip(cy - h / 2, 0, frame_h - h)
    x = np.clip(cx - w / 2, 0, frame_w - w)
    out_size = (int(w.mean()) // 2 * 2, int(h.mean()) // 2 * 2)
    return np.stack([x, y, w, h], axis=1), out_size


def interpolate_windows(ts: np.ndarray, windows: np.ndarray, times: np.ndarray) -> np.ndarray:
    """extract_track's per-frame window: linear between the bracketing detections, the first
    (last) window before (after) them."""
    return np.stack([np.interp(times, ts, windows[:, k]) for k in range(4)], axis=1)


def track_frames(record: dict[str, Any], clip: dict[str, Any]) -> TrackFrames | None:
    """The frames and windows of a record in its clip, or None when its span holds no frame."""
    fps, start = float(clip["fps"]), float(clip["start_time"])
    ts = np.asarray(record["track_ts"], np.float64)
    boxes = np.asarray(record["track_bbox"], np.float64).reshape(-1, 4)
    duration = min(float(ts[-1] - ts[0]), MAX_TRACK_SECONDS)
    n = min(int(duration * fps), int(clip["n_frames"]) - int(round((ts[0] - start) * fps)))
    if n <= 0:
        return None
    first = int(round((ts[0] - start) * fps))
    clip_frames = first + np.arange(n)
    windows, out_size = crop_windows(ts, boxes, (int(clip["height"]), int(clip["width"])))
    if min(out_size) < 2:
        return None
    per_frame = interpolate_windows(ts, windows, start + clip_frames / fps)
    rate = max(int(round(fps)), 1)
    n_motion = int(n / rate * MOTION_FPS)
    motion = [min(int(round(j / MOTION_FPS * rate)), n - 1) for j in range(n_motion)]
    gop = max(rate // 2, 1)
    keys = list(range(0, n, gop))
    weights = [1.0] + [float(gop)] * (len(keys) - 1)
    return TrackFrames(record["fn"], clip_frames, per_frame, out_size, motion, keys, weights)


def cut_crop(frame: np.ndarray, window: np.ndarray, out_size: tuple[int, int]) -> np.ndarray:
    """extract_crop_nearest: integer slice of the window, resized to ``out_size`` (PIL's
    default bicubic there, OpenCV's bicubic here)."""
    x, y, w, h = (int(v) for v in window)
    patch = frame[max(y, 0) : y + h, max(x, 0) : x + w]
    if patch.size == 0:
        patch = frame[:1, :1]
    return cv2.resize(patch, out_size, interpolation=cv2.INTER_CUBIC)


def collect_crops(path: str | Path, tracks: list[TrackFrames]) -> Iterator[TrackFrames]:
    """Decode the clip once and fill every track's crops at the frames it needs; yields the
    tracks (each as soon as its last frame has passed, so crops are held only while needed)."""
    wanted: dict[int, list[tuple[TrackFrames, int]]] = {}
    last_frame: dict[int, int] = {}
    for number, track in enumerate(tracks):
        for frame, positions in track.wanted().items():
            wanted.setdefault(frame, []).extend((track, p) for p in positions)
            last_frame[number] = max(last_frame.get(number, -1), frame)
    pending = dict(enumerate(tracks))
    last = max(wanted, default=-1)
    if last >= 0:
        for index, frame in enumerate(iter_frames(path)):
            for track, position in wanted.get(index, []):
                track.crops[position] = cut_crop(frame, track.windows[position], track.out_size)
            for number in [k for k, v in last_frame.items() if v == index]:
                yield pending.pop(number)
            if index >= last:
                break
    yield from pending.values()  # frames past the clip's end: whatever was decoded
