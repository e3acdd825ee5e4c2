"""Report items of detection and tracking: tracks drawn on released frames, track lengths.

Frames come from the released (blurred, audited) clips only: the report is a released product.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from vidmine.reporting import frame_at, plt, save_figure, tile
from vidmine.tracks import COCO_BONES, keypoint_array, read_tracks

COLOURS = [(0, 200, 255), (255, 120, 0), (60, 220, 60), (220, 60, 220), (255, 255, 0)]


def draw_label(image: np.ndarray, text: str, corner: tuple[int, int], colour) -> None:
    """White text on a dark box edged in the track's colour, just inside the box's top-left
    corner: readable on any footage and any track colour."""
    font, scale, thickness = cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1
    (width, height), baseline = cv2.getTextSize(text, font, scale, thickness)
    x, y = corner[0] + 2, corner[1] + 2
    cv2.rectangle(image, (x, y), (x + width + 4, y + height + baseline + 4), (30, 30, 30), -1)
    cv2.rectangle(image, (x, y), (x + width + 4, y + height + baseline + 4), colour, 1)
    cv2.putText(image, text, (x + 2, y + height + 2), font, scale, (255, 255, 255), thickness)


def draw_tracks(frame: np.ndarray, rows: pd.DataFrame, min_score: float = 0.3) -> np.ndarray:
    """Boxes, track ids and COCO skeletons of one frame's rows, drawn on a copy (BGR)."""
    out = frame.copy()
    keypoints = keypoint_array(rows)
    for (_, row), points in zip(rows.iterrows(), keypoints, strict=True):
        colour = COLOURS[int(row.track_id) % len(COLOURS)]
        p1, p2 = (int(row.x1), int(row.y1)), (int(row.x2), int(row.y2))
        cv2.rectangle(out, p1, p2, colour, 2)
        draw_label(out, f"{row.class_name} {int(row.track_id)}", p1, colour)
        if np.isnan(points).all():
            continue
        for a, b in COCO_BONES:
            if points[a, 2] >= min_score and points[b, 2] >= min_score:
                pa, pb = points[a, :2].astype(int), points[b, :2].astype(int)
                cv2.line(out, tuple(pa.tolist()), tuple(pb.tolist()), colour, 2)
        for x, y, score in points:
            if score >= min_score:
                cv2.circle(out, (int(x), int(y)), 3, (255, 255, 255), -1)
    return out


def track_examples(
    tracks: pd.DataFrame, released: pd.DataFrame, root: Path, out: str | Path, count: int = 6
) -> None:
    """The longest tracks of released clips, each drawn on its middle frame."""
    paths = dict(zip(released.clip_id, released.path, strict=True))
    chosen = tracks[tracks.clip_id.isin(paths)].sort_values("n_rows", ascending=False)
    images = []
    for summary in chosen.head(count).itertuples():
        rows = read_tracks(root / summary.path)
        middle = (summary.start_frame + summary.end_frame) // 2
        frame = frame_at(root / paths[summary.clip_id], middle)
        if frame is None:
            continue
        drawn = draw_tracks(frame, rows[rows.frame == middle])
        images.append((drawn, f"{summary.clip_id} frame {middle}"))
    tile(images, "Tracks on released (blurred) frames", out)


def track_length_histogram(tracks: pd.DataFrame, out: str | Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if len(tracks):
        for name, group in tracks.groupby("class_name"):
            ax.hist(group["seconds"], bins=20, alpha=0.7, label=f"{name} ({len(group)})")
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no tracks", ha="center", va="center")
    ax.set_xlabel("track length (s)")
    ax.set_ylabel("tracks")
    ax.set_title("Track lengths")
    save_figure(fig, out)
