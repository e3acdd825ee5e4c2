"""InstaVariety's per-frame OpenPose JSON tracks (``<tag>/<video_id>/<track>/*.json``) as one
vidmine track table per video."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from vidmine.formats import FormatError
from vidmine.formats.instavariety import instavariety_to_track_rows, read_instavariety_track
from vidmine.ids import file_name_part
from vidmine.imports.common import Refused, refuse, write_refused
from vidmine.tracks import write_tracks

log = logging.getLogger(__name__)


def _instavariety_videos(root: Path) -> dict[Path, list[Path]]:
    """video folder -> its track folders (folders holding per-frame ``*.json``), sorted.

    ``root`` may be the InstaVariety root (``<tag>/<video_id>/<track>/``), a tag folder, a
    video folder or a single track folder; the layout is fixed, so a track folder's parent is
    its video and the video's parent its tag.
    """
    track_dirs = {p.parent for p in root.rglob("*.json") if not p.name.startswith(".")}
    if root in track_dirs and len(track_dirs) > 1:
        track_dirs.discard(root)  # e.g. InstaVariety.json next to the tag folders
    videos: dict[Path, list[Path]] = {}
    for track in sorted(track_dirs):
        videos.setdefault(track.parent, []).append(track)
    return videos


def _import_video(
    video: Path, track_dirs: list[Path], out: Path, fps: float, refused: Refused
) -> Path | None:
    """One video's track table (None when every track, or the video, was refused)."""
    clip_id = file_name_part(f"{video.parent.name}_{video.name}")
    tracks = []
    for track in track_dirs:
        try:
            tracks.append(read_instavariety_track(track))
        except FormatError as err:
            refuse(refused, track, err)
    if not tracks:
        return None
    try:
        rows = instavariety_to_track_rows(tracks, clip_id, fps)
    except FormatError as err:
        refuse(refused, video, err)
        return None
    target = out / "tracks" / f"{clip_id}.parquet"
    write_tracks(rows, target)
    log.info("%s: %d tracks, %d rows", clip_id, len(tracks), len(rows))
    return target


def import_instavariety(
    video_dir: str | os.PathLike, out_dir: str | os.PathLike, fps: float
) -> dict[str, Any]:
    """InstaVariety per-frame OpenPose JSON tracks -> one track table per video.

    Written to ``tracks/<tag>_<video_id>.parquet`` (HMMR's own ``<tag>_<video_id>`` naming).
    A malformed track folder is refused (file, reason) and the video's other tracks are
    imported; a video whose tracks clash (one track id in two folders) is refused whole.
    """
    if not fps > 0:
        raise FormatError(f"import-instavariety: fps {fps} must be positive")
    root = Path(video_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    refused: Refused = []
    written = []
    for video, track_dirs in _instavariety_videos(root).items():
        target = _import_video(video, track_dirs, out, fps, refused)
        if target is not None:
            written.append(str(target))
    write_refused(out, refused)
    return {"imported": len(written), "tracks": written, "refused": refused}
