"""Report item of the download stage: outcome counts, the reasons videos were lost, and the
first of the videos lost or pending (at most ``ROW_LIMIT``; the rest is in the download
report)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from vidmine.reporting import Section, html_table_page


def download_summary(report: pd.DataFrame, out: str | Path) -> None:
    counts = report.groupby("status").size().rename("videos").reset_index()
    lost = report[report.status != "ok"][["video_id", "url", "status", "reason"]]
    reasons = (
        lost.groupby(["status", "reason"], dropna=False)
        .size()
        .rename("videos")
        .reset_index()
        .sort_values(["videos", "status", "reason"], ascending=[False, True, True])
    )
    source = "download_report.parquet"
    html_table_page(
        "Download summary",
        [
            Section("Outcome", counts),
            Section("Why videos were lost or are pending (most videos first)", reasons, source),
            Section("Videos lost or pending", lost.sort_values(["status", "video_id"]), source),
        ],
        out,
        intro=f"{len(report):,} videos in the manifest.",
    )
