"""The HMMR export: InstaVariety-style tfrecords (docs/formats/hmmr.md, "TFRecord layout"), one
``tf.train.Example`` per released person track, cropped from the released (blurred) clip.

HMMR trains in one of two input modes, and a record serves one only (the same keys hold 224 crops
with [-1, 1] labels in one, 300 crops with pixel labels in the other), so the ``hmmr`` config
section picks: ``precomputed_phi: true`` writes what HMMR's default ``--precomputed_phi=True``
reads (224 crops, normalised labels, ``image/phis`` from HMR's encoder,
:mod:`vidmine.exports.hmr_encoder`); ``false`` (the default: it needs no weights, so the demo
runs offline) writes what ``--precomputed_phi=False`` reads (300 crops, pixel labels). Tracks
shorter than HMMR's 40-frame minimum are left out, with the reason logged and counted.

A clip is decoded once for all its tracks, one frame at a time; memory holds JPEG crops, and
pixels only of the crops waiting for the encoder (one batch).
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Callable, Iterator
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
    HMMR_MIN_FRAMES,
    LAYOUT_CROP,
    PHI_DIM,
    HmmrFrame,
    coco_to_hmmr,
    crop_hmmr_frame,
    hmmr_example,
    hmmr_layout,
    hmmr_test_file_name,
    hmmr_train_file_name,
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
Encoder = Callable[[np.ndarray], np.ndarray]  # (B, 224, 224, 3) BGR uint8 -> (B, 2048)


def hmmr_settings(settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``hmmr`` config section with the schema's defaults filled in (and checked), so the
    export called without a config (tests, the CLI without ``--settings``) behaves as the
    workflow's default."""
    from vidmine.config import ConfigError, load_schema, validate_config

    schema = load_schema()
    section = {**schema["$defs"]["hmmr"], "$defs": schema["$defs"]}
    try:
        return validate_config(dict(settings or {}), section)
    except ConfigError as err:
        raise FormatError(f"hmmr settings: {err}") from None


def hmmr_split(value: Any) -> str:
    """``test`` for manifest splits test / val (/ validation), else ``train`` (null too)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "train"
    return "test" if str(value).strip().lower() in TEST_SPLITS else "train"


def _shard_number(shard: str, position: int) -> int:
    """The NN of HMMR's train file name: the shard's trailing number, else its position."""
    match = re.search(r"(\d+)$", str(shard))
    return int(match.group(1)) if match else position


@dataclass
class _TrackCrops:
    """One track's rows (one per frame) and the frames cropped from them so far."""

    key: str  # the track's key (track_key), for the log
    rows: pd.DataFrame
    kp25: np.ndarray
    boxes: np.ndarray
    frames: list[HmmrFrame] = field(default_factory=list)
    jpegs: list[bytes] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    phis: list[np.ndarray | None] = field(default_factory=list)
    skipped: int = 0

    def crop(self, image: np.ndarray, frame: int, row: int, name: str, size: int) -> bool:
        """Crop row ``row`` (clip frame ``frame``, decoded as ``image``); False (logged and
        counted) when no crop can be made."""
        try:
            cropped = crop_hmmr_frame(image, self.kp25[row], self.boxes[row], size)
            jpeg = cropped.encode()
        except FormatError as err:
            log.info("%s frame %d: no crop (%s)", self.key, frame, error_line(err))
            self.skipped += 1
            return False
        self.frames.append(cropped)
        self.jpegs.append(jpeg)
        self.names.append(name)
        self.phis.append(None)
        return True


class _PhiBatches:
    """Crops waiting for the encoder, from any track of the clip; each batch's features go back
    to their frames, and the crops' pixels are then dropped."""

    def __init__(self, encoder: Encoder, batch_size: int):
        self.encoder, self.batch_size = encoder, max(int(batch_size), 1)
        self.waiting: list[tuple[_TrackCrops, int]] = []
        self.frames = 0

    def add(self, track: _TrackCrops) -> None:
        self.waiting.append((track, len(track.frames) - 1))
        if len(self.waiting) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        if not self.waiting:
            return
        crops = np.stack([track.frames[i].crop for track, i in self.waiting])
        phis = np.asarray(self.encoder(crops), np.float32)
        if phis.shape != (len(crops), PHI_DIM) or not np.isfinite(phis).all():
            raise FormatError(f"phi encoder: {phis.shape} output for {len(crops)} crops")
        for (track, i), phi in zip(self.waiting, phis, strict=True):
            track.phis[i] = phi
            track.frames[i].crop = None
        self.frames += len(self.waiting)
        self.waiting = []


def _tracks_by_id(
    clip_id: str, tracks: pd.DataFrame, min_frames: int, counts: dict[str, int]
) -> dict[int, _TrackCrops]:
    """Each track's rows sorted by frame, one row per frame, by track id; tracks with fewer
    rows than ``min_frames`` are left out here, before any decoding."""
    out = {}
    for track_id, rows in tracks.groupby("track_id", sort=True):
        rows = rows.sort_values("frame", kind="stable").drop_duplicates("frame")
        key = track_key(clip_id, int(track_id))
        if len(rows) < min_frames:
            _skip_short(key, len(rows), min_frames, counts)
            continue
        kp25 = coco_to_hmmr(keypoint_array(rows))
        out[int(track_id)] = _TrackCrops(key, rows, kp25, boxes_array(rows))
    return out


