"""Report items of the scene cut: the clip table's totals and top rows, and a picture of shots
and clips (a few videos' timelines and the distributions over all of them).

Both are bounded whatever the dataset's size: tables show at most ``ROW_LIMIT`` rows, the
picture draws at most ``TIMELINE_VIDEOS`` timelines. The shot plot draws only frame intervals:
no pixels.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from vidmine.reporting import Section, html_table_page, plt, save_figure
from vidmine.runner import read_status

TIMELINE_VIDEOS = 30  # videos drawn as timelines in the shot plot


def clip_summary(clips: pd.DataFrame, out: str | Path) -> None:
    per_video = (
        clips.groupby("video_id")
        .agg(clips=("clip_id", "size"), frames=("n_frames", "sum"), seconds=("end_time", "max"))
        .reset_index()
        .sort_values(["clips", "video_id"], ascending=[False, True])
    )
    seconds = (clips.end_time - clips.start_time).sum() if len(clips) else 0.0
    totals = pd.DataFrame(
        {
            "videos with clips": [clips.video_id.nunique()],
            "clips": [len(clips)],
            "frames": [int(clips.n_frames.sum())],
            "hours of clips": [round(float(seconds) / 3600, 2)],
        }
    )
    distribution = (
        (per_video.clips.value_counts().sort_index().rename_axis("clips per video"))
        .rename("videos")
        .reset_index()
    )
    longest = clips.assign(seconds=(clips.end_time - clips.start_time).round(2)).sort_values(
        ["seconds", "clip_id"], ascending=[False, True]
    )
    html_table_page(
        "Clip table",
        [
            Section("Totals", totals),
            Section("Videos by their number of clips", distribution),
            Section("Clips per video (most clips first)", per_video, "clips.parquet"),
            Section("Clips (longest first)", longest, "clips.parquet"),
        ],
        out,
    )


def _shots(row) -> list:
    shots = getattr(row, "shots", None)
    if isinstance(shots, str):
        shots = json.loads(shots)
    return [tuple(s) for s in shots] if isinstance(shots, list | np.ndarray) else []


def shot_plot(
    scenecut_statuses: Sequence[str | Path], clips: pd.DataFrame, out: str | Path
) -> None:
    """The first ``TIMELINE_VIDEOS`` videos (by id) as timelines: detected shots (alternating
    grey), kept clips (blue), dropped parts (red); under them, over every video, histograms of
    shots and clips per video and of clip lengths. Its size does not grow with the dataset."""
    status = pd.concat([read_status(s) for s in scenecut_statuses], ignore_index=True)
    status = status[status.status.isin(["ok", "dropped"])].sort_values("id")
    shown = status.head(TIMELINE_VIDEOS)
    fig = plt.figure(figsize=(10, 0.3 * max(len(shown), 1) + 4.2))
    grid = fig.add_gridspec(2, 3, height_ratios=[0.3 * max(len(shown), 1) + 0.6, 2.6])
    ax = fig.add_subplot(grid[0, :])
    by_video = {v: g for v, g in clips.groupby("video_id")} if len(clips) else {}
    for row_index, row in enumerate(shown.itertuples()):
        shots = _shots(row)
        for parity, colour in ((0, "#bbb"), (1, "#888")):
            spans = [(s, e - s) for i, (s, e) in enumerate(shots) if i % 2 == parity]
            ax.broken_barh(spans, (row_index - 0.4, 0.8), color=colour)
        kept = by_video.get(row.id)
        if kept is not None:
            spans = list(zip(kept.start_frame, kept.n_frames, strict=True))
            ax.broken_barh(
                spans, (row_index - 0.18, 0.36), color="tab:blue", edgecolor="white", linewidth=1
            )
        dropped = getattr(row, "dropped", None)
        dropped = dropped if isinstance(dropped, list | np.ndarray) else []
        spans = [(start, end - start) for start, end, *_ in dropped]
        ax.broken_barh(spans, (row_index - 0.18, 0.36), color="tab:red")
    ax.set_yticks(range(len(shown)), list(shown.id), fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("frame")
    more = f", the first {len(shown)} of {len(status):,} videos" if len(status) > len(shown) else ""
    ax.set_title(f"Shots (grey), kept clips (blue), dropped (red){more}")
    if not len(shown):
        ax.text(0.5, 0.5, "no video was cut", ha="center", va="center", transform=ax.transAxes)
    n_shots = [len(_shots(row)) for row in status.itertuples()]
    n_clips = clips.groupby("video_id").size() if len(clips) else pd.Series(dtype=int)
    lengths = (clips.end_time - clips.start_time) if len(clips) else pd.Series(dtype=float)
    for column, (values, label) in enumerate(
        (
            (n_shots, f"shots per video ({len(status):,} videos)"),
            (list(n_clips), f"clips per video ({len(n_clips):,} videos)"),
            (list(lengths), f"clip length, s ({len(lengths):,} clips)"),
        )
    ):
        hist = fig.add_subplot(grid[1, column])
        if len(values):
            hist.hist(values, bins=20, color="tab:gray")
        hist.set_xlabel(label, fontsize=8)
        hist.tick_params(labelsize=7)
    save_figure(fig, out, dpi=100)
