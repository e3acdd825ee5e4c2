"""Square person crops around tracks, cut exactly as VPD cuts them (docs/formats/vpd.md, "Crops").

VPD's student network is trained on these crops (and on the optical flow between a crop and the
same rectangle one frame earlier), so the geometry must match VPD's ``extract_square_crops.py``
to the pixel, or crops made here would feed a VPD model images framed differently from its
training data. For a box ``(x1, y1, x2, y2)`` at frame ``t`` of a track:

1. union with the same track's box at frame ``t - 1``, when the track has one ("smoothing");
2. truncate the corners to integers;
3. make it square: the shorter side is re-centred on its integer midpoint ``(a + b) // 2`` to
   ``L = max(w, h)`` (``a = mid - L // 2``, ``b = mid + L // 2``, one less at ``a`` for odd L);
4. pad ``int(0.1 * L)`` on every side;
5. zero-fill (black) the parts of the window outside the frame;
6. resize bilinearly (``cv2.resize``'s default) to ``size x size`` when the side differs.

The previous crop uses the *same* window on frame ``t - gap`` of the clip (whether or not the
track has a box there); at the start of the clip, where that frame does not exist, VPD copies the
current crop, and so does vidmine. A one-frame track therefore still gets a previous crop (from
the clip's previous frame), as in VPD; ``min_track_frames`` can drop short tracks instead.

Masks come from the track table's ``mask_png`` (a 1-bit PNG covering the integer box
``[floor(x1), floor(y1), ceil(x2), ceil(y2))``), pasted into the frame, cut with the same window
and resized bilinearly as 0/255. VPD writes that grey-edged image and its loader counts every
non-zero pixel as person, so the stored bool mask is ``resized > 0``: what VPD training sees.

Where vidmine differs from VPD, it is on input VPD would crash on or mis-crop: boxes are clamped
to the frame first (VPD slices with negative indices), and non-finite or zero-area boxes are
skipped with a reason instead of raising. All crops are BGR, like every frame in vidmine, so
``cv2.imwrite`` writes VPD's ``<frame>.png`` as it is.

All tracks of a clip are cut in one decoding pass (``extract_clip_crops``), and each track is
stored as one compressed npz (``save_track_crops``), never as one PNG per frame.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from vidmine.formats.track_crops import TrackCrops
from vidmine.frames import iter_frames, pipe_frames
from vidmine.tracks import decode_mask_png

DEFAULT_SIZE = 128  # VPD's -d default
# VPD's PAD_FRAC (its PAD_PX = 25 is overridden: docs/formats/vpd.md, "Crops", step 5)
PAD_FRAC = 0.1

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in frame pixels
Window = tuple[int, int, int, int]  # x0, y0, x1, y1, end exclusive, square


# --------------------------------------------------------------------------------- geometry


def clamp_box(box: Box, width: int, height: int) -> Box | None:
    """``box`` clipped to the frame; None when a coordinate is not finite."""
    x1, y1, x2, y2 = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        return None
    return (
        min(max(x1, 0.0), width),
        min(max(y1, 0.0), height),
        min(max(x2, 0.0), width),
        min(max(y2, 0.0), height),
    )


def _square(a: int, b: int, length: int) -> tuple[int, int]:
    """Re-centre [a, b) on its integer midpoint to ``length`` (VPD's rounding)."""
    mid = (a + b) // 2
    a, b = mid - length // 2, mid + length // 2
    if b - a < length:
        a -= 1
    return a, b


def crop_window(box: Box, prev_box: Box | None = None, pad: float = PAD_FRAC) -> Window:
    """VPD's square crop window for ``box`` (unioned with ``prev_box`` when given).

    Raises ``ValueError`` for a box of zero area after truncation to integers (VPD would crash
    there; callers skip the frame with that reason).
    """
    x1, y1, x2, y2 = box
    if prev_box is not None:
        x1, y1 = min(x1, prev_box[0]), min(y1, prev_box[1])
        x2, y2 = max(x2, prev_box[2]), max(y2, prev_box[3])
    x1, y1, x2, y2 = int(x1), int(y1), int(x2), int(y2)  # truncation, as VPD's int()
    w, h = x2 - x1, y2 - y1
    if w <= 0 or h <= 0:
        raise ValueError("zero-area box")
    if h > w:
        x1, x2 = _square(x1, x2, h)
    elif w > h:
        y1, y2 = _square(y1, y2, w)
    side = max(w, h)
    p = int(side * pad)
    return x1 - p, y1 - p, x2 + p, y2 + p


def _paste_region(window: Window, width: int, height: int) -> tuple[slice, slice, slice, slice]:
    """(rows, cols) in the frame and (rows, cols) in the window of their overlap."""
    x0, y0, x1, y1 = window
    fx0, fy0, fx1, fy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    fx1, fy1 = max(fx1, fx0), max(fy1, fy0)
    return (
        slice(fy0, fy1),
        slice(fx0, fx1),
        slice(fy0 - y0, fy1 - y0),
        slice(fx0 - x0, fx1 - x0),
    )


def extract_crop(frame: np.ndarray, window: Window, size: int | None = DEFAULT_SIZE) -> np.ndarray:
    """The window's pixels, black outside the frame, resized bilinearly to ``size`` (None: no
    resize). Works for colour and single-channel images; always returns a new array."""
    x0, y0, x1, y1 = window
    height, width = frame.shape[:2]
    if x0 >= 0 and y0 >= 0 and x1 <= width and y1 <= height:
        crop = frame[y0:y1, x0:x1]
    else:
        crop = np.zeros((y1 - y0, x1 - x0, *frame.shape[2:]), frame.dtype)
        frows, fcols, wrows, wcols = _paste_region(window, width, height)
        crop[wrows, wcols] = frame[frows, fcols]
    if size is not None and crop.shape[:2] != (size, size):
        return cv2.resize(crop, (size, size), interpolation=cv2.INTER_LINEAR)
    return np.array(crop)


def mask_crop(
    mask_png: bytes | np.ndarray | None,
    box: Box,
    window: Window,
    size: int | None = DEFAULT_SIZE,
    frame_shape: tuple[int, int] | None = None,
) -> np.ndarray | None:
    """The track-table mask of ``box`` cut with ``window``: a bool (size, size) array.

    The mask's top-left pixel is frame pixel ``(floor(x1), floor(y1))`` of the row's own box.
    With ``frame_shape`` (h, w) the parts outside the frame are dropped, as VPD pastes the mask
    into a frame-sized image first. None when there is no decodable mask.
    """
    mask = mask_png if isinstance(mask_png, np.ndarray) else decode_mask_png(mask_png)
    if mask is None or not all(math.isfinite(float(v)) for v in box[:2]):
        return None
    mx, my = math.floor(box[0]), math.floor(box[1])
    x0, y0, x1, y1 = window
    canvas = np.zeros((y1 - y0, x1 - x0), np.uint8)
    # overlap of the mask's rectangle with the window (and the frame), in frame pixels
    lx0, ly0 = max(mx, x0), max(my, y0)
    lx1, ly1 = min(mx + mask.shape[1], x1), min(my + mask.shape[0], y1)
    if frame_shape is not None:
        lx0, ly0 = max(lx0, 0), max(ly0, 0)
        lx1, ly1 = min(lx1, frame_shape[1]), min(ly1, frame_shape[0])
    if lx1 > lx0 and ly1 > ly0:
        part = mask[ly0 - my : ly1 - my, lx0 - mx : lx1 - mx]
        canvas[ly0 - y0 : ly1 - y0, lx0 - x0 : lx1 - x0][part] = 255
    if size is not None and canvas.shape != (size, size):
        canvas = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_LINEAR)
    return canvas > 0


