"""The dataset's track table (``tracks.parquet``: every track of every shard with its TrackVerse
``fn``), the TrackVerse index of a domain and its curated subsets."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from vidmine.formats.trackverse import build_index, load_index, write_subset
from vidmine.registry import BY_NAME
from vidmine.runner import ok_items
from vidmine.stages.trackverse.curation import class_counts, select_subset
from vidmine.tables import TRACK_TABLE, TRACKS, TRACKVERSE_LINKS

log = logging.getLogger(__name__)


def gather_tracks(
    tables: Sequence[str | Path], links: Sequence[str | Path], out: str | Path
) -> pd.DataFrame:
    """Per-shard track summaries joined with the TrackVerse ``fn`` of each kept track."""
    tracks = TRACKS.concat(tables)
    fns = TRACKVERSE_LINKS.concat(links)
    if len(tracks) and len(fns):
        tracks = tracks.merge(fns, on=["clip_id", "track_id"], how="left")
    else:
        tracks = tracks.assign(fn=None)
    TRACK_TABLE.write(tracks, out)
    log.info("%d tracks -> %s", len(tracks), out)
    return tracks


def trackverse_index(
    dataset_dir: str | Path, statuses: Sequence[str | Path], out: str | Path
) -> int:
    """Index of the meta files that the shards' trackverse status tables list."""
    root = Path(dataset_dir)
    trackverse = BY_NAME["trackverse"]
    meta = [
        root / trackverse.named_outputs(list(outputs))["meta"]
        for status in statuses
        for outputs in ok_items(status)["outputs"]
    ]
    count = build_index(meta, out)
    log.info("%d records -> %s", count, out)
    return count


def curate(
    index_path: str | Path,
    tracks_path: str | Path | None,
    name: str,
    curation: dict[str, Any],
    out: str | Path,
) -> tuple[int, int, dict[str, int]]:
    """Write the subset ``name``; returns (tracks in it, tracks in the index, per class)."""
    tracks = TRACK_TABLE.read(tracks_path) if tracks_path else None
    index = load_index(index_path, tracks)
    lines = select_subset(name, index, curation)
    write_subset(index, lines, out)
    counts = class_counts(index, lines)
    log.info("%s: %d of %d tracks %s", name, len(lines), len(index), counts)
    return len(lines), len(index), counts
