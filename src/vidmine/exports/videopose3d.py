"""The VideoPose3D export: ``data_2d_custom_<name>.npz``, one sequence per released person
track (docs/formats/videopose3d.md, "Custom 2D npz"), the file ``run.py -d custom -k <name>``
trains or infers on, and beside it one video per sequence whose frame i is the sequence's
row i, the ``--viz-video`` that ``run.py --render`` draws that sequence on."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from contextlib import nullcontext
from pathlib import Path

import pandas as pd

from vidmine.exports.common import clip_file, clip_tracks, dataset_root, released_person_tracks
from vidmine.formats.videopose3d import (
    DEFAULT_MIN_KEYPOINT_SCORE,
    CustomEntry,
    track_key,
    tracks_to_custom_entries,
    write_custom_2d,
)
from vidmine.frames import DecodeError, VideoWriter, pipe_frames
from vidmine.io import atomic_dir

log = logging.getLogger(__name__)
VIDEO_CRF = 17  # near-lossless H.264: the video is only drawn on


def export_videopose3d(
    dataset_dir: str | os.PathLike,
    out_npz: str | os.PathLike,
    dataset_name: str,
    videos_dir: str | os.PathLike | None = None,
    min_score: float = DEFAULT_MIN_KEYPOINT_SCORE,
) -> dict[str, int]:
    """``data_2d_custom_<dataset_name>.npz`` (docs/formats/videopose3d.md, "Custom 2D npz"): one
    sequence per person track.

    Sequences are named :func:`track_key` (``{clip_id}-t{NNN}``) and run from the track's first
    to its last clip frame, keypoints inside the frame and unsure ones filled in (``min_score``,
    :func:`vidmine.formats.videopose3d.trusted_keypoints`). VideoPose3D pairs keypoint row i
    with frame i of ``--viz-video``, so with ``videos_dir`` each sequence gets
    ``<videos_dir>/<name>.mp4``: the released clip's frames of that track, re-encoded, named in
    the sequence's ``video_metadata`` (with ``first_frame``, its first clip frame). A clip
    that cannot be decoded loses its sequences (logged), never the export. With no person
    track at all the file is still written, holding no sequence, so a dataset without people
    does not fail the workflow (VideoPose3D has nothing to train on).
    """
    root = dataset_root(dataset_dir)
    entries: list[CustomEntry] = []
    counts = {"tracks": 0, "clips": 0, "frames": 0, "skipped": 0, "videos": 0, "failed_clips": 0}
    with atomic_dir(videos_dir) if videos_dir is not None else nullcontext() as folder:
        for clip, summary in released_person_tracks(root):
            got = tracks_to_custom_entries(
                clip_tracks(root, clip["clip_id"], summary), clip, min_score
            )
            counts["skipped"] += _log_left_out(clip["clip_id"], summary["track_id"], got)
            if got and folder is not None:
                try:
                    counts["videos"] += write_track_videos(clip_file(root, clip), clip, got, folder)
                except (DecodeError, FileNotFoundError, RuntimeError) as err:
                    log.warning("%s: left out, its video cannot be cut: %s", clip["clip_id"], err)
                    counts["failed_clips"] += 1
                    counts["skipped"] += len(got)
                    continue
            counts["clips"] += bool(got)
            for entry in got:
                log.info(
                    "%s: %d frames from clip frame %d, %.0f%% of keypoints untrusted (filled in"
                    " or moved into the frame)",
                    entry.name,
                    len(entry.keypoints),
                    entry.first_frame,
                    100 * float((entry.scores < min_score).mean()),
                )
            entries.extend(got)
        target = write_custom_2d(out_npz, dataset_name, entries, allow_empty=True)
    if not entries:
        log.warning("%s: no released person track, wrote a file without sequences", target)
    counts["tracks"] = len(entries)
    counts["frames"] = sum(len(e.keypoints) for e in entries)
    return counts


def write_track_videos(
    clip_path: Path, clip: pd.Series, entries: list[CustomEntry], folder: Path
) -> int:
    """``<folder>/<entry>.mp4`` for each entry: the clip frames ``first_frame`` to its last.

    The clip is decoded once (ffmpeg, every frame in decode order: the frame numbers the
    detector used, and the order VideoPose3D's own ``read_video`` gives) and each frame is
    fed to the writers of the tracks that cover it. Sets each entry's ``video``.
    """
    spans = {e.name: (e.first_frame, e.first_frame + len(e.keypoints)) for e in entries}
    writers: dict[str, VideoWriter] = {}
    last = max(end for _, end in spans.values())
    fps = float(clip["fps"])
    try:
        for index, frame in enumerate(pipe_frames(clip_path)):
            if index >= last:
                break
            for name, (start, end) in spans.items():
                if start <= index < end:
                    if name not in writers:
                        height, width = frame.shape[:2]
                        path = folder / f"{name}.mp4"
                        writers[name] = VideoWriter(path, width, height, fps, crf=VIDEO_CRF)
                    writers[name].write(frame)
        for name, writer in writers.items():
            writer.close()
            want = spans[name][1] - spans[name][0]
            if writer.frames != want:
                raise DecodeError(f"{clip_path.name}: {writer.frames} of {want} frames for {name}")
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    missing = set(spans) - set(writers)
    if missing:
        raise DecodeError(f"{clip_path.name}: ends before the frames of {sorted(missing)}")
    for entry in entries:
        entry.video = f"{entry.name}.mp4"
    return len(writers)


def _log_left_out(clip_id: str, track_ids: Iterable[int], got: list[CustomEntry]) -> int:
    """Log each track of the clip that gave no sequence; return how many."""
    names = {e.name for e in got}
    left_out = 0
    for track_id in track_ids:
        key = track_key(clip_id, int(track_id))
        if key not in names:
            left_out += 1
            log.info("%s: left out (some joint has no keypoint in any frame)", key)
    return left_out
