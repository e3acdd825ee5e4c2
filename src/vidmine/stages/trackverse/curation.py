"""TrackVerse curation (FORMATS.md 3.5): which index lines go into each configured subset.

Subsets are named as TrackVerse names them (``<domain>-RND-N``, ``-CBN``, ``-VBN``,
``-MinRed-CBN``); their files are written by :func:`vidmine.formats.trackverse.write_subset`.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from typing import Any

import numpy as np
import pandas as pd


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


def class_counts(index: pd.DataFrame, lines: list[int]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for cls in index.set_index("line").loc[lines, "class"]:
        counts[cls] += 1
    return dict(counts)
