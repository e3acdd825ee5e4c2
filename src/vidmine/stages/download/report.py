"""Report item of the download stage: outcome counts and the videos lost or pending."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from vidmine.reporting import html_table_page


def download_summary(report: pd.DataFrame, out: str | Path) -> None:
    counts = report.groupby("status").size().rename("videos").reset_index()
    lost = report[report.status != "ok"][["video_id", "url", "status", "reason"]]
    html_table_page(
        "Download summary", [("Outcome", counts), ("Videos lost or pending", lost)], out
    )
