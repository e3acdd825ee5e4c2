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
import random
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vidmine.io import atomic_path

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


def keep_track(rows: pd.DataFrame, fps: float, area: float, settings: dict[str, Any]) -> bool:
    """TrackVerse's track filters: length (last - first timestamp) and mean box area share."""
    detected = rows[~rows["interpolated"]]
    if len(detected) < 2:
        return False
    span = (detected["frame"].iloc[-1] - detected["frame"].iloc[0]) / fps
    box_area = ((detected.x2 - detected.x1) * (detected.y2 - detected.y1)).mean() / area
    return span >= settings["min_track_seconds"] and box_area >= settings["min_track_area"]


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


# --- curation ---------------------------------------------------------------------------


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


def sample_random(index: pd.DataFrame, n: int, seed: int) -> list[int]:
    lines = index["line"].tolist()
    random.Random(seed).shuffle(lines)
    return sorted(lines[:n])


def sample_video_balanced(index: pd.DataFrame, per_video: int) -> list[int]:
    """At most ``per_video`` tracks per video, the most confident first (not in TrackVerse)."""
    ranked = index.sort_values(["logit", "line"], ascending=[False, True])
    return sorted(ranked.groupby("yid", sort=False).head(per_video)["line"].tolist())


def sample_class_balanced(
    index: pd.DataFrame,
    per_class: int,
    boxes: dict[int, dict[float, np.ndarray]] | None = None,
    min_motion: float | None = None,
    max_spt_iou: float | None = None,
    rounds: int = 5,
) -> list[int]:
    """Per class, the most confident tracks first, accepted while the constraints hold
    (motion at least ``min_motion``; spatio-temporal IoU with tracks already taken from the
    same video at most ``max_spt_iou``), relaxing both by x0.8 per round when short.

    TrackVerse returns the selection in line order and then takes the first Nc of it, which
    keeps low line numbers rather than high scores (FORMATS.md 3.8); vidmine keeps the Nc most
    confident.
    """
    chosen: list[int] = []
    for _, group in index.groupby("class", sort=True):
        ranked = group.sort_values(["logit", "line"], ascending=[False, True])
        selected: list[int] = []
        motion_bar, iou_bar = min_motion, max_spt_iou
        for round_ in range(rounds + 1):
            last = round_ == rounds  # the last round drops the constraints
            for row in ranked.itertuples():
                if len(selected) >= per_class:
                    break
                if row.line in selected:
                    continue
                if not last and motion_bar is not None:
                    if not (getattr(row, "motion", None) or 0.0) >= motion_bar:
                        continue
                if not last and iou_bar is not None and boxes is not None:
                    same_video = [s for s in selected if index.at[s, "yid"] == row.yid]
                    if any(
                        spatiotemporal_iou(boxes[row.line], boxes[s]) > iou_bar for s in same_video
                    ):
                        continue
                selected.append(row.line)
            if len(selected) >= per_class:
                break
            motion_bar = None if motion_bar is None else motion_bar * 0.8
            iou_bar = None if iou_bar is None else min(1.0, iou_bar / 0.8)
        chosen.extend(selected)
    return sorted(chosen)


def spatiotemporal_iou(a: dict[float, np.ndarray], b: dict[float, np.ndarray]) -> float:
    """Mean box IoU over the timestamps two tracks share (0 when they share none)."""
    common = sorted(set(a) & set(b))
    if not common:
        return 0.0
    return float(np.mean([box_iou_xywh(a[t], b[t]) for t in common]))


