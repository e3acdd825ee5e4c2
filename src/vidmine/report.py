"""Report items for ``snakemake --report``: tables as HTML and a plot of shot boundaries.

No item shows pixels from the private zone: the shot plot draws only frame intervals. Frames
appear in the report once the blur stage gives released clips.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from vidmine.io import atomic_path, write_text_atomic  # noqa: E402
from vidmine.runner import read_status  # noqa: E402

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:1em}}table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:2px 6px}}th{{background:#eee}}</style></head>
<body><h2>{title}</h2>{body}</body></html>
"""


def html_table_page(title: str, sections: list[tuple[str, pd.DataFrame]], out: str | Path) -> None:
    body = "".join(
        f"<h3>{name}</h3>{frame.to_html(index=False, na_rep='')}" for name, frame in sections
    )
    write_text_atomic(out, PAGE.format(title=title, body=body))


def download_summary(report: pd.DataFrame, out: str | Path) -> None:
    counts = report.groupby("status").size().rename("videos").reset_index()
    lost = report[report.status != "ok"][["video_id", "url", "status", "reason"]]
    html_table_page(
        "Download summary", [("Outcome", counts), ("Videos lost or pending", lost)], out
    )


def clip_summary(clips: pd.DataFrame, out: str | Path) -> None:
    per_video = (
        clips.groupby("video_id")
        .agg(clips=("clip_id", "size"), frames=("n_frames", "sum"), seconds=("end_time", "max"))
        .reset_index()
    )
    html_table_page("Clip table", [("Clips per video", per_video), ("All clips", clips)], out)


def shot_plot(
    scenecut_statuses: Sequence[str | Path], clips: pd.DataFrame, out: str | Path
) -> None:
    """One row per video: detected shots (alternating grey), kept clips (blue), dropped (red)."""
    status = pd.concat([read_status(s) for s in scenecut_statuses], ignore_index=True)
    status = status[status.status.isin(["ok", "dropped"])].sort_values("id")
    fig, ax = plt.subplots(figsize=(10, 0.6 * max(len(status), 1) + 1.2))
    for row_index, row in enumerate(status.itertuples()):
        shots = row.shots if isinstance(row.shots, list) else json.loads(row.shots)
        for i, (start, end) in enumerate(shots):
            ax.barh(row_index, end - start, left=start, height=0.8, color=("#bbb", "#888")[i % 2])
        for clip in clips[clips.video_id == row.id].itertuples():
            ax.barh(
                row_index,
                clip.n_frames,
                left=clip.start_frame,
                height=0.35,
                color="tab:blue",
                edgecolor="white",
                linewidth=1.5,
            )
        for start, end, _ in row.dropped or []:
            ax.barh(row_index, end - start, left=start, height=0.35, color="tab:red")
    ax.set_yticks(range(len(status)), list(status.id))
    ax.set_xlabel("frame")
    ax.set_title("Shots per video (grey), kept clips (blue), dropped (red)")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
