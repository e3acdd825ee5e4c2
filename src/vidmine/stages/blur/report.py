"""Report item of the blur: released frames with the most faces, the blurred boxes outlined.

Frames come from released (blurred, audited) clips only. Before/after pairs are not shown: the
"before" would be a private face, and the report is meant to be shared.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import pandas as pd

from vidmine.frames import fit_within
from vidmine.reporting import frame_at, tile


def blur_examples(
    released: pd.DataFrame, faces: pd.DataFrame, root: Path, out: str | Path, limit: int = 6
) -> None:
    """Released frames with the most faces, with the blurred face boxes outlined."""
    busiest = faces[faces.clip_id.isin(released.clip_id)].sort_values("n_faces", ascending=False)
    busiest = busiest[busiest.n_faces > 0].drop_duplicates("clip_id").head(limit)
    paths = dict(zip(released.clip_id, released.path, strict=True))
    images = []
    for row in busiest.itertuples():
        frame = frame_at(root / paths[row.clip_id], int(row.frame))
        if frame is None:
            continue
        for x1, y1, x2, y2, _ in row.boxes:
            cv2.rectangle(frame, (int(x1), int(y1)), (int(x2), int(y2)), (0, 200, 255), 2)
        images.append(
            (fit_within(frame, 320), f"{row.clip_id} frame {row.frame}: {row.n_faces} faces")
        )
    tile(images, "Released frames: blurred faces outlined", out)
