"""The lifter's report page: the lifted GIF and the metrics shown inline, with a table of the
lifted tracks.

Snakemake's report shows PNG, SVG and JPEG inline and offers a GIF or a JSON file as a
download only, so this page embeds the GIF (as a data URI) and turns the metrics into tables.
"""

from __future__ import annotations

import base64
import json
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd

from vidmine.io import write_text_atomic
from vidmine.reporting import PAGE, Section, section_html

METRIC_NAMES = {"mpjpe": "MPJPE", "p_mpjpe": "P-MPJPE", "n_mpjpe": "N-MPJPE", "mpjve": "MPJVE"}


def metrics_tables(metrics: dict) -> list[Section]:
    """Overall and per-action errors (mm) of ``vidmine lifter evaluate``'s JSON."""
    overall = pd.DataFrame(
        [{METRIC_NAMES.get(k, k): round(v, 1) for k, v in metrics["overall"].items()}]
    )
    per_action = pd.DataFrame(
        [
            {"action": action, **{METRIC_NAMES.get(k, k): round(v, 1) for k, v in row.items()}}
            for action, row in metrics.get("per_action", {}).items()
        ]
    )
    if "MPJPE" in per_action:
        per_action = per_action.sort_values("MPJPE", ascending=False, kind="stable")
    return [
        Section("Test error (mm), mean over actions", overall),
        Section("Per action, worst first (mm)", per_action),
    ]


def lifted_tracks_table(lifted_dir: Path) -> pd.DataFrame:
    """One row per lifted track: frames, frames lifted, segments, confidence, flip
    disagreement; least confident first (the tracks to look at)."""
    rows = []
    for path in sorted(Path(lifted_dir).glob("*.npz")):
        with np.load(path, allow_pickle=False) as data:
            confidence = data["confidence"] if "confidence" in data else None
            flip = data["flip_disagreement_m"] if "flip_disagreement_m" in data else None
            lifted = np.isfinite(data["poses_3d"]).all(axis=(1, 2))
            rows.append(
                {
                    "track": path.stem,
                    "frames": len(lifted),
                    "lifted": int(lifted.sum()),
                    "segments": len(data["segments"]) if "segments" in data else 1,
                    "mean confidence": _mean(confidence, lifted),
                    "median flip disagreement (mm)": _median_mm(flip),
                }
            )
    table = pd.DataFrame(rows)
    if len(table):
        table = table.sort_values("mean confidence", kind="stable", na_position="last")
    return table


def _mean(values: np.ndarray | None, mask: np.ndarray) -> float | None:
    if values is None or not mask.any():
        return None
    return round(float(values[mask].mean()), 3)


def _median_mm(values: np.ndarray | None) -> float | None:
    if values is None or not np.isfinite(values).any():
        return None
    return round(float(np.nanmedian(values)) * 1000, 1)


def write_lifter_page(
    out: Path, gif: Path, lifted_dir: Path, metrics_json: Path | None = None
) -> None:
    """``out``: the GIF inline, the metrics as tables (when the dataset trained its own model),
    and the lifted tracks."""
    body = []
    encoded = base64.b64encode(Path(gif).read_bytes()).decode("ascii")
    body.append(
        "<h3>A lifted track</h3><p>The 2D skeleton on the released frame, beside the lifted 3D "
        "skeleton on its ground plane (metres).</p>"
        f'<img alt="lifted track" src="data:image/gif;base64,{encoded}">'
    )
    if metrics_json is not None:
        metrics = json.loads(Path(metrics_json).read_text())
        body.extend(section_html(s) for s in metrics_tables(metrics))
        model = metrics.get("model", {})
        body.append(f"<p>Model: {escape(str(model.get('path', '')))}</p>")
    tracks = lifted_tracks_table(lifted_dir)
    body.append(
        section_html(Section("Lifted tracks, least confident first", tracks, str(lifted_dir)))
    )
    write_text_atomic(out, PAGE.format(title="2D to 3D lifter", body="".join(body)))
