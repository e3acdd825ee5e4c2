"""Report items of the filter: decisions, flags and scores per clip, and a plot of the scores
that decide (tables only: a dropped clip was never blurred, so no picture of one is shown)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from vidmine.reporting import Section, html_table_page, plt, save_figure


def filter_summary(scores: pd.DataFrame, out: str | Path) -> None:
    counts = scores.groupby("decision").size().rename("clips").reset_index()
    flags = scores["flags"].fillna("").str.split(",").explode()
    by_flag = flags[flags != ""].value_counts().rename_axis("reason").rename("clips").reset_index()
    columns = [
        "clip_id",
        "decision",
        "flags",
        "cartoon_score",
        "aesthetic_score",
        "flat_edge",
        "saturated_fraction",
        "sharpness",
        "luma",
        "contrast",
        "motion",
        "short_side",
    ]
    shown = [c for c in columns if c in scores.columns and scores[c].notna().any()]
    # aesthetic_score is all NaN unless its backend is on; dropped clips first
    table = scores.sort_values(["decision", "clip_id"])[shown].round(3)
    html_table_page(
        "Clip filter",
        [
            Section("Decisions", counts),
            Section("Flags (a clip can have several)", by_flag),
            Section("Scores per clip (dropped first)", table, "tables/scores/*.parquet"),
        ],
        out,
    )


# Scores drawn in the figure, with the setting that bounds each one and on which side a clip
# fails (decide() in stage.py applies the same bounds).
SCORE_BOUNDS = (
    ("cartoon_score", None, "cartoon score (>= 1 is a cartoon)"),
    ("sharpness", "min_sharpness", "sharpness (var. of Laplacian)"),
    ("motion", "min_motion", "motion (px / frame)"),
    ("contrast", "min_contrast", "contrast (luma std)"),
    ("luma", "min_luma", "mean luma"),
)


def filter_scores(scores: pd.DataFrame, settings: dict[str, Any], out: str | Path) -> None:
    """One panel per deciding score: each clip a dot (kept blue, dropped red), the configured
    bound a dashed line. Drawn from the scores table alone, so it shows every clip, dropped
    ones too, without a pixel of the private zone."""
    fig, axes = plt.subplots(len(SCORE_BOUNDS), 1, figsize=(7, 1.3 * len(SCORE_BOUNDS) + 0.6))
    kept = scores[scores.decision == "keep"] if len(scores) else scores
    dropped = scores[scores.decision == "drop"] if len(scores) else scores
    for ax, (column, setting, label) in zip(axes, SCORE_BOUNDS, strict=True):
        for frame, colour, name in ((kept, "tab:blue", "kept"), (dropped, "tab:red", "dropped")):
            if len(frame):  # small translucent dots when there are many clips
                size, alpha = (30, 1.0) if len(scores) <= 200 else (8, 0.3)
                ax.scatter(
                    frame[column], [0] * len(frame), s=size, alpha=alpha, color=colour, label=name
                )
        bound = 1.0 if setting is None else settings.get(setting)
        if bound is not None:
            ax.axvline(float(bound), color="black", linestyle="--", linewidth=1)
        ax.set_yticks([])
        ax.set_xlabel(label, fontsize=9)
    if len(scores):
        axes[0].legend(loc="best", fontsize=8)
    else:
        axes[0].text(
            0.5, 0.5, "no clip scored", ha="center", va="center", transform=axes[0].transAxes
        )
    fig.suptitle(f"Filter scores of {len(scores)} clips (dashed: the configured bound)")
    save_figure(fig, out)
