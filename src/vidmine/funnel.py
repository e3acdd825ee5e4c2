"""The report's funnel: how many videos were listed, downloaded and cut into clips, how many
clips the filter kept, the audit released, detection tracked and the crops stage cut, and
where and why the rest were lost (the most common reasons of each stage's status tables).

Read from the status tables like ``vidmine status`` (:func:`vidmine.status.summarise`), so its
size is one row per stage whatever the dataset's size.
"""

from __future__ import annotations

import platform
from collections import Counter
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pandas as pd
from matplotlib.ticker import MaxNLocator

from vidmine.layout import DatasetLayout
from vidmine.manifest import read_manifest
from vidmine.registry import BY_NAME
from vidmine.reporting import Section, html_table_page, plt, save_figure
from vidmine.runner import DROPPED, FAILED, OK
from vidmine.status import StageSummary, clip_count, rejected_rows, summarise

# What an item that a stage passed on has become, for the funnel's labels.
STEP_NAMES = {
    "download": "downloaded",
    "probe": "probed (readable)",
    "scenecut": "cut into clips",
    "filter": "kept by the filter",
    "blur": "blurred",
    "audit": "released (audited)",
    "detect": "tracked",
    "trackverse": "TrackVerse records",
    "crops": "cropped",
    "flow": "optical flow",
}
# The distributions whose versions the funnel page lists (those installed).
VERSIONED = (
    "vidmine",
    "snakemake",
    "numpy",
    "pandas",
    "pyarrow",
    "opencv-python-headless",
    "opencv-python",
    "scenedetect",
    "yt-dlp",
    "mediapipe",
    "openvino",
    "torch",
)
TOP_REASONS = 3  # reasons per stage in the funnel table (every reason: the reasons section)


@dataclass
class Step:
    """One line of the funnel: what came in, what passed, what was lost and why."""

    name: str
    stage: str  # the registry stage, or "" for the manifest and the clip table
    unit: str  # videos / clips
    entered: int
    passed: int
    failed: int = 0
    dropped: int = 0
    pending: int = 0
    reasons: Counter | None = None  # (status, reason) -> items


def funnel_steps(layout: DatasetLayout) -> list[Step]:
    """Listed videos, then per registry stage its items (with the clips the scene cut made
    after it), from the manifest, the status tables and the clip tables."""
    manifest = read_manifest(layout.manifest)
    rejected = rejected_rows(layout)
    listed = Step(
        "listed",
        "",
        "videos",
        len(manifest) + len(rejected),
        len(manifest),
        dropped=len(rejected),
        reasons=Counter(
            {(DROPPED, f"source row rejected: {r}"): n for r, n in Counter(rejected.reason).items()}
        ),
    )
    steps = [listed]
    for summary in summarise(layout):
        steps.append(_step(summary))
        if summary.stage == "scenecut":
            shards = sorted(manifest.shard.unique())
            clips = clip_count(layout, shards)
            steps.append(Step("clips cut", "", "clips", clips, clips))
    return steps


def _step(summary: StageSummary) -> Step:
    counts = summary.counts
    ok, failed, dropped = counts[OK], counts[FAILED], counts[DROPPED]
    return Step(
        STEP_NAMES.get(summary.stage, summary.stage),
        summary.stage,
        f"{BY_NAME[summary.stage].item}s",
        ok + failed + dropped + counts["skipped"] + summary.pending,
        ok,
        failed,
        dropped,
        summary.pending,
        summary.reasons,
    )


def funnel_table(steps: list[Step]) -> pd.DataFrame:
    rows = []
    for step in steps:
        top = (step.reasons or Counter()).most_common(TOP_REASONS)
        rows.append(
            {
                "step": step.name,
                "stage": step.stage,
                "items": step.unit,
                "in": step.entered,
                "ok": step.passed,
                "dropped": step.dropped,
                "failed": step.failed,
                "pending": step.pending,
                "ok %": round(100 * step.passed / step.entered, 1) if step.entered else None,
                "top reasons lost": "; ".join(f"{n} x {s}: {r}" for (s, r), n in top),
            }
        )
    return pd.DataFrame(rows)


