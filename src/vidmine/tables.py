"""The dataset's tables: each one's pyarrow schema, defined once, and the one way to write and
read it.

A stage's per-shard row table (``tables/{name}/{shard}.parquet``) and the dataset files gathered
from them (``clips.parquet``, ``released_clips.parquet``, ``tracks.parquet``, ``crops.parquet``,
``download_report.parquet``) are all written by :meth:`Table.write` and read by
:meth:`Table.read`, so a column's name and type are spelled in this module only. Two tables keep
their own module because their logic is the format: the manifest (:mod:`vidmine.manifest`) and
the per-clip track rows (:mod:`vidmine.tracks`); the export index builds its typed schema in
:mod:`vidmine.exports.index`, from this module's tables.

A shard that produced no row writes a file without columns (as every earlier version did, so
existing results stay valid); :meth:`Table.read` gives such a file the table's columns, so no
reader special-cases it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from vidmine.io import write_table_atomic

TEXT = pa.large_string()  # what pandas' string dtype becomes: one type for every text column


@dataclass(frozen=True)
class Table:
    """One dataset table: its name, what a row is, and its schema."""

    name: str
    row: str  # what one row describes, for docs and errors
    schema: pa.Schema

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)

    def empty(self) -> pd.DataFrame:
        """No rows, every column with its type."""
        return self.schema.empty_table().to_pandas()

    def frame(self, rows: Iterable[dict[str, Any]] | pd.DataFrame) -> pd.DataFrame:
        """Rows (dicts or a frame) as a frame in the schema's column order."""
        frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
        missing = [c for c in self.columns if c not in frame.columns]
        extra = [c for c in frame.columns if c not in self.schema.names]
        if missing or extra:
            raise ValueError(f"{self.name} table: rows lack {missing}, have unknown {extra}")
        return frame[self.columns]

    def write(self, rows: Iterable[dict[str, Any]] | pd.DataFrame, path: str | os.PathLike) -> None:
        """Write atomically through the schema; no row at all gives a file without columns."""
        frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
        if frame.empty and not len(frame.columns):
            write_table_atomic(pa.Table.from_pandas(frame, preserve_index=False), path)
            return
        table = pa.Table.from_pandas(self.frame(frame), schema=self.schema, preserve_index=False)
        write_table_atomic(table, path)

    def read(self, path: str | os.PathLike) -> pd.DataFrame:
        """The table at ``path``; a missing file raises ``FileNotFoundError`` naming it."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: {self.name} table missing (build it first)")
        frame = pd.read_parquet(path)
        if not len(frame.columns):
            return self.empty()
        return frame

    def concat(self, paths: Sequence[str | os.PathLike]) -> pd.DataFrame:
        """Per-shard tables as one frame (the table's columns even when every shard is empty)."""
        frames = [f for f in (self.read(p) for p in paths) if len(f)]
        return pd.concat(frames, ignore_index=True) if frames else self.empty()


_CLIP_FIELDS = [
    ("clip_id", TEXT),
    ("video_id", TEXT),
    ("shard", TEXT),
    ("index", pa.int64()),  # the clip's number within its video
    ("start_frame", pa.int64()),  # [start_frame, end_frame) in the source video's frames
    ("end_frame", pa.int64()),
    ("n_frames", pa.int64()),
    ("start_time", pa.float64()),  # seconds in the source video
    ("end_time", pa.float64()),
    ("fps", pa.float64()),
    ("width", pa.int64()),
    ("height", pa.int64()),
    ("has_audio", pa.bool_()),
]
_PATH = ("path", TEXT)  # relative to the dataset folder
# Filter scores that the released clip table carries along (the scores table has them all).
_RELEASED_SCORE_FIELDS = [
    ("cartoon_score", pa.float64()),
    ("aesthetic_score", pa.float64()),  # NaN unless filter.aesthetic has a backend
    ("sharpness", pa.float64()),
    ("luma", pa.float64()),
    ("contrast", pa.float64()),
    ("motion", pa.float64()),
    ("flags", TEXT),  # every filter reason that applied, comma-separated
]

# The filter scores the released clip table carries along, by name.
RELEASED_SCORE_COLUMNS = [name for name, _ in _RELEASED_SCORE_FIELDS]

CLIPS = Table("clips", "a clip cut by the scene cut (private zone)", pa.schema(
    [*_CLIP_FIELDS, _PATH]
))  # fmt: skip
RELEASED = Table("released_clips", "a blurred clip that passed the audit", pa.schema(
    [*_CLIP_FIELDS, _PATH, *_RELEASED_SCORE_FIELDS, ("audit_action", TEXT)]
))  # fmt: skip
SCORES = Table("scores", "a clip the filter scored", pa.schema([
    ("clip_id", TEXT),
    ("video_id", TEXT),
    ("flat_fraction", pa.float64()),
    ("flat_edge", pa.float64()),
    ("saturated_fraction", pa.float64()),
    ("sharpness", pa.float64()),
    ("luma", pa.float64()),
    ("contrast", pa.float64()),
    ("motion", pa.float64()),
    ("short_side", pa.float64()),
    ("cartoon_score", pa.float64()),
    ("aesthetic_score", pa.float64()),
    ("n_sampled", pa.int64()),
    ("flags", TEXT),
    ("decision", TEXT),  # keep / drop
]))  # fmt: skip
FACES = Table("faces", "a frame of a blurred clip", pa.schema([
    ("frame", pa.int64()),
    ("n_faces", pa.int64()),  # the frame's own detections
    ("n_carried", pa.int64()),  # boxes carried from neighbouring frames (blur.carry_frames)
    ("max_score", pa.float64()),
    ("boxes", pa.list_(pa.list_(pa.float64()))),  # x1, y1, x2, y2, score per masked box
    ("clip_id", TEXT),
]))  # fmt: skip
AUDIT = Table("audit", "a blurred clip the audit scanned", pa.schema([
    ("clip_id", TEXT),
    ("residual_frames", pa.int64()),
    ("max_residual_score", pa.float64()),
    ("found_by", TEXT),  # auditor:frames pairs of the first scan, most frames first
    ("action", TEXT),  # clean / reblurred / dropped
    ("residual_frames_after", pa.int64()),
    ("found_by_after", TEXT),  # the same, for the last re-audit
]))  # fmt: skip
_TRACK_FIELDS = [
    ("clip_id", TEXT),
    ("video_id", TEXT),
    ("track_id", pa.int64()),
    ("class_id", pa.int64()),  # COCO category id
    ("class_name", TEXT),
    ("start_frame", pa.int64()),  # first and last clip frame of the track
    ("end_frame", pa.int64()),
    ("n_rows", pa.int64()),
    ("n_detected", pa.int64()),
    ("seconds", pa.float64()),
    ("mean_score", pa.float64()),
    ("mean_keypoint_score", pa.float64()),
    ("mean_area", pa.float64()),
    ("motion", pa.float64()),
    ("embedding", pa.list_(pa.float64())),
    ("shard", TEXT),
    ("path", TEXT),  # the clip's track-row file (vidmine.tracks)
]
TRACKS = Table("tracks", "a track of a clip (summary; rows in vidmine.tracks files)", pa.schema(
    _TRACK_FIELDS
))  # fmt: skip
TRACKVERSE_LINKS = Table("trackverse", "a track kept in a TrackVerse record", pa.schema([
    ("clip_id", TEXT),
    ("track_id", pa.int64()),
    ("fn", TEXT),  # the TrackVerse record's file name
]))  # fmt: skip
TRACK_TABLE = Table("track_table", "a track of the dataset, with its TrackVerse fn", pa.schema(
    [*_TRACK_FIELDS, ("fn", TEXT)]
))  # fmt: skip
_CROP_FIELDS = [
    ("clip_id", TEXT),
    ("track_id", pa.int64()),
    ("n_crops", pa.int64()),
    ("n_skipped", pa.int64()),
    ("has_mask", pa.bool_()),
    ("reason", TEXT),  # why a track got no crops
    ("path", TEXT),  # the track's crops npz (null without crops)
]
_FLOW_FIELDS = [
    ("n_pairs", pa.int64()),
    ("backend", TEXT),
    ("mean_magnitude", pa.float64()),
    ("q90_magnitude", pa.float64()),
]
CROPS = Table("crops", "a person track the crops stage cut", pa.schema(_CROP_FIELDS))
FLOW = Table("flow", "a track whose crops got optical flow", pa.schema(
    [("clip_id", TEXT), ("track_id", pa.int64()), *_FLOW_FIELDS, ("path", TEXT)]
))  # fmt: skip
CROP_TABLE = Table("crop_table", "a track of the dataset with its crop and flow files", pa.schema(
    [*_CROP_FIELDS, *_FLOW_FIELDS, ("flow_path", TEXT)]
))  # fmt: skip
DOWNLOAD_REPORT = Table("download_report", "a manifest video with its download outcome", pa.schema([
    ("video_id", TEXT),
    ("shard", TEXT),
    ("raw_id", TEXT),
    ("url", TEXT),
    ("split", TEXT),
    ("label", TEXT),
    ("status", TEXT),  # ok / failed / pending
    ("reason", TEXT),
    ("bytes", pa.int64()),  # download times: the shards' timings tables (not reproducible)
]))  # fmt: skip

# The per-shard row tables by the name the stage registry uses.
SHARD_TABLES: dict[str, Table] = {
    t.name: t for t in (CLIPS, SCORES, FACES, AUDIT, TRACKS, TRACKVERSE_LINKS, CROPS, FLOW)
}
