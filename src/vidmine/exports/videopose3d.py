"""The VideoPose3D export: ``data_2d_custom_<name>.npz``, one sequence per released person
track (FORMATS.md 1.3), the file ``run.py -d custom -k <name>`` trains or infers on."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

from vidmine.exports.common import clip_tracks, dataset_root, released_person_tracks
from vidmine.formats.videopose3d import (
    CustomEntry,
    track_key,
    tracks_to_custom_entries,
    write_custom_2d,
)

log = logging.getLogger(__name__)


def export_videopose3d(
    dataset_dir: str | os.PathLike, out_npz: str | os.PathLike, dataset_name: str
) -> dict[str, int]:
    """``data_2d_custom_<dataset_name>.npz`` (FORMATS.md 1.3): one sequence per person track.

    Sequences are named :func:`track_key` (``{clip_id}-t{NNN}``) and sized like their clip.
    ``out_npz`` is the file (its name must be the one ``run.py -k <name>`` looks for) or a
    folder. With no person track at all the file is still written, holding no sequence, so a
    dataset without people does not fail the workflow (VideoPose3D has nothing to train on).
    """
    root = dataset_root(dataset_dir)
    entries: list[CustomEntry] = []
    clips = skipped = 0
    for clip, summary in released_person_tracks(root):
        got = tracks_to_custom_entries(clip_tracks(root, clip["clip_id"], summary), clip)
        clips += bool(got)
        skipped += _log_left_out(clip["clip_id"], summary["track_id"].astype(int), got)
        for entry in got:
            log.info(
                "%s: %d frames (from clip frame %d)",
                entry.name,
                len(entry.keypoints),
                entry.first_frame,
            )
        entries.extend(got)
    target = write_custom_2d(out_npz, dataset_name, entries, allow_empty=True)
    if not entries:
        log.warning("%s: no released person track, wrote a file without sequences", target)
    frames = sum(len(e.keypoints) for e in entries)
    return {"tracks": len(entries), "clips": clips, "frames": frames, "skipped": skipped}


def _log_left_out(clip_id: str, track_ids: Iterable[int], got: list[CustomEntry]) -> int:
    """Log each track of the clip that gave no sequence; return how many."""
    names = {e.name for e in got}
    left_out = 0
    for track_id in track_ids:
        key = track_key(clip_id, track_id)
        if key not in names:
            left_out += 1
            log.info("%s: left out (some joint has no keypoint in any frame)", key)
    return left_out