def box_iou_xywh(a: np.ndarray, b: np.ndarray) -> float:
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax2, bx2) - max(a[0], b[0]))
    ih = max(0.0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0


def sample_min_redundancy(
    index: pd.DataFrame, per_class: int, seed: int, epochs: int = 5
) -> list[int]:
    """TrackVerse's swap selection (FORMATS.md 3.5): per class, start from a random subset and
    swap in any candidate farther from the subset than the subset's closest pair, replacing a
    member of that pair, until an epoch makes no swap. Tracks without an embedding are left out.
    """
    rng = random.Random(seed)
    chosen: list[int] = []
    known = index.dropna(subset=["embedding"]) if "embedding" in index else index.iloc[:0]
    for _, group in known.groupby("class", sort=True):
        lines = group["line"].tolist()
        vectors = {r.line: np.asarray(r.embedding, np.float64) for r in group.itertuples()}
        if len(lines) <= per_class:
            chosen.extend(lines)
            continue
        subset = rng.sample(lines, per_class)
        for _ in range(epochs):
            swaps = 0
            candidates = [line for line in lines if line not in subset]
            rng.shuffle(candidates)
            for candidate in candidates:
                i, j, closest = _closest_pair(subset, vectors)
                nearest = min(np.linalg.norm(vectors[candidate] - vectors[s]) for s in subset)
                if nearest > closest:
                    out = rng.choice((subset[i], subset[j]))
                    subset[subset.index(out)] = candidate
                    swaps += 1
            if swaps == 0:
                break
        chosen.extend(subset)
    return sorted(chosen)


def _closest_pair(subset: list[int], vectors: dict[int, np.ndarray]) -> tuple[int, int, float]:
    points = np.stack([vectors[s] for s in subset])
    distances = np.linalg.norm(points[:, None] - points[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    i, j = np.unravel_index(np.argmin(distances), distances.shape)
    return int(i), int(j), float(distances[i, j])


def min_pairwise_distance(lines: list[int], index: pd.DataFrame) -> float:
    """Smallest embedding distance within a selection (what the swap selection raises)."""
    vectors = {r.line: np.asarray(r.embedding) for r in index.itertuples() if r.line in lines}
    if len(vectors) < 2:
        return float("inf")
    return _closest_pair(list(vectors), vectors)[2]


SUBSET_KINDS = {"RND": "random", "CB": "class_balanced", "VB": "video_balanced"}


def subset_names(domain: str, curation: dict[str, Any]) -> list[str]:
    """File stems of the configured subsets, e.g. ``COCO-RND-100``, ``COCO-CB50``,
    ``COCO-VB10``, ``COCO-MinRed-CB50`` (TrackVerse's patterns, counts not in thousands)."""
    names = [f"{domain}-RND-{n}" for n in curation.get("random", [])]
    names += [f"{domain}-CB{n}" for n in curation.get("class_balanced", [])]
    names += [f"{domain}-VB{n}" for n in curation.get("video_balanced", [])]
    names += [f"{domain}-MinRed-CB{n}" for n in curation.get("min_redundancy", [])]
    return names


def select_subset(name: str, index: pd.DataFrame, curation: dict[str, Any]) -> list[int]:
    """Index lines of the subset ``name`` (one of ``subset_names``)."""
    _, kind = name.split("-", 1)
    seed = int(curation.get("seed", 0))
    if kind.startswith("RND-"):
        return sample_random(index, int(kind[4:]), seed)
    if kind.startswith("MinRed-CB"):
        return sample_min_redundancy(index, int(kind[9:]), seed)
    if kind.startswith("CB"):
        boxes = _boxes_by_line(index)
        return sample_class_balanced(
            index,
            int(kind[2:]),
            boxes,
            curation.get("min_motion"),
            curation.get("max_spt_iou"),
        )
    if kind.startswith("VB"):
        return sample_video_balanced(index, int(kind[2:]))
    raise ValueError(f"unknown subset {name!r} (expected <domain>-RND-N, -CBN, -VBN, -MinRed-CBN)")


def _boxes_by_line(index: pd.DataFrame) -> dict[int, dict[float, np.ndarray]]:
    out = {}
    for row in index.itertuples():
        record = json.loads(row.text)
        out[row.line] = {
            round(t, 3): np.asarray(b, np.float64)
            for t, b in zip(record["track_ts"], record["track_bbox"], strict=True)
        }
    return out


def write_subset(index: pd.DataFrame, lines: list[int], target: str | Path) -> None:
    """Subset file: the selected index lines, verbatim, in index order."""
    wanted = set(lines)
    write_lines_gzip(
        target, (t for line, t in zip(index["line"], index["text"], strict=True) if line in wanted)
    )


def class_counts(index: pd.DataFrame, lines: list[int]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for cls in index.set_index("line").loc[lines, "class"]:
        counts[cls] += 1
    return dict(counts)