def _skip_short(key: str, frames: int, min_frames: int, counts: dict[str, int]) -> None:
    log.info(
        "%s: %d frames, fewer than %d (HMMR's MIN_NUM_FRAMES, clean_video), left out",
        key,
        frames,
        min_frames,
    )
    counts["skipped_short"] += 1


def _rows_by_frame(tracks: dict[int, _TrackCrops]) -> dict[int, list[tuple[int, int]]]:
    """clip frame -> (track id, row position) of every track row at that frame."""
    wanted: dict[int, list[tuple[int, int]]] = {}
    for track_id, track in tracks.items():
        for i, frame in enumerate(track.rows["frame"].astype(int)):
            wanted.setdefault(frame, []).append((track_id, i))
    return wanted


def _crop_clip(
    clip_path: Path,
    clip_id: str,
    tracks: dict[int, _TrackCrops],
    size: int,
    phis: _PhiBatches | None,
) -> int:
    """Decode the clip up to its last wanted frame, cropping every track row (and queueing the
    crops for the encoder); return how many frames were decoded."""
    wanted = _rows_by_frame(tracks)
    last = max(wanted)
    decoded = 0
    frames = iter_frames(clip_path)
    try:
        for index, image in enumerate(frames):
            decoded = index + 1
            for track_id, row in wanted.get(index, ()):
                track = tracks[track_id]
                if not track.crop(image, index, row, f"{clip_id}/{index:06d}.jpg", size):
                    continue
                if phis is not None:
                    phis.add(track)
                else:
                    track.frames[-1].crop = None  # encoded; the pixels are not needed
            if index >= last:
                break
    finally:
        frames.close()
    if phis is not None:
        phis.flush()
    return decoded


def _track_example(
    track: _TrackCrops, decoded: int, layout: str, min_frames: int, counts: dict[str, int]
) -> dict[str, Any] | None:
    """The track's example (None when too few frames could be cropped), logging what was left
    out."""
    beyond = int((track.rows["frame"] >= decoded).sum())
    if beyond:
        log.info("%s: %d row(s) beyond the clip's %d decoded frames", track.key, beyond, decoded)
    if not track.frames:
        log.info("%s: no frame could be cropped, left out", track.key)
        counts["skipped_empty"] += 1
        return None
    if len(track.frames) < min_frames:
        _skip_short(track.key, len(track.frames), min_frames, counts)
        return None
    phis = np.stack(track.phis) if layout == "phi" else None
    example = hmmr_example(
        track.frames, layout, filenames=track.names, jpegs=track.jpegs, phis=phis
    )
    log.info(
        "%s: %s, %d frames (%d skipped)",
        track.key,
        layout,
        len(track.frames),
        track.skipped + beyond,
    )
    return example


