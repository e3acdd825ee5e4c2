"""vidmine's per-track crop file: one compressed npz per track (``crops/{shard}/{clip}/tNNN.npz``).

The crops stage writes it (:mod:`vidmine.stages.crops`); the flow stage, the VPD export and the
report read it. Arrays only, no pickle: ``np.load(allow_pickle=False)`` reads it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidmine.io import write_npz

CROPS_FORMAT = "vidmine-track-crops/1"


@dataclass
class TrackCrops:
    """One track's crops. Row ``i`` of every array belongs to clip frame ``frames[i]``.

    ``prev_frames[i]`` is the frame whose pixels ``prev_crops[i]`` hold (``frames[i] - gap``, or
    ``frames[i]`` itself where the clip has no such frame and the crop was copied). ``windows``
    are the square windows in frame pixels (x0, y0, x1, y1, end exclusive): a point ``p`` of
    the frame is at ``(p - (x0, y0)) * size / (x1 - x0)`` in the crop. ``masks`` is None when no
    row has a mask; otherwise rows without one (``has_mask`` False) are all False. ``skipped``
    lists ``(frame, reason)`` of rows that got no crop; ``reason`` says why a track has no crop
    at all (None when it has some).
    """

    track_id: int
    size: int
    frames: np.ndarray  # (T,) int32
    prev_frames: np.ndarray  # (T,) int32
    windows: np.ndarray  # (T, 4) int32
    crops: np.ndarray  # (T, S, S, 3) uint8, BGR
    prev_crops: np.ndarray  # (T, S, S, 3) uint8, BGR
    masks: np.ndarray | None = None  # (T, S, S) bool
    has_mask: np.ndarray | None = None  # (T,) bool
    skipped: list[tuple[int, str]] = field(default_factory=list)
    reason: str | None = None
    clip_id: str = ""
    settings: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frames)

    @classmethod
    def empty(
        cls,
        track_id: int,
        size: int,
        reason: str,
        skipped: list[tuple[int, str]] | None = None,
        clip_id: str = "",
        settings: dict[str, Any] | None = None,
    ) -> TrackCrops:
        """A track without any crop, and why."""
        return cls(
            track_id=int(track_id),
            size=size,
            frames=np.zeros(0, np.int32),
            prev_frames=np.zeros(0, np.int32),
            windows=np.zeros((0, 4), np.int32),
            crops=np.zeros((0, size, size, 3), np.uint8),
            prev_crops=np.zeros((0, size, size, 3), np.uint8),
            has_mask=np.zeros(0, bool),
            skipped=list(skipped or []),
            reason=reason,
            clip_id=clip_id,
            settings=dict(settings or {}),
        )


def _up_filter(images: np.ndarray) -> np.ndarray:
    """PNG's "Up" filter: every row minus the row above (mod 256). Deflate then stores crops in
    0.37 of their size instead of 0.54, and faster (measured on the bikes demo)."""
    out = images.copy()
    out[:, 1:] -= images[:, :-1]
    return out


def _up_unfilter(filtered: np.ndarray) -> np.ndarray:
    return np.cumsum(filtered, axis=1, dtype=np.uint8)  # wraps mod 256: the exact inverse


def save_track_crops(path: str | Path, crops: TrackCrops) -> None:
    """One compressed npz per track, written atomically; read it with ``load_track_crops``
    (``crops``/``prev_crops`` are stored Up-filtered, see ``_up_filter``)."""
    arrays: dict[str, np.ndarray] = {
        "frames": crops.frames.astype(np.int32),
        "prev_frames": crops.prev_frames.astype(np.int32),
        "windows": crops.windows.astype(np.int32).reshape(-1, 4),
        "crops": _up_filter(crops.crops),
        "prev_crops": _up_filter(crops.prev_crops),
        "has_mask": (
            np.zeros(len(crops), bool) if crops.has_mask is None else crops.has_mask.astype(bool)
        ),
        "skipped_frames": np.array([f for f, _ in crops.skipped], np.int64),
        "skipped_reasons": np.array([r for _, r in crops.skipped], dtype=str),
    }
    if crops.masks is not None:
        arrays["masks"] = np.packbits(crops.masks.astype(bool), axis=-1)
    meta = {
        "format": CROPS_FORMAT,
        "track_id": int(crops.track_id),
        "clip_id": crops.clip_id,
        "size": int(crops.size),
        "reason": crops.reason,
        "settings": crops.settings,
    }
    meta["filter"] = "up"
    arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    write_npz(path, arrays)


def load_track_crops(path: str | Path) -> TrackCrops:
    """Read what ``save_track_crops`` wrote (no pickle involved)."""
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        if meta.get("format") != CROPS_FORMAT:
            raise ValueError(f"{path}: not a vidmine track-crops file ({meta.get('format')})")
        size = int(meta["size"])
        masks = None
        if "masks" in data:
            masks = np.unpackbits(data["masks"], axis=-1, count=size).astype(bool)
        skipped = [
            (int(f), str(r))
            for f, r in zip(data["skipped_frames"], data["skipped_reasons"], strict=True)
        ]
        return TrackCrops(
            track_id=int(meta["track_id"]),
            size=size,
            frames=data["frames"],
            prev_frames=data["prev_frames"],
            windows=data["windows"],
            crops=_up_unfilter(data["crops"]),
            prev_crops=_up_unfilter(data["prev_crops"]),
            masks=masks,
            has_mask=data["has_mask"],
            skipped=skipped,
            reason=meta["reason"],
            clip_id=meta["clip_id"],
            settings=meta["settings"],
        )
