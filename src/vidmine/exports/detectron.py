"""The Detectron export: ``infer_video_d2.py``-style npz per released clip
(docs/formats/videopose3d.md, "Detectron npz"), the input of VideoPose3D's own
``prepare_data_2d_custom.py``."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from vidmine.exports.common import clip_tracks, dataset_root, released_person_tracks
from vidmine.formats.videopose3d import tracks_to_detectron, write_detectron_clip
from vidmine.io import atomic_dir

log = logging.getLogger(__name__)


def export_detectron(dataset_dir: str | os.PathLike, out_dir: str | os.PathLike) -> dict[str, int]:
    """Detectron-style npz per released clip with person tracks (docs/formats/videopose3d.md,
    "Detectron npz").

    Named like ``infer_video_d2.py``'s output, ``<video file name>.npz`` =
    ``{clip_id}.mp4.npz``, so ``prepare_data_2d_custom.py -i <out_dir>`` names each sequence
    after the released clip file (what ``run.py --viz-subject`` / ``--viz-video`` expect).
    Detected (not interpolated) person rows of every track of the clip are the per-frame
    detections; VideoPose3D keeps the best-scoring one per frame.
    """
    root = dataset_root(dataset_dir)
    counts = {"clips": 0, "frames": 0, "detections": 0}
    with atomic_dir(out_dir) as tmp:
        for clip, summary in released_person_tracks(root):
            table = clip_tracks(root, clip["clip_id"], summary)
            if not len(table):
                continue
            n_frames = int(clip["n_frames"])
            boxes, keypoints = tracks_to_detectron(
                table, n_frames, int(clip["width"]), int(clip["height"])
            )
            detections = sum(len(b) for b in boxes)
            name = f"{Path(str(clip['path'])).name}.npz"
            write_detectron_clip(tmp / name, boxes, keypoints, clip["width"], clip["height"])
            log.info("%s: %d frames, %d detections", name, n_frames, detections)
            counts["clips"] += 1
            counts["frames"] += n_frames
            counts["detections"] += detections
    return counts
