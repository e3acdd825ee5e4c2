"""The HMMR export: InstaVariety-style tfrecords (FORMATS.md 4.4), one ``tf.train.Example`` per
released person track, cropped from the released (blurred) clip.

A clip is decoded once for all its tracks, one frame at a time, so memory holds JPEG crops and
never a clip's frames; the per-frame examples are then merged per track.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vidmine.exports.common import (
    Lookup,
    clip_file,
    clip_tracks,
    dataset_root,
    read_manifest_table,
    released_person_tracks,
)
from vidmine.formats import FormatError, error_line
from vidmine.formats.hmmr import (
    hmmr_test_file_name,
    hmmr_train_file_name,
    track_to_hmmr_example,
    write_hmmr_tfrecord,
)
from vidmine.formats.videopose3d import track_key
from vidmine.frames import iter_frames
from vidmine.ids import file_name_part
from vidmine.io import atomic_dir
from vidmine.tracks import PERSON_CLASS_ID, boxes_array, keypoint_array

log = logging.getLogger(__name__)

# Manifest ``split`` values routed to HMMR's test folder; anything else (null too) is train.
TEST_SPLITS = frozenset({"test", "val", "validation"})
# Per-track features of an example that merging frames keeps from the first frame.
_TRACK_FEATURES = frozenset(
    {"meta/N", "meta/has_3d", "meta/has_3d_joints", "mosh/shape", "meta/time_pts"}
)


def hmmr_split(value: Any) -> str:
    """``test`` for manifest splits test / val (/ validation), else ``train`` (null too)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "train"
    return "test" if str(value).strip().lower() in TEST_SPLITS else "train"


def _shard_number(shard: str, position: int) -> int:
    """The NN of HMMR's train file name: the shard's trailing number, else its position."""
    match = re.search(r"(\d+)$", str(shard))
    return int(match.group(1)) if match else position


def merge_frame_examples(parts: list[dict[str, Any]], filenames: list[str]) -> dict[str, Any]:
    """One track example from one-frame examples (every per-frame feature concatenated).

    Building per frame lets a clip be decoded once while memory holds JPEGs, not frames. HMMR's
    crop of a frame depends on that frame alone, so the result equals one call on all frames.
    """
    n = len(parts)
    out: dict[str, Any] = {}
    for key, value in parts[0].items():
        if key in _TRACK_FEATURES:
            out[key] = value
        elif isinstance(value, list):
            out[key] = [item for part in parts for item in part[key]]
        else:
            out[key] = np.concatenate([np.asarray(part[key]) for part in parts])
    out["meta/N"] = np.array([n], np.int64)
    out["image/filenames"] = [name.encode() for name in filenames]
    if "meta/time_pts" in out:
        out["meta/time_pts"] = np.array([0, n], np.int64)  # HMMR: [start, end) in the track
    return out


