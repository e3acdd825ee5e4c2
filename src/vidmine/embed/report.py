"""The embedding's report page (``report/embed.html``): the measured table of
``vidmine embed evaluate`` as tables, with the accuracy plot inline."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from vidmine.io import write_text_atomic
from vidmine.reporting import PAGE, Section, section_html

FEATURE_NAMES = {"raw_2d": "raw 2D (baseline)", "teacher": "VIPE* teacher", "student": "student"}


def _pct(value: float | None) -> float | None:
    return None if value is None else round(100 * float(value), 1)


def retrieval_table(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """Cross-view retrieval hit@k (%) of the teacher and the raw-2D baseline."""
    report = metrics["cross_view_retrieval"]
    rows = []
    for name in ("teacher", "raw_2d"):
        rows.append(
            {"features": FEATURE_NAMES[name], **{k: _pct(v) for k, v in report[name].items()}}
        )
    return pd.DataFrame(rows)


def few_shot_table(results: Mapping[str, Any]) -> pd.DataFrame:
    """Accuracy (%, mean +- std over trials) per shot count and retrieval hit@k per feature set."""
    rows = []
    for name, result in results.items():
        if name not in FEATURE_NAMES or not isinstance(result, Mapping):
            continue
        row: dict[str, Any] = {"features": FEATURE_NAMES[name], "tracks": result["tracks"]}
        for shots, acc in result["few_shot"].items():
            row[f"{shots} shot"] = f"{100 * acc['mean']:.1f} +- {100 * acc['std']:.1f}"
        hits = [k for k in result["retrieval"] if k.startswith("hit@")]
        for key in sorted(hits, key=lambda k: int(k.split("@")[1])):
            row[key] = _pct(result["retrieval"][key])
        rows.append(row)
    return pd.DataFrame(rows)


STUDENT_COLUMNS = {
    "test_frames": "held-out frames",
    "test_cosine": "student cosine",
    "baseline_mean_cosine": "mean-embedding cosine",
    "test_l2": "student L2",
    "baseline_mean_l2": "mean-embedding L2",
    "epoch": "epochs",
}


def student_table(student: Mapping[str, Any]) -> pd.DataFrame:
    """The student's agreement with the teacher on held-out tracks, beside the baseline that
    always answers the mean training embedding."""
    row = {
        label: round(student[key], 3) if isinstance(student[key], float) else student[key]
        for key, label in STUDENT_COLUMNS.items()
        if key in student
    }
    return pd.DataFrame([row])


def write_report(metrics_json: Path, plot: Path, out: Path) -> None:
    metrics = json.loads(Path(metrics_json).read_text())
    encoded = base64.b64encode(Path(plot).read_bytes()).decode("ascii")
    body = [
        "<p>VPD's pose embeddings measured on poses no training example used (docs/embed.md): "
        "cross-view retrieval on held-out subjects and cameras, few-shot action recognition "
        "(1-NN under DTW, VPD's recognize.py) split by subject.</p>",
        section_html(Section("Cross-view retrieval (%)", retrieval_table(metrics))),
        section_html(
            Section(
                "Few-shot recognition on the synthetic actions (%)",
                few_shot_table(metrics["few_shot_synthetic"]),
            )
        ),
        f'<img alt="accuracy against shots" src="data:image/png;base64,{encoded}">',
    ]
    dataset = metrics.get("few_shot_dataset")
    if dataset is not None:
        if "skipped" in dataset:
            body.append(f"<p>The dataset's own tracks: not measured ({dataset['skipped']}).</p>")
        else:
            body.append(
                section_html(
                    Section(
                        "Few-shot recognition on the dataset's labelled tracks (%)",
                        few_shot_table(dataset),
                    )
                )
            )
    if "student" in metrics:
        body.append(
            section_html(
                Section(
                    "Student against teacher, held-out tracks", student_table(metrics["student"])
                )
            )
        )
    write_text_atomic(out, PAGE.format(title="Pose embeddings (VPD)", body="".join(body)))
