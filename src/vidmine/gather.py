"""Dataset-level gathers: one table from all shards (the files users ask for)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from vidmine.io import write_parquet_atomic
from vidmine.manifest import read_manifest
from vidmine.runner import read_status

log = logging.getLogger(__name__)

CLIP_COLUMNS = [
    "clip_id",
    "video_id",
    "shard",
    "index",
    "start_frame",
    "end_frame",
    "n_frames",
    "start_time",
    "end_time",
    "fps",
    "width",
    "height",
    "has_audio",
    "path",
]


def gather_clips(tables: Sequence[str | Path], out: str | Path) -> pd.DataFrame:
    """Concatenate per-shard clip tables into the dataset's clip table, sorted by clip id."""
    frames = [pd.read_parquet(t) for t in tables]
    frames = [f for f in frames if len(f)]
    clips = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=CLIP_COLUMNS)
    clips = clips.sort_values("clip_id").reset_index(drop=True)[CLIP_COLUMNS]
    write_parquet_atomic(clips, out)
    log.info("clip table: %d clips from %d videos -> %s", len(clips), clips.video_id.nunique(), out)
    return clips


def download_report(
    manifest: str | Path, statuses: Sequence[str | Path], out: str | Path
) -> pd.DataFrame:
    """Every manifest video with its download outcome: what the dataset lost, and why."""
    videos = read_manifest(manifest)[["video_id", "shard", "raw_id", "url", "split", "label"]]
    frames = [read_status(s) for s in statuses]
    status = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    keep = [c for c in ("id", "status", "reason", "seconds", "bytes") if c in status.columns]
    status = status[keep].rename(columns={"id": "video_id"}) if len(status) else status
    report = (
        videos.merge(status, on="video_id", how="left")
        if len(status)
        else videos.assign(status=None)
    )
    report["status"] = report["status"].fillna("pending")
    write_parquet_atomic(report, out)
    counts = report.status.value_counts().to_dict()
    log.info("download report: %s -> %s", counts, out)
    return report