@dataclass
class _Plan:
    """Geometry of one track, computed before any pixel is read."""

    track_id: int
    frames: list[int]
    windows: list[Window]
    masks: list[tuple[Any, Box]]  # (mask_png, raw box) per planned frame
    skipped: list[tuple[int, str]]
    reason: str | None = None


def _as_box(row: Any) -> Box:
    return (float(row.x1), float(row.y1), float(row.x2), float(row.y2))


def plan_track(
    rows: pd.DataFrame,
    width: int,
    height: int,
    pad: float = PAD_FRAC,
    smooth: bool = True,
    min_track_frames: int = 1,
    track_id: int = 0,
) -> _Plan:
    """Windows for every usable row of one track; skipped rows keep their reason."""
    rows = rows.sort_values("frame", kind="stable")
    has_masks = "mask_png" in rows.columns
    if len(rows) < min_track_frames:
        n = len(rows)
        reason = f"track has {n} frame{'s' if n != 1 else ''} (fewer than {min_track_frames})"
        return _Plan(track_id, [], [], [], [], reason)
    clamped: dict[int, Box | None] = {}
    plan = _Plan(track_id, [], [], [], [])
    for row in rows.itertuples(index=False):
        frame = int(row.frame)
        if frame < 0:
            plan.skipped.append((frame, "negative frame index"))
            continue
        if frame in clamped:
            plan.skipped.append((frame, "duplicate row for this frame"))
            continue
        raw = _as_box(row)
        box = clamp_box(raw, width, height)
        clamped[frame] = None
        if box is None:
            plan.skipped.append((frame, "box is not finite"))
            continue
        if raw[2] <= raw[0] or raw[3] <= raw[1]:
            plan.skipped.append((frame, "zero-area box"))
            continue
        if box[2] <= box[0] or box[3] <= box[1]:
            plan.skipped.append((frame, "box outside the frame"))
            continue
        clamped[frame] = box
        prev = clamped.get(frame - 1) if smooth else None
        try:
            window = crop_window(box, prev, pad)
        except ValueError as exc:  # below one pixel after truncation
            plan.skipped.append((frame, str(exc)))
            continue
        plan.frames.append(frame)
        plan.windows.append(window)
        plan.masks.append((getattr(row, "mask_png", None) if has_masks else None, raw))
    if not plan.frames:
        plan.reason = "no usable box" if plan.skipped else "track has no rows"
    return plan


