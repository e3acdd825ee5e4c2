"""What every export reads from ``results/{dataset}/``: the dataset tables, checked once, and the
released person tracks with their track rows and clip files.

Tables are read by their owners (:mod:`vidmine.tables`, :mod:`vidmine.manifest`); this module
only adds what an export needs on top: a one-line error naming the file when it is missing or
lacks a column an export uses. The ``*_USED`` tuples are those columns, one per table (a test
keeps each a subset of its table's columns).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from vidmine.formats import FormatError
from vidmine.layout import DatasetLayout
from vidmine.manifest import read_manifest
from vidmine.tables import CLIPS, CROP_TABLE, RELEASED, TRACK_TABLE
from vidmine.tracks import PERSON_CLASS_ID, read_tracks

log = logging.getLogger(__name__)

# The columns of each table that some export reads.
MANIFEST_USED = ("video_id", "url", "split")
CLIPS_USED = ("clip_id", "video_id", "shard", "start_time", "fps", "n_frames", "width", "height")
RELEASED_USED = (*CLIPS_USED, "path")
TRACKS_USED = (
    "clip_id",
    "video_id",
    "track_id",
    "class_id",
    "class_name",
    "start_frame",
    "end_frame",
    "path",
)
CROPS_USED = ("clip_id", "track_id", "path")


def layout_of(root: Path) -> DatasetLayout:
    """The layout of a dataset folder (where its files are: :mod:`vidmine.layout`)."""
    return DatasetLayout(root.parent, root.name)


def dataset_root(dataset_dir: str | os.PathLike) -> Path:
    """The dataset folder; ``FileNotFoundError`` naming it when there is none."""
    root = Path(dataset_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such dataset folder")
    return root


def read_checked(
    path: Path, read: Callable[[Path], pd.DataFrame], used: Sequence[str]
) -> pd.DataFrame:
    """``read(path)``, checked for the columns an export uses.

    A missing file raises ``FileNotFoundError`` whose one-line message names it; a table with
    rows that lacks a used column raises :class:`FormatError`. A table without rows (a gather
    of nothing) gets the used columns it lacks, so callers never special-case it.
    """
    if not path.exists():
        raise FileNotFoundError(f"{path}: input table missing (build it first)")
    frame = read(path)
    missing = [c for c in used if c not in frame.columns]
    if not len(frame):
        for column in missing:
            frame[column] = pd.Series(dtype=object)
        return frame
    if missing:
        raise FormatError(f"{path}: missing columns {missing}")
    return frame


def read_manifest_table(root: Path) -> pd.DataFrame:
    return read_checked(layout_of(root).manifest, read_manifest, MANIFEST_USED)


def read_clips(root: Path) -> pd.DataFrame:
    """Every clip, released or not (``clips.parquet``)."""
    return read_checked(layout_of(root).clip_table, CLIPS.read, CLIPS_USED)


def read_released(root: Path) -> pd.DataFrame:
    """The released clips (``released_clips.parquet``): the only pixels exports may use."""
    return read_checked(layout_of(root).released_table, RELEASED.read, RELEASED_USED)


def read_track_table(root: Path) -> pd.DataFrame:
    """One row per track of the dataset (``tracks.parquet``)."""
    return read_checked(layout_of(root).track_table, TRACK_TABLE.read, TRACKS_USED)


def read_crop_table(root: Path) -> pd.DataFrame:
    """One row per person track with its crop and flow files (``crops.parquet``)."""
    return read_checked(layout_of(root).crop_table, CROP_TABLE.read, CROPS_USED)


def none_if_missing(value: Any) -> Any:
    """``value``, or None where it is a missing scalar (None, NaN, NA): what a null cell holds."""
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    return value


@dataclass(frozen=True)
class Lookup:
    """A table's rows by their key (the index of ``rows``); an unknown key, an absent column
    and a missing value all read as None."""

    rows: pd.DataFrame

    @classmethod
    def by(cls, frame: pd.DataFrame, key: str) -> Lookup:
        """The first row of each ``key`` value."""
        return cls(frame.drop_duplicates(key).set_index(key))

    def value(self, key: str, column: str) -> Any:
        if key in self.rows.index and column in self.rows.columns:
            return none_if_missing(self.rows.at[key, column])
        return None


def released_person_tracks(root: Path) -> list[tuple[pd.Series, pd.DataFrame]]:
    """(released clip row, its person tracks from ``tracks.parquet``), by clip id.

    Person tracks of clips that were not released (dropped by the filter or the audit) are
    left out here: every pose export is a released product.
    """
    released = read_released(root)
    tracks = read_track_table(root)
    people = tracks[tracks["class_id"] == PERSON_CLASS_ID]
    clips = released.drop_duplicates("clip_id").set_index("clip_id", drop=False)
    out = []
    for clip_id, group in people.groupby("clip_id", sort=True):
        if clip_id not in clips.index:
            log.info("%s: not released, %d person track(s) left out", clip_id, len(group))
            continue
        out.append((clips.loc[clip_id], group.sort_values("track_id")))
    return out


def clip_tracks(root: Path, clip_id: str, summary: pd.DataFrame) -> pd.DataFrame:
    """The rows of the tracks listed in ``summary`` from the clip's track table."""
    paths = summary["path"].dropna().unique()
    if len(paths) != 1:
        raise FormatError(
            f"{layout_of(root).track_table}: clip {clip_id} has {len(paths)} track-table paths"
        )
    path = root / str(paths[0])
    if not path.exists():
        raise FileNotFoundError(f"{path}: track table of {clip_id} missing")
    table = read_tracks(path)
    ids = set(summary["track_id"].astype(int))
    return table[table["track_id"].isin(ids)]


def clip_file(root: Path, clip: pd.Series) -> Path:
    """The released clip's video file; ``FileNotFoundError`` naming it when it is gone."""
    path = root / str(clip["path"])
    if not path.exists():
        raise FileNotFoundError(f"{path}: released clip of {clip['clip_id']} missing")
    return path
