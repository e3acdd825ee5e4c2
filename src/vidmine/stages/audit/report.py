"""Report item of the privacy audit: its verdict, actions per clip, which auditor found residual
faces, and the faces the blur found."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from vidmine.reporting import Section, html_table_page

# Recall and precision of the blur and of each auditor at the default settings, on the labelled
# faces of tests/privacy_faces; tests/test_privacy_recall.py measures them and fails when this
# file says otherwise.
MEASURED_RECALL = Path(__file__).with_name("measured_recall.csv")


def read_measured_recall() -> pd.DataFrame:
    return pd.read_csv(MEASURED_RECALL)


def audit_summary(audit: pd.DataFrame, faces: pd.DataFrame, out: str | Path) -> None:
    per_clip = (
        faces.assign(with_faces=faces.n_faces > 0)
        .groupby("clip_id")
        .agg(
            frames=("frame", "size"),
            frames_with_faces=("with_faces", "sum"),
            max_faces=("n_faces", "max"),
        )
        .reset_index()
        .sort_values(["max_faces", "frames_with_faces", "clip_id"], ascending=[False, False, True])
    )
    actions = audit.groupby("action").size().rename("clips").reset_index()
    by_auditor = found_by_auditor(audit)
    residual = int(audit.loc[audit.action != "dropped", "residual_frames_after"].sum())
    verdict = pd.DataFrame({"released clips with residual faces": [residual]})
    html_table_page(
        "Face blur and privacy audit",
        [
            Section("Audit verdict", verdict),
            Section("Audit actions", actions),
            Section(
                "Residual faces by auditor: clips and frames, first scan and re-audit", by_auditor
            ),
            Section(
                "Audit per clip (most residual frames first)",
                audit.sort_values(["residual_frames", "clip_id"], ascending=[False, True]),
                "tables/audit/*.parquet",
            ),
            Section(
                "Recall on labelled real faces at the default settings (247 faces: 147 drawn on"
                " photographs and demo frames, 100 LFW faces of 25 px; docs/privacy.md)",
                read_measured_recall(),
            ),
            Section(
                "Faces blurred per clip (most faces first)", per_clip, "tables/faces/*.parquet"
            ),
        ],
        out,
    )


def found_by_auditor(audit: pd.DataFrame) -> pd.DataFrame:
    """Per auditor: clips and frames it found faces in, at the first scan and the last re-audit
    (the ``found_by`` and ``found_by_after`` columns' ``auditor:frames`` pairs)."""
    counts: dict[tuple[str, str], list[int]] = {}
    for column, when in (("found_by", "first scan"), ("found_by_after", "last re-audit")):
        if column not in audit:
            continue  # audit tables written before the ensemble
        for cell in audit[column].fillna(""):
            for pair in filter(None, cell.split(",")):
                name, frames = pair.rsplit(":", 1)
                clips_frames = counts.setdefault((name, when), [0, 0])
                clips_frames[0] += 1
                clips_frames[1] += int(frames)
    rows = [
        {"auditor": name, "scan": when, "clips": clips, "frames": frames}
        for (name, when), (clips, frames) in sorted(counts.items())
    ]
    return pd.DataFrame(rows, columns=["auditor", "scan", "clips", "frames"])