@dataclass
class _TrackCrops:
    """One track's rows (one per frame) and the one-frame examples cut from them so far."""

    key: str  # the track's key (track_key), for the log
    rows: pd.DataFrame
    keypoints: np.ndarray
    boxes: np.ndarray
    parts: list[dict[str, Any]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    skipped: int = 0

    def crop(self, image: np.ndarray, frame: int, row: int, name: str, mode: str) -> None:
        """Add the one-frame example of row ``row`` (clip frame ``frame``, decoded as
        ``image``), or count it skipped when no crop can be made."""
        try:
            part = track_to_hmmr_example(
                [image],
                self.keypoints[row : row + 1],
                self.boxes[row : row + 1],
                mode=mode,
                filenames=[name],
            )
        except FormatError as err:
            log.info("%s frame %d: no crop (%s)", self.key, frame, error_line(err))
            self.skipped += 1
            return
        self.parts.append(part)
        self.names.append(name)


def _tracks_by_id(clip_id: str, tracks: pd.DataFrame) -> dict[int, _TrackCrops]:
    """Each track's rows sorted by frame, one row per frame, by track id."""
    out = {}
    for track_id, rows in tracks.groupby("track_id", sort=True):
        rows = rows.sort_values("frame", kind="stable").drop_duplicates("frame")
        key = track_key(clip_id, int(track_id))
        out[int(track_id)] = _TrackCrops(key, rows, keypoint_array(rows), boxes_array(rows))
    return out


def _rows_by_frame(tracks: dict[int, _TrackCrops]) -> dict[int, list[tuple[int, int]]]:
    """clip frame -> (track id, row position) of every track row at that frame."""
    wanted: dict[int, list[tuple[int, int]]] = {}
    for track_id, track in tracks.items():
        for i, frame in enumerate(track.rows["frame"].astype(int)):
            wanted.setdefault(frame, []).append((track_id, i))
    return wanted


def _crop_clip(clip_path: Path, clip_id: str, tracks: dict[int, _TrackCrops], mode: str) -> int:
    """Decode the clip up to its last wanted frame, cropping every track row; return how many
    frames were decoded."""
    wanted = _rows_by_frame(tracks)
    last = max(wanted)
    decoded = 0
    frames = iter_frames(clip_path)
    try:
        for index, image in enumerate(frames):
            decoded = index + 1
            for track_id, row in wanted.get(index, ()):
                tracks[track_id].crop(image, index, row, f"{clip_id}/{index:06d}.jpg", mode)
            if index >= last:
                break
    finally:
        frames.close()
    return decoded


def _track_example(track: _TrackCrops, decoded: int, mode: str) -> dict[str, Any] | None:
    """The track's merged example (None when no frame could be cropped), logging what was
    left out."""
    beyond = int((track.rows["frame"] >= decoded).sum())
    if beyond:
        log.info("%s: %d row(s) beyond the clip's %d decoded frames", track.key, beyond, decoded)
    if not track.parts:
        log.info("%s: no frame could be cropped, left out", track.key)
        return None
    example = merge_frame_examples(track.parts, track.names)
    log.info(
        "%s: %s, %d frames (%d skipped)",
        track.key,
        mode,
        len(track.parts),
        track.skipped + beyond,
    )
    return example


def hmmr_clip_examples(
    clip_path: Path, clip_id: str, tracks: pd.DataFrame, mode: str
) -> list[tuple[str, dict[str, Any]]]:
    """(track key, HMMR example) of every person track of one clip, decoding it once.

    Frames come from ``clip_path`` (the released, blurred clip). Image file names are
    ``{clip_id}/{frame:06d}.jpg`` (0-based clip frames; HMMR never reads them back). Rows
    the crop cannot be made for (no visible joint and a degenerate box) and rows beyond the
    decoded frames are left out and logged.
    """
    by_id = _tracks_by_id(clip_id, tracks)
    if not by_id:
        return []
    decoded = _crop_clip(clip_path, clip_id, by_id, mode)
    out = []
    for track in by_id.values():
        example = _track_example(track, decoded, mode)
        if example is not None:
            out.append((track.key, example))
    return out


def _shard_train_examples(
    root: Path,
    out: Path,
    videos: Lookup,
    clips: list[tuple[pd.Series, pd.DataFrame]],
    counts: dict[str, int],
) -> Iterator[dict[str, Any]]:
    """The train examples of one shard's clips, in clip then track order; each test track is
    written to its own file under ``out/test`` on the way (counted in ``counts``)."""
    for clip, summary in clips:
        clip_id, video_id = str(clip["clip_id"]), str(clip["video_id"])
        split = hmmr_split(videos.value(video_id, "split"))
        table = clip_tracks(root, clip_id, summary)
        table = table[table["class_id"] == PERSON_CLASS_ID]
        for key, example in hmmr_clip_examples(clip_file(root, clip), clip_id, table, split):
            counts["frames"] += int(example["meta/N"][0])
            if split == "train":
                counts["train_tracks"] += 1
                yield example
                continue
            label = videos.value(video_id, "label")
            tag = file_name_part(str(label) if label is not None else root.name)
            write_hmmr_tfrecord(out / "test" / hmmr_test_file_name(tag, key), [example])
            counts["test_tracks"] += 1
            counts["test_files"] += 1


def export_hmmr(dataset_dir: str | os.PathLike, out_dir: str | os.PathLike) -> dict[str, int]:
    """HMMR / InstaVariety tfrecords (FORMATS.md 4.4): one Example per released person track.

    Routing by the manifest's ``split`` of the track's video (:func:`hmmr_split`):

    * train: ``train/insta_variety_NN_copy00_hmr_noS5.ckpt-642561.tfrecord``, one file per
      dataset shard (NN = the shard's number), the track's frames normalised as HMMR's released
      train files; no ``image/phis`` (vidmine computes no HMR features).
    * test: ``test/<tag>_<track key>.tfrecord``, one track per file. ``<tag>`` is the video's
      manifest ``label`` (InstaVariety's download tag) or the dataset name; the track key in
      place of HMMR's video id keeps tracks of one video from overwriting each other (HMMR's
      own bug, FORMATS.md 4.5).
    """
    root = dataset_root(dataset_dir)
    videos = Lookup.by(read_manifest_table(root), "video_id")
    by_shard: dict[str, list[tuple[pd.Series, pd.DataFrame]]] = {}
    for clip, summary in released_person_tracks(root):
        by_shard.setdefault(str(clip["shard"]), []).append((clip, summary))
    counts = {"train_tracks": 0, "test_tracks": 0, "train_files": 0, "test_files": 0, "frames": 0}
    with atomic_dir(out_dir) as tmp:
        for position, shard in enumerate(sorted(by_shard)):
            examples = _shard_train_examples(root, tmp, videos, by_shard[shard], counts)
            path = tmp / "train" / hmmr_train_file_name(_shard_number(shard, position))
            if write_hmmr_tfrecord(path, examples):
                counts["train_files"] += 1
                log.info("%s: %s", shard, path.name)
            else:
                path.unlink()  # the shard's tracks were all test tracks
    return counts
