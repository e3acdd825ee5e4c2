"""The VPD export: VPD's dataset folder (docs/formats/vpd.md, "Directory layout", "Pose directory",
"Crops", "Flow PNGs"), one "video" per released person track, with the pose files, the clip and the
crop / flow PNGs VPD's scripts would make."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd

from vidmine.exports.common import (
    clip_file,
    clip_tracks,
    dataset_root,
    read_crop_table,
    released_person_tracks,
)
from vidmine.formats.track_crops import load_track_crops
from vidmine.formats.track_flow import load_flow
from vidmine.formats.videopose3d import track_key
from vidmine.formats.vpd import tracks_to_vpd, write_vpd_crops, write_vpd_pose
from vidmine.io import atomic_dir, link_or_copy

log = logging.getLogger(__name__)


def _file_of(row: Any, column: str) -> str | None:
    """A crop-table row's file path in ``column``; None where it has none."""
    path = getattr(row, column, None) if row is not None else None
    if path is None or pd.isna(path) or not str(path):
        return None
    return str(path)


def _write_track_crops(root: Path, folder: Path, row: Any, rows: pd.DataFrame) -> dict[str, int]:
    """The track's crop folder from its crops (and flow, when it has one) files."""
    crops = load_track_crops(root / str(row.path))
    flow_path = _file_of(row, "flow_path")
    flow = load_flow(root / flow_path) if flow_path is not None else None
    scores = dict(zip(rows["frame"].astype(int), rows["score"].astype(float), strict=True))
    return write_vpd_crops(folder, crops, flow, scores)


def export_vpd(dataset_dir: str | os.PathLike, out_dir: str | os.PathLike) -> dict[str, int]:
    """VPD's dataset folder (docs/formats/vpd.md, "Directory layout", "Pose directory", "Crops",
    "Flow PNGs"), one "video" per released person track.

    VPD follows one athlete per video, so each track is its own video, named by its track key:

    * ``pose/<key>/boxes.json, coco_keypoints.json.gz, mask.json.gz`` (the track alone);
    * ``videos/<key>.mp4``: the released clip (hard link, else copy), whose decode indices are
      the pose files' frame numbers, so VPD's own ``extract_square_crops.py`` runs on it;
    * ``crops/<key>/<frame>.png, .prev.png, .mask.png, .flow.png`` from the crops and flow
      files (BGR PNGs as VPD writes them; flow encoded as VPD's RAFT script, clip 20 px).
    """
    root = dataset_root(dataset_dir)
    crop_table = read_crop_table(root)
    crop_rows = {(str(r.clip_id), int(r.track_id)): r for r in crop_table.itertuples(index=False)}
    counts = {"tracks": 0, "crop_tracks": 0, "crops": 0, "masks": 0, "flows": 0}
    with atomic_dir(out_dir) as tmp:
        for clip, summary in released_person_tracks(root):
            clip_id = str(clip["clip_id"])
            table = clip_tracks(root, clip_id, summary)
            video = clip_file(root, clip)  # after the first track: its copy in the export
            for track_id in summary["track_id"].astype(int):
                rows = table[table["track_id"] == track_id]
                key = track_key(clip_id, track_id)
                if not len(rows):
                    log.info("%s: no rows in the track table, left out", key)
                    continue
                size = (int(clip["width"]), int(clip["height"]))
                boxes, poses, masks = tracks_to_vpd(table, track_id, size)
                write_vpd_pose(tmp / "pose" / key, boxes, poses, masks)
                link_or_copy(video, tmp / "videos" / f"{key}.mp4")
                video = tmp / "videos" / f"{key}.mp4"  # one copy per clip, if copies at all
                counts["tracks"] += 1
                row = crop_rows.get((clip_id, int(track_id)))
                if _file_of(row, "path") is None:
                    log.info("%s: pose only (no crops: %s)", key, getattr(row, "reason", None))
                    continue
                got = _write_track_crops(root, tmp / "crops" / key, row, rows)
                counts["crop_tracks"] += 1
                for name, value in got.items():
                    counts[name] += value
                log.info(
                    "%s: %d poses, %d crops, %d masks, %d flows",
                    key,
                    len(poses),
                    got["crops"],
                    got["masks"],
                    got["flows"],
                )
    return counts