def _numbered(source: Any, decoder: str) -> Iterator[tuple[int, np.ndarray]]:
    """(frame index, BGR frame) pairs from a path, a {index: frame} mapping or an iterable."""
    if isinstance(source, str | Path):
        if decoder not in ("opencv", "pipe"):
            raise ValueError(f"unknown decoder {decoder!r} (opencv or pipe)")
        frames = pipe_frames(source) if decoder == "pipe" else iter_frames(source)
        try:
            yield from enumerate(frames)
        finally:
            frames.close()  # stop the decoder (an ffmpeg process for pipe) when we stop early
    elif isinstance(source, Mapping):
        for index in sorted(source):
            yield int(index), source[index]
    else:
        yield from enumerate(source)


def extract_clip_crops(
    source: str | Path | Mapping[int, np.ndarray] | Iterable[np.ndarray],
    tracks: pd.DataFrame,
    size: int = DEFAULT_SIZE,
    pad: float = PAD_FRAC,
    smooth: bool = True,
    prev_gap: int = 1,
    min_track_frames: int = 1,
    with_masks: bool = True,
    decoder: str = "opencv",
) -> dict[int, TrackCrops]:
    """Crops of every track in ``tracks`` (one clip's track table) from ONE pass over its frames.

    ``source`` is the clip's path (decoded with OpenCV, VPD's read order, or ``decoder="pipe"``
    for an ffmpeg process running ahead), a ``{frame index: frame}`` mapping, or an iterable of
    frames from frame 0. Decoding stops after the last frame any track needs; only ``prev_gap``
    earlier frames are kept, so memory holds the crops, never the clip. ``prev_gap`` is VPD's
    ``round(fps / target_fps)`` (1 without ``--target_fps``). Raises ``DecodeError`` for a path
    with no decodable frame; bad rows never raise, they are skipped with a reason.
    """
    if prev_gap < 1 or size < 1:
        raise ValueError(f"prev_gap and size must be >= 1 (got {prev_gap}, {size})")
    settings = {"size": size, "pad": pad, "smooth": smooth, "prev_gap": prev_gap}
    settings["min_track_frames"] = min_track_frames
    clip_id = str(tracks["clip_id"].iloc[0]) if "clip_id" in tracks and len(tracks) else ""
    ids = tracks["track_id"] if "track_id" in tracks else pd.Series(0, index=tracks.index)
    groups = {int(t): rows for t, rows in tracks.groupby(ids.to_numpy(), sort=True)}
    if not groups:
        return {}
    plans: dict[int, _Plan] = {}
    out: dict[int, dict[str, Any]] = {}
    wanted: dict[int, list[tuple[int, int]]] = {}  # frame -> [(track, row in plan)]
    history: dict[int, np.ndarray] = {}  # the last prev_gap frames, by index
    decoded = 0
    numbered = _numbered(source, decoder)
    for index, frame in numbered:
        if not plans:  # the geometry needs the frame size: plan on the first frame
            height, width = frame.shape[:2]
            for track_id, rows in groups.items():
                plan = plan_track(rows, width, height, pad, smooth, min_track_frames, track_id)
                plans[track_id] = plan
                n = len(plan.frames)
                out[track_id] = {
                    "crops": np.zeros((n, size, size, 3), np.uint8),
                    "prev": np.zeros((n, size, size, 3), np.uint8),
                    "prev_frames": np.array(plan.frames, np.int32),
                    "masks": np.zeros((n, size, size), bool) if with_masks else None,
                    "has_mask": np.zeros(n, bool),
                    "done": np.zeros(n, bool),
                }
                for i, f in enumerate(plan.frames):
                    wanted.setdefault(f, []).append((track_id, i))
            last = max(wanted, default=-1)
        decoded = index + 1
        for track_id, i in wanted.get(index, ()):
            plan, arrays = plans[track_id], out[track_id]
            window = plan.windows[i]
            crop = extract_crop(frame, window, size)
            arrays["crops"][i] = crop
            before = history.get(index - prev_gap)
            if before is not None:
                arrays["prev"][i] = extract_crop(before, window, size)
                arrays["prev_frames"][i] = index - prev_gap
            else:  # start of the clip: VPD copies the current crop
                arrays["prev"][i] = crop
            if with_masks:
                mask_png, raw = plan.masks[i]
                mask = mask_crop(mask_png, raw, window, size, frame.shape[:2])
                if mask is not None:
                    arrays["masks"][i] = mask
                    arrays["has_mask"][i] = True
            arrays["done"][i] = True
        if index >= last:
            break
        history[index] = frame
        for old in [k for k in history if k <= index - prev_gap]:
            del history[old]
    numbered.close()
    results: dict[int, TrackCrops] = {}
    for track_id in groups:
        if track_id not in plans:
            results[track_id] = TrackCrops.empty(
                track_id, size, "no frame decoded", clip_id=clip_id, settings=settings
            )
            continue
        plan, arrays = plans[track_id], out[track_id]
        done = arrays["done"]
        skipped = list(plan.skipped)
        skipped += [
            (f, f"frame not in the clip ({decoded} frames decoded)")
            for f, ok in zip(plan.frames, done, strict=True)
            if not ok
        ]
        skipped.sort(key=lambda item: item[0])
        if not done.any():
            reason = plan.reason or "no frame of the track was decoded"
            results[track_id] = TrackCrops.empty(
                track_id, size, reason, skipped, clip_id=clip_id, settings=settings
            )
            continue
        has_mask = arrays["has_mask"][done]
        results[track_id] = TrackCrops(
            track_id=track_id,
            size=size,
            frames=np.array(plan.frames, np.int32)[done],
            prev_frames=arrays["prev_frames"][done],
            windows=np.array(plan.windows, np.int32).reshape(-1, 4)[done],
            crops=arrays["crops"][done],
            prev_crops=arrays["prev"][done],
            masks=arrays["masks"][done] if with_masks and has_mask.any() else None,
            has_mask=has_mask,
            skipped=skipped,
            clip_id=clip_id,
            settings=settings,
        )
    return results


def extract_track_crops(
    frames: str | Path | Mapping[int, np.ndarray] | Iterable[np.ndarray],
    track_rows: pd.DataFrame,
    size: int = DEFAULT_SIZE,
    **options: Any,
) -> TrackCrops:
    """Crops of one track (rows of one ``track_id``); see ``extract_clip_crops`` for options.

    For several tracks of a clip call ``extract_clip_crops``, which decodes the clip once.
    """
    ids = set(track_rows["track_id"]) if "track_id" in track_rows else {0}
    if len(ids) > 1:
        raise ValueError(f"rows of {len(ids)} tracks given; use extract_clip_crops")
    track_id = int(next(iter(ids))) if ids else 0
    if not len(track_rows):
        return TrackCrops.empty(track_id, size, "track has no rows")
    return extract_clip_crops(frames, track_rows, size, **options)[track_id]