def hmmr_clip_examples(
    clip_path: Path,
    clip_id: str,
    tracks: pd.DataFrame,
    layout: str,
    *,
    encoder: Encoder | None = None,
    batch_size: int = 32,
    min_frames: int = HMMR_MIN_FRAMES,
    counts: dict[str, int] | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """(track key, HMMR example) of every person track of one clip, decoding it once.

    Frames come from ``clip_path`` (the released, blurred clip). Image file names are
    ``{clip_id}/{frame:06d}.jpg`` (0-based clip frames; HMMR never reads them back). Rows
    the crop cannot be made for (no visible joint and a degenerate box) and rows beyond the
    decoded frames are left out and logged; so are tracks of fewer than ``min_frames``
    frames. The ``phi`` layout needs ``encoder`` (features of the 224 BGR crops).
    """
    counts = counts if counts is not None else _new_counts()
    if layout == "phi" and encoder is None:
        raise FormatError(f"{clip_id}: the phi layout needs an encoder for image/phis")
    by_id = _tracks_by_id(clip_id, tracks, min_frames, counts)
    if not by_id:
        return []
    batches = _PhiBatches(encoder, batch_size) if layout == "phi" and encoder else None
    decoded = _crop_clip(clip_path, clip_id, by_id, LAYOUT_CROP[layout], batches)
    out = []
    for track in by_id.values():
        example = _track_example(track, decoded, layout, min_frames, counts)
        if example is not None:
            out.append((track.key, example))
    return out


def _new_counts() -> dict[str, int]:
    keys = ("train_tracks", "test_tracks", "train_files", "test_files", "frames")
    return dict.fromkeys((*keys, "phi_frames", "skipped_short", "skipped_empty"), 0)


@dataclass
class _Export:
    """What every clip of one export shares: the dataset, the output folder, the settings."""

    root: Path
    out: Path
    videos: Lookup
    settings: dict[str, Any]
    encoder: Encoder | None
    counts: dict[str, int]

    def clip_examples(self, clip: pd.Series, summary: pd.DataFrame, split: str) -> list:
        clip_id = str(clip["clip_id"])
        table = clip_tracks(self.root, clip_id, summary)
        table = table[table["class_id"] == PERSON_CLASS_ID]
        layout = hmmr_layout(split, bool(self.settings["precomputed_phi"]))
        return hmmr_clip_examples(
            clip_file(self.root, clip),
            clip_id,
            table,
            layout,
            encoder=self.encoder if layout == "phi" else None,
            batch_size=int(self.settings["phis"]["batch_size"]),
            min_frames=int(self.settings["min_track_frames"]),
            counts=self.counts,
        )

    def shard_train_examples(self, clips: list[tuple[pd.Series, pd.DataFrame]]) -> Iterator:
        """The train examples of one shard's clips, in clip then track order; each test track
        is written to its own file under ``out/test`` on the way."""
        for clip, summary in clips:
            video_id = str(clip["video_id"])
            split = hmmr_split(self.videos.value(video_id, "split"))
            for key, example in self.clip_examples(clip, summary, split):
                self.counts["frames"] += int(example["meta/N"][0])
                if split == "train":
                    self.counts["train_tracks"] += 1
                    self.counts["phi_frames"] += len(example.get("image/phis", ())) // PHI_DIM
                    yield example
                    continue
                label = self.videos.value(video_id, "label")
                tag = file_name_part(str(label) if label is not None else self.root.name)
                write_hmmr_tfrecord(self.out / "test" / hmmr_test_file_name(tag, key), [example])
                self.counts["test_tracks"] += 1
                self.counts["test_files"] += 1


def _phi_encoder(settings: dict[str, Any]) -> Encoder | None:
    """HMR's encoder when the settings ask for phis (weights resolved through the cache: a
    missing file fails here, before any clip is read), else None with the reason logged."""
    if not settings["precomputed_phi"]:
        log.info(
            "hmmr: precomputed_phi false: train records for HMMR's --precomputed_phi=False "
            "(300 x 300 crops, pixel labels, no image/phis); set hmmr.precomputed_phi: true "
            "and run `vidmine fetch-weights` for HMMR's default mode"
        )
        return None
    from vidmine.exports.hmr_encoder import HmrEncoder

    encoder = HmrEncoder.from_settings(settings["phis"])
    log.info("hmmr: image/phis from %s on %s", settings["phis"]["weights"], encoder.device)
    return encoder


def export_hmmr(
    dataset_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    settings: dict[str, Any] | None = None,
    encoder: Encoder | None = None,
) -> dict[str, int]:
    """HMMR / InstaVariety tfrecords (docs/formats/hmmr.md, "TFRecord layout"): one Example per
    released person track.

    ``settings``: the ``hmmr`` config section (schema defaults for what it leaves out).
    ``encoder`` replaces the one the settings would load (tests: random weights). Routing by
    the manifest's ``split`` of the track's video (:func:`hmmr_split`):

    * train: ``train/insta_variety_NN_copy00[_hmr_noS5.ckpt-642561].tfrecord``, one file per
      dataset shard (NN = the shard's number), in the layout ``precomputed_phi`` selects (the
      checkpoint suffix only with phis, as HMMR names them).
    * test: ``test/<tag>_<track key>.tfrecord``, one track per file. ``<tag>`` is the video's
      manifest ``label`` (InstaVariety's download tag) or the dataset name; the track key in
      place of HMMR's video id keeps tracks of one video from overwriting each other (HMMR's
      own bug, docs/formats/hmmr.md, "Where HMMR's doc and code disagree").

    Returns counts: tracks and files per split, frames, ``phi_frames`` (frames with features),
    ``skipped_short`` (tracks under ``min_track_frames``) and ``skipped_empty`` (no crop).
    """
    settings = hmmr_settings(settings)
    root = dataset_root(dataset_dir)
    videos = Lookup.by(read_manifest_table(root), "video_id")
    by_shard: dict[str, list[tuple[pd.Series, pd.DataFrame]]] = {}
    for clip, summary in released_person_tracks(root):
        by_shard.setdefault(str(clip["shard"]), []).append((clip, summary))
    if encoder is None and by_shard:
        encoder = _phi_encoder(settings)
    counts = _new_counts()
    model = str(settings["phis"]["checkpoint"]) if settings["precomputed_phi"] else None
    with atomic_dir(out_dir) as tmp:
        export = _Export(root, tmp, videos, settings, encoder, counts)
        for position, shard in enumerate(sorted(by_shard)):
            examples = export.shard_train_examples(by_shard[shard])
            name = hmmr_train_file_name(_shard_number(shard, position), model_name=model)
            path = tmp / "train" / name
            if write_hmmr_tfrecord(path, examples):
                counts["train_files"] += 1
                log.info("%s: %s", shard, path.name)
            else:
                path.unlink()  # the shard's tracks were all test tracks or too short
    return counts
