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
import numpy as np  # noqa: E402
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
    save_figure(fig, out, dpi=100)


# --- filter, blur and audit -------------------------------------------------------------------
# Pictures in the report come from released (blurred, audited) clips. The one exception is the
# examples of dropped clips, which were never released: their frame is blurred with the same
# face blur as the pipeline before it is drawn, and a frame in which the audit detector still
# finds a face is left out. Before/after pairs of the blur are not shown at all: the "before"
# would be a private face, and the report is meant to be shared.


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
    table = scores[shown].round(3)  # aesthetic_score is all NaN unless its backend is on
    html_table_page(
        "Clip filter",
        [
            ("Decisions", counts),
            ("Flags (a clip can have several)", by_flag),
            ("Scores per clip", table),
        ],
        out,
    )


def audit_summary(audit: pd.DataFrame, faces: pd.DataFrame, out: str | Path) -> None:
    per_clip = (
        faces.groupby("clip_id")
        .agg(
            frames=("frame", "size"),
            frames_with_faces=("n_faces", lambda n: int((n > 0).sum())),
            max_faces=("n_faces", "max"),
        )
        .reset_index()
    )
    actions = audit.groupby("action").size().rename("clips").reset_index()
    residual = int(audit.loc[audit.action != "dropped", "residual_frames_after"].sum())
    verdict = pd.DataFrame({"released clips with residual faces": [residual]})
    html_table_page(
        "Face blur and privacy audit",
        [
            ("Audit verdict", verdict),
            ("Audit actions", actions),
            ("Audit per clip", audit),
            ("Faces blurred per clip (deface)", per_clip),
        ],
        out,
    )


def save_figure(fig: plt.Figure, out: str | Path, dpi: int = 80) -> None:
    """Lay out, write atomically as PNG, and free the figure."""
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)


def _tile(images: list[tuple[np.ndarray, str]], title: str, out: str | Path) -> None:
    columns = 3
    rows = max(1, -(-len(images) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 2.8 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (image, label) in zip(axes.flat, images, strict=False):
        ax.imshow(image[..., ::-1])
        ax.set_title(label, fontsize=9)
    if not images:
        axes[0, 0].text(0.5, 0.5, "none", ha="center", va="center")
    fig.suptitle(title)
    save_figure(fig, out)


def _frame(path: Path, index: int) -> np.ndarray | None:
    from vidmine.frames import read_frames_at

    return read_frames_at(path, [index]).get(index)


def dropped_examples(
    scores: pd.DataFrame,
    clips: pd.DataFrame,
    root: Path,
    blur_settings: dict,
    out: str | Path,
    limit: int = 6,
) -> None:
    """Middle frames of dropped clips, face-blurred here because they were never released."""
    from vidmine.frames import fit_within
    from vidmine.stages.audit import FaceAuditor
    from vidmine.stages.blur import FaceBlurrer

    blurrer, auditor = FaceBlurrer(blur_settings), FaceAuditor(0.5)
    dropped = scores[scores.decision == "drop"].merge(
        clips[["clip_id", "path", "n_frames"]], on="clip_id"
    )
    images = []
    for row in dropped.head(limit).itertuples():
        frame = _frame(root / row.path, row.n_frames // 2)
        if frame is None:
            continue
        blurrer.mask(frame, blurrer.detect(frame, blur_settings["threshold"]))
        if len(auditor.faces(frame)):
            continue  # never draw a frame in which a face is still found
        images.append((fit_within(frame, 320), f"{row.clip_id}: {row.flags}"))
    _tile(images, "Dropped clips (frames face-blurred for the report)", out)


def blur_examples(
    released: pd.DataFrame, faces: pd.DataFrame, root: Path, out: str | Path, limit: int = 6
) -> None:
    """Released frames with the most faces, with the blurred face boxes outlined."""
    import cv2

    from vidmine.frames import fit_within

    busiest = faces[faces.clip_id.isin(released.clip_id)].sort_values("n_faces", ascending=False)
    busiest = busiest[busiest.n_faces > 0].drop_duplicates("clip_id").head(limit)
    paths = dict(zip(released.clip_id, released.path, strict=True))
    images = []
    for row in busiest.itertuples():
        frame = _frame(root / paths[row.clip_id], int(row.frame))
        if frame is None:
            continue
        for x1, y1, x2, y2, _ in row.boxes:
            cv2.rectangle(frame, (int(x1), int(y1)), (int(x2), int(y2)), (0, 200, 255), 2)
        images.append(
            (fit_within(frame, 320), f"{row.clip_id} frame {row.frame}: {row.n_faces} faces")
        )
    _tile(images, "Released frames: blurred faces outlined", out)
