"""Report items of the scene cut: the clip table and a plot of shots and clips per video.

The shot plot draws only frame intervals: no pixels.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from vidmine.reporting import html_table_page, plt, save_figure
from vidmine.runner import read_status


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
    save_figure(fig, out, dpi=100)
