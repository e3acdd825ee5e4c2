"""The download report: every manifest video with its download outcome (what the dataset lost
at download, and why)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from vidmine.manifest import read_manifest
from vidmine.runner import read_status
from vidmine.tables import DOWNLOAD_REPORT

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = ["video_id", "shard", "raw_id", "url", "split", "label"]
STATUS_COLUMNS = ["status", "reason", "bytes"]  # ``bytes`` is a field of ok items


def download_report(
    manifest: str | Path, statuses: Sequence[str | Path], out: str | Path
) -> pd.DataFrame:
    """Write ``download_report.parquet``; videos no shard has finished are ``pending``."""
    videos = read_manifest(manifest)[MANIFEST_COLUMNS]
    frames = [read_status(s) for s in statuses]
    status = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if len(status):
        keep = ["id", *(c for c in STATUS_COLUMNS if c in status.columns)]
        report = videos.merge(
            status[keep].rename(columns={"id": "video_id"}), on="video_id", how="left"
        )
    else:
        report = videos.assign(status=None)
    for column in STATUS_COLUMNS:
        if column not in report.columns:
            report[column] = None
    report["status"] = report["status"].fillna("pending")
    DOWNLOAD_REPORT.write(report, out)
    log.info("download report: %s -> %s", report.status.value_counts().to_dict(), out)
    return report
