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


def concat_tables(paths: Sequence[str | Path]) -> pd.DataFrame:
    frames = [pd.read_parquet(p) for p in paths]
    frames = [f for f in frames if len(f.columns)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


SCORE_COLUMNS = [
    "cartoon_score",
    "aesthetic_score",
    "sharpness",
    "luma",
    "contrast",
    "motion",
    "flags",
]


def gather_released(
    clips: Sequence[str | Path],
    scores: Sequence[str | Path],
    audits: Sequence[str | Path],
    out: str | Path,
) -> pd.DataFrame:
    """The released clips: blurred, audited, with their scores. The dataset file that later
    stages read pixels from (``path`` points into ``clips/``, never ``private/``)."""
    table = concat_tables(clips)
    audit = pd.concat([read_status(a) for a in audits], ignore_index=True) if audits else None
    columns = [c for c in CLIP_COLUMNS if c != "path"] + ["path", *SCORE_COLUMNS, "audit_action"]
    if audit is None or not len(audit) or not len(table):
        released = pd.DataFrame(columns=columns)
    else:
        passed = audit[audit.status == "ok"]
        paths = dict(zip(passed.id, (outputs[0] for outputs in passed.outputs), strict=True))
        actions = dict(zip(passed.id, passed.action, strict=True))
        released = table[table.clip_id.isin(paths)].drop(columns=["path"])
        released = released.merge(concat_tables(scores)[["clip_id", *SCORE_COLUMNS]], on="clip_id")
        released["path"] = released.clip_id.map(paths)
        released["audit_action"] = released.clip_id.map(actions)
        released = released.sort_values("clip_id").reset_index(drop=True)[columns]
    write_parquet_atomic(released, out)
    log.info("released clips: %d -> %s", len(released), out)
    return released
