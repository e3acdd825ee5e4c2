"""TrackVerse records (FORMATS.md 3.4, v1 layout) and curated subsets (3.5).

Records are written per video as ``tracks_meta/<domain>/<yid[:2]>/<yid>-meta.jsonl.gzip``, one
gzip member per segment (clip) as TrackVerse appends them, with a ``-progress.txt`` of finished
segment ids. Curation reads an index (every record line, verbatim, deduplicated by ``fn``) and
writes subsets whose lines are identical to the index lines, in index order.

Where vidmine's detectors differ from DETIC: a COCO detector gives one class per box, so the
``top10_*`` lists hold that one class (length 1, not 10); the "logit" fields hold the detection
score (TrackVerse's are class probabilities too, see FORMATS.md 3.4).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vidmine.io import atomic_path

META_SUFFIX = "-meta.jsonl.gzip"  # a video's records: tracks_meta/<domain>/<yid[:2]>/<yid><suffix>
PROGRESS_SUFFIX = "-progress.txt"  # its finished segment ids

V1_KEYS = (
    "yid",
    "tid",
    "fn",
    "video_size",
    "track_ts",
    "track_bbox",
    "top10_lbl",
    "top10_desc",
    "top10_logit_mu",
    "top10_logit_std",
    "top10_wlogit_mu",
    "top10_wlogit_std",
)


def track_tid(yid: str, ts: list[float], bboxes: list[list[float]]) -> str:
    """TrackVerse's track id: md5 of the video id, timestamps and boxes as Python reprs."""
    text = f"{yid}-{tuple(ts)!s}-{tuple(tuple(b) for b in bboxes)!s}"
    return hashlib.md5(text.encode()).hexdigest()


def track_record(
    yid: str, clip: dict[str, Any], rows: pd.DataFrame, video_size: tuple[int, int]
) -> dict[str, Any]:
    """The v1 record of one track: detected rows only (TrackVerse stores raw detector boxes at
    the matched frames, not interpolated or smoothed ones), timestamps absolute in the video."""
    detected = rows[~rows["interpolated"]]
    ts = [round(float(clip["start_time"]) + float(t), 6) for t in detected["time"]]
    boxes = [
        [float(r.x1), float(r.y1), float(r.x2 - r.x1), float(r.y2 - r.y1)]
        for r in detected.itertuples()
    ]
    scores = detected["score"].to_numpy(dtype=np.float64)
    desc = str(rows["class_name"].iloc[0])
    tid = track_tid(yid, ts, boxes)
    mu, std = round(float(scores.mean()), 6), round(float(scores.std()), 6)
    return {
        "yid": yid,
        "tid": tid,
        "fn": f"{yid[:2]}/{yid}-{desc.replace(' ', '-')}-{tid}.mp4",
        "video_size": [int(video_size[0]), int(video_size[1])],
        "track_ts": ts,
        "track_bbox": boxes,
        "top10_lbl": [int(rows["class_id"].iloc[0])],
        "top10_desc": [desc],
        "top10_logit_mu": [mu],
        "top10_logit_std": [std],
        "top10_wlogit_mu": [mu],
        "top10_wlogit_std": [std],
    }


def segment_id(yid: str, start: float, end: float) -> str:
    return f"{yid}-{start:.2f}-{end:.2f}"


def write_meta(path: Path, segments: list[list[dict[str, Any]]]) -> None:
    """A multi-member gzip JSON-lines file, one member per segment (as TrackVerse appends)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        for records in segments:
            text = "".join(json.dumps(r) + "\n" for r in records)
            handle.write(gzip.compress(text.encode()))


def read_jsonl_gzip(path: str | Path) -> list[dict[str, Any]]:
    """Records of a (multi-member) jsonl.gzip file."""
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def read_lines_gzip(path: str | Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [line.rstrip("\n") for line in handle if line.strip()]


def write_lines_gzip(path: str | Path, lines: Iterable[str]) -> None:
    with atomic_path(path) as tmp, gzip.open(tmp, "wt", encoding="utf-8") as handle:
        for line in lines:
            handle.write(line + "\n")


# --- index and subsets ----------------------------------------------------------------


def build_index(meta_files: Iterable[str | Path], target: str | Path) -> int:
    """Concatenate every record line verbatim, dropping repeated ``fn`` (TrackVerse files can
    hold duplicates); returns the number of lines."""
    seen: set[str] = set()
    lines = []
    for path in sorted(map(str, meta_files)):
        for line in read_lines_gzip(path):
            fn = json.loads(line)["fn"]
            if fn not in seen:
                seen.add(fn)
                lines.append(line)
    write_lines_gzip(target, lines)
    return len(lines)


def load_index(path: str | Path, tracks: pd.DataFrame | None = None) -> pd.DataFrame:
    """Index lines as a table: line, fn, yid, class, logit, and (joined from vidmine's track
    summary through ``fn``) motion and embedding where known."""
    rows = []
    for number, line in enumerate(read_lines_gzip(path)):
        record = json.loads(line)
        rows.append(
            {
                "line": number,
                "text": line,
                "fn": record["fn"],
                "yid": record["yid"],
                "class": record["top10_desc"][0],
                "logit": _logit(record),
            }
        )
    index = pd.DataFrame(rows, columns=["line", "text", "fn", "yid", "class", "logit"])
    if tracks is not None and "fn" in tracks.columns:
        extra = tracks.dropna(subset=["fn"]).drop_duplicates("fn").set_index("fn")
        index = index.join(extra[["motion", "embedding"]], on="fn")
    return index


def _logit(record: dict[str, Any]) -> float:
    if "top10_wlogit_mu" in record:  # v1 (parse_tracks.py 66a8b6d)
        return float(record["top10_wlogit_mu"][0])
    return float(record["top10_wcls"][0][0])  # 93dda91 records; v1 curate_db.py reads this


def write_subset(index: pd.DataFrame, lines: list[int], target: str | Path) -> None:
    """Subset file: the selected index lines, verbatim, in index order."""
    wanted = set(lines)
    write_lines_gzip(
        target, (t for line, t in zip(index["line"], index["text"], strict=True) if line in wanted)
    )