def loss_reasons(steps: list[Step]) -> pd.DataFrame:
    rows = [
        {"stage": step.stage or step.name, "status": status, "reason": reason, "items": n}
        for step in steps
        for (status, reason), n in (step.reasons or Counter()).items()
    ]
    frame = pd.DataFrame(rows, columns=["stage", "status", "reason", "items"])
    return frame.sort_values(["items", "stage"], ascending=[False, True], kind="stable")


def verdict(steps: list[Step]) -> str:
    """One sentence: how much of what was listed came out, or where everything was lost."""
    listed = steps[0].passed
    if not listed:
        return "No video was listed: the manifest is empty."
    for step in steps[1:]:
        if step.entered and not step.passed and not step.pending:
            top = (step.reasons or Counter()).most_common(1)
            why = f" (most often {top[0][0][0]}: {top[0][0][1]})" if top else ""
            return (
                f"Nothing got past {step.stage or step.name}: all {step.entered:,} {step.unit}"
                f" were lost there{why}."
            )
        if not step.entered:
            return f"Nothing reached {step.stage or step.name}."
    last = {s.stage: s for s in steps}
    released = last.get("audit")
    return (
        f"{listed:,} videos listed, {last['download'].passed:,} downloaded,"
        f" {released.passed if released else 0:,} clips released."
    )


def versions() -> pd.DataFrame:
    """Python's and the installed versions of vidmine and the libraries it runs on."""
    rows = [{"software": "python", "version": platform.python_version()}]
    for name in VERSIONED:
        try:
            rows.append({"software": name, "version": version(name)})
        except PackageNotFoundError:
            continue
    return pd.DataFrame(rows)


def funnel_html(steps: list[Step], out: str | Path) -> None:
    html_table_page(
        "Funnel: what every stage passed on, and why the rest was lost",
        [
            Section("Funnel", funnel_table(steps)),
            Section("Every loss reason (most items first)", loss_reasons(steps), "status/"),
            Section("Versions that built this report", versions()),
        ],
        out,
        intro=verdict(steps),
    )


COLOURS = {"ok": "tab:green", "dropped": "tab:orange", "failed": "tab:red", "pending": "#bbb"}


def funnel_png(steps: list[Step], out: str | Path) -> None:
    """One bar per step, stacked: passed on (green), dropped (orange), failed (red), pending
    (grey); each labelled with ok / in and its most common loss reason."""
    fig, ax = plt.subplots(figsize=(10, 0.5 * len(steps) + 1.4))
    for y, step in enumerate(steps):
        left = 0
        for key, value in (
            ("ok", step.passed),
            ("dropped", step.dropped),
            ("failed", step.failed),
            ("pending", step.pending),
        ):
            if value:
                ax.barh(y, value, left=left, color=COLOURS[key])
            left += value
        top = (step.reasons or Counter()).most_common(1)
        why = f"; lost: {top[0][1]:,} x {top[0][0][1][:50]}" if top else ""
        label = f" {step.passed:,} of {step.entered:,} {step.unit}{why}"
        ax.text(left, y, label, fontsize=8, va="center")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in COLOURS.values()]
    ax.legend(handles, list(COLOURS), loc="lower right", fontsize=8)
    ax.set_yticks(range(len(steps)), [s.name for s in steps], fontsize=9)
    ax.set_ylim(len(steps) - 0.4, -0.7)
    ax.set_xlim(0, 2.2 * max([s.entered for s in steps] + [1]))  # room for the labels
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("items (videos up to the scene cut, clips after it)")
    ax.set_title(verdict(steps), fontsize=10)
    save_figure(fig, out)


def funnel_report(layout: DatasetLayout, html_out: str | Path, png_out: str | Path) -> None:
    steps = funnel_steps(layout)
    funnel_html(steps, html_out)
    funnel_png(steps, png_out)
