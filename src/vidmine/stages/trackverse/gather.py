"""The dataset's track table (``tracks.parquet``: every track of every shard with its TrackVerse
``fn``), the TrackVerse index of a domain and its curated subsets."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from vidmine.formats.trackverse import build_index, load_index, write_subset
from vidmine.layout import DatasetLayout
from vidmine.registry import BY_NAME
from vidmine.runner import ok_items
from vidmine.stages.trackverse.curation import class_counts, parse_subset_name, select_subset
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


def _listed_outputs(dataset_dir: str | Path, statuses: Sequence[str | Path], name: str) -> list:
    """The ``name`` outputs (``meta``, ``metrics``) of the ok items of the shards' trackverse
    status tables, as paths."""
    root = Path(dataset_dir)
    trackverse = BY_NAME["trackverse"]
    found = []
    for status in statuses:
        for outputs in ok_items(status)["outputs"]:
            named = trackverse.named_outputs(list(outputs)).get(name)
            if named:
                found += [root / p for p in (named if isinstance(named, list) else [named])]
    return found


def trackverse_index(
    dataset_dir: str | Path, statuses: Sequence[str | Path], out: str | Path
) -> int:
    """Index of the meta files that the shards' trackverse status tables list."""
    count = build_index(_listed_outputs(dataset_dir, statuses, "meta"), out)
    log.info("%d records -> %s", count, out)
    return count


def curate(
    index_path: str | Path,
    dataset_dir: str | Path,
    statuses: Sequence[str | Path],
    name: str,
    curation: dict[str, Any],
    out: str | Path,
) -> tuple[int, int, dict[str, int]]:
    """Write the subset ``name``; returns (tracks in it, tracks in the index, per class).

    The visual metrics read are those the shards' status tables list (a file left over from
    an earlier run is not)."""
    listed = set(_listed_outputs(dataset_dir, statuses, "metrics"))
    domain = parse_subset_name(name)[0]
    root = DatasetLayout(Path(dataset_dir).parent, Path(dataset_dir).name).trackverse_dir
    index = load_index(index_path, root, domain, available=lambda path: path in listed)
    lines = select_subset(name, index, curation)
    write_subset(index, lines, out)
    counts = class_counts(index, lines)
    log.info("%s: %d of %d tracks %s", name, len(lines), len(index), counts)
    return len(lines), len(index), counts
