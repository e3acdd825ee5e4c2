"""TrackVerse curation (curate_db.py, docs/formats/trackverse.md, "Curation"): which index lines go
into each subset.

The samplers of curate_db.py, on the index as its ``Curator.load_tracks`` reads it
(``vidmine.formats.trackverse.load_index``: track id = line number, class = ``top10_desc[0]``,
logit = ``top10_wcls[0][0]``) and the visual metrics as its ``VisualMetricsDB`` reads them
(motion q90 from ``tracks_motion/``, embeddings from ``tracks_embeddings/``):

* ``sample_random``: the first N thousand of a (here seeded) shuffle;
* ``sample_class_balanced``: per class by logit, greedily under the optional constraints
  (motion q90 >= ``min_motion``; spatio-temporal IoU with tracks taken from the same video
  <= ``max_spt_iou``), relaxed per round as ``constrained_sampling`` does;
* ``sample_max_motion``: per class the Nc tracks of highest motion q90;
* ``sample_min_redundancy``: per class the swap selection of ``minimum_redundancy_curator``;
* ``sample_video_balanced``: vidmine's own (no such sampler in TrackVerse).

Each subset is one Snakemake target under a name known before it is built (``subset_names``);
curate_db.py puts the subset's size in its file names, so the export names the files as it does
(``curate_db_name``). docs/formats/trackverse.md lists where vidmine's samplers differ.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
from collections import defaultdict
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

MAX_ROUNDS = 5  # constrained_sampling's max_rounds
RELAX = 0.8  # thresholds relaxed by this factor per round; dropped for the last two rounds
TEMPERATURE = 0.0  # the logit temperature curate_db.py samples with ("T0.0" in its names)


def sample_random(index: pd.DataFrame, thousands: int, seed: int) -> list[int]:
    """curate_db.sample_random: the first ``thousands * 1000`` tracks of one shuffle (seeded
    here; TrackVerse's ``random.shuffle`` is not)."""
    lines = index["line"].tolist()
    random.Random(seed).shuffle(lines)
    return sorted(lines[: thousands * 1000])


def sample_video_balanced(index: pd.DataFrame, per_video: int) -> list[int]:
    """At most ``per_video`` tracks per video, the most confident first (not in TrackVerse)."""
    ranked = index.sort_values(["logit", "line"], ascending=[False, True])
    return sorted(ranked.groupby("yid", sort=False).head(per_video)["line"].tolist())


def sample_class_balanced(
    index: pd.DataFrame,
    per_class: int,
    min_motion: float | None = None,
    max_spt_iou: float | None = None,
    iou_tbuff: float | None = None,
) -> list[int]:
    """curate_db.sample_class_balanced at temperature 0: per class, tracks by logit (highest
    first) accepted while the constraints hold, as ``constrained_sampling``: motion q90 at least
    ``min_motion`` (a track without a motion file has 0, as ``load_motion`` returns), the
    spatio-temporal IoU (``spatiotemporal_iou``) with every track already taken from the same
    video at most ``max_spt_iou``. Short of ``per_class``, the pass is repeated with the motion
    bar x0.8 and the IoU bar 1 - (1 - bar) x 0.8, and without constraints for the fifth pass.

    TrackVerse selects max(Nc) and takes the first Nc *in line order* for each smaller Nc
    (docs/formats/trackverse.md, "Surprises"); here each Nc is its own selection: the Nc most
    confident.
    """
    boxes = _track_boxes(index) if max_spt_iou is not None and max_spt_iou < 1 else {}
    motion = index.set_index("line")["motion_q90"] if "motion_q90" in index else None
    tbuff = math.inf if iou_tbuff is None else float(iou_tbuff)
    chosen: list[int] = []
    for _, group in index.groupby("class", sort=True):
        ranked = group.sort_values(["logit", "line"], ascending=[False, True])
        target = min(per_class, len(ranked))
        selected: list[int] = []
        motion_bar = float(min_motion or 0.0)
        iou_bar = 1.0 if max_spt_iou is None else float(max_spt_iou)
        for round_ in range(MAX_ROUNDS):
            for row in ranked.itertuples():
                if len(selected) == target:
                    break
                if row.line in selected:
                    continue
                if motion_bar > 0 and _q90(motion, row.line) < motion_bar:
                    continue
                if iou_bar < 1 and _overlaps(row, selected, index, boxes, iou_bar, tbuff):
                    continue
                selected.append(row.line)
            if len(selected) == target:
                break
            last = round_ >= MAX_ROUNDS - 2
            motion_bar = 0.0 if last else motion_bar * RELAX
            iou_bar = 1.0 if last else 1 - (1 - iou_bar) * RELAX
        chosen.extend(selected)
    return sorted(chosen)


def _q90(motion: pd.Series | None, line: int) -> float:
    value = None if motion is None else motion.get(line)
    return 0.0 if value is None or not np.isfinite(value) else float(value)


def _overlaps(row, selected, index, boxes, bar: float, tbuff: float) -> bool:
    same_video = [s for s in selected if index.at[s, "yid"] == row.yid]
    return any(spatiotemporal_iou(*boxes[row.line], *boxes[s], tbuff) > bar for s in same_video)


def _track_boxes(index: pd.DataFrame) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for row in index.itertuples():
        record = json.loads(row.text)
        ts = np.asarray(record["track_ts"], np.float64)
        out[row.line] = (ts, np.asarray(record["track_bbox"], np.float64).reshape(-1, 4))
    return out


def spatiotemporal_iou(
    ts1: np.ndarray, boxes1: np.ndarray, ts2: np.ndarray, boxes2: np.ndarray, tbuff: float
) -> float:
    """curate_db.Curator.spt_iou: mean xywh box IoU over temporally aligned frames.

    Overlapping tracks: the frames of each inside the common time span, the longer list
    subsampled evenly to the shorter one's length. Disjoint tracks: the earlier one's last box
    against the later one's first. Each IoU is decayed by 1 / max(sqrt(|dt| / tbuff), 1) for a
    finite ``tbuff``. 0 where the common span holds no frame of one track (TrackVerse: NaN).
    """
    if ts1[-1] < ts2[0]:
        t1, t2, b1, b2 = ts1[-1:], ts2[:1], boxes1[-1:], boxes2[:1]
    elif ts2[-1] < ts1[0]:
        t1, t2, b1, b2 = ts1[:1], ts2[-1:], boxes1[:1], boxes2[-1:]
    else:
        start, end = max(ts1[0], ts2[0]), min(ts1[-1], ts2[-1])
        m1, m2 = (ts1 >= start) & (ts1 <= end), (ts2 >= start) & (ts2 <= end)
        t1, t2, b1, b2 = ts1[m1], ts2[m2], boxes1[m1], boxes2[m2]
        if len(t1) != len(t2):
            n = min(len(t1), len(t2))
            i1 = np.linspace(0, len(t1) - 1, n).astype(int)
            i2 = np.linspace(0, len(t2) - 1, n).astype(int)
            t1, t2, b1, b2 = t1[i1], t2[i2], b1[i1], b2[i2]
    if not len(t1):
        return 0.0
    if math.isfinite(tbuff):
        decay = [1.0 / max(math.sqrt(abs(a - b) / tbuff), 1.0) for a, b in zip(t1, t2, strict=True)]
    else:
        decay = [1.0] * len(t1)
    return float(np.mean([box_iou_xywh(a, b) * d for a, b, d in zip(b1, b2, decay, strict=True)]))


def box_iou_xywh(a: np.ndarray, b: np.ndarray) -> float:
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = min(ax2, bx2) - max(a[0], b[0])
    ih = min(ay2, by2) - max(a[1], b[1])
    if iw < 0 or ih < 0:
        return 0.0
    union = a[2] * a[3] + b[2] * b[3] - iw * ih
    return float(iw * ih / union) if union > 0 else 0.0


def sample_max_motion(index: pd.DataFrame, per_class: int) -> list[int]:
    """curate_db.sample_max_motion: per class, the ``per_class`` tracks of highest motion q90
    (ties: first line first). A track without a motion file counts as q90 0, as TrackVerse's
    ``load_motion`` falls back to."""
    if "motion_q90" not in index:
        raise ValueError("max-motion curation needs the tracks' motion files (tracks_motion/)")
    missing = index[index["motion_q90"].isna()]
    for fn in missing["fn"]:
        log.warning("%s: no motion file, counted as motion 0 (as TrackVerse does)", fn)
    ranked = index.assign(q90=index["motion_q90"].fillna(0.0))
    ranked = ranked.sort_values(["q90", "line"], ascending=[False, True])
    return sorted(ranked.groupby("class", sort=True).head(per_class)["line"].tolist())


def sample_min_redundancy(
    index: pd.DataFrame, per_class: int, seed: int, epochs: int = 5
) -> list[int]:
    """curate_db.minimum_redundancy_curator, per class: a class of at most ``per_class``
    tracks is kept whole; otherwise start from a random subset and, for each other track in
    random order, swap it in when it is farther (L2) from the subset than the subset's closest
    pair is apart, replacing one member of that pair at random; repeat until an epoch makes
    no swap (at most ``epochs``).

    A track without an embedding file is left out and logged (TrackVerse's fallback,
    ``np.randn``, does not exist and raises)."""
    if "embedding" not in index:
        raise ValueError("MinRed curation needs the tracks' embedding files (tracks_embeddings/)")
    for fn in index.loc[index["embedding"].isna(), "fn"]:
        log.warning("%s: no embedding file, left out of MinRed", fn)
    rng = random.Random(seed)
    chosen: list[int] = []
    for _, group in index.dropna(subset=["embedding"]).groupby("class", sort=True):
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
    vectors = {
        r.line: np.asarray(r.embedding)
        for r in index.itertuples()
        if r.line in lines and r.embedding is not None
    }
    if len(vectors) < 2:
        return float("inf")
    return _closest_pair(list(vectors), vectors)[2]


# --- names -----------------------------------------------------------------------------

# vidmine's subset stems (Snakemake targets, known before the subset is built) by sampler.
STEM_PATTERNS = {
    "random": r"(?P<n>\d+)K-RND",
    "class_balanced": r"CB(?P<n>\d+)",
    "video_balanced": r"VB(?P<n>\d+)",
    "min_redundancy": r"MinRed-CB(?P<n>\d+)",
    "max_motion": r"MaxQ90Motion-CB(?P<n>\d+)",
}
CRITERION = "|".join(f"(?:{p})" for p in STEM_PATTERNS.values()).replace("?P<n>", "?:")


def subset_names(domain: str, curation: dict[str, Any]) -> list[str]:
    """Stems of the configured subsets: ``<domain>-<N>K-RND`` (curate_db.py's name; N in
    thousands, its ``--N``), ``-CB<Nc>``, ``-MinRed-CB<Nc>``, ``-MaxQ90Motion-CB<Nc>`` (the
    export adds the size and suffixes, ``curate_db_name``) and vidmine's ``-VB<n>``."""
    stems = {
        "random": "{n}K-RND",
        "class_balanced": "CB{n}",
        "video_balanced": "VB{n}",
        "min_redundancy": "MinRed-CB{n}",
        "max_motion": "MaxQ90Motion-CB{n}",
    }
    return [
        f"{domain}-{stem.format(n=n)}" for key, stem in stems.items() for n in curation.get(key, [])
    ]


def parse_subset_name(name: str) -> tuple[str, str, int]:
    """``(domain, sampler, n)`` of a stem from ``subset_names``."""
    domain, _, criterion = name.partition("-")
    for sampler, pattern in STEM_PATTERNS.items():
        match = re.fullmatch(pattern, criterion)
        if match:
            return domain, sampler, int(match["n"])
    raise ValueError(
        f"unknown subset {name!r} (expected <domain>-<N>K-RND, -CB<N>, -VB<N>, -MinRed-CB<N>, "
        "-MaxQ90Motion-CB<N>)"
    )


def curate_db_name(name: str, n_tracks: int, curation: dict[str, Any]) -> str:
    """The file stem curate_db.py writes for the subset ``name`` holding ``n_tracks``:
    ``<d>-<N>K-RND``, ``<d>-CB<Nc>-<n//1000>K-T0.0<suffix>`` (suffix ``MaxIoU<u:.2f>Buf<b:.2f>``,
    ``MinQ90Motion<m:.1f>`` for the constraints in use), ``<d>-MinRed-CB<Nc>-<n//1000>K``,
    ``<d>-MaxQ90Motion-CB<Nc>-<n//1000>K``; vidmine's ``-VB<n>`` unchanged."""
    domain, sampler, n = parse_subset_name(name)
    size = f"{n_tracks // 1000}K"
    if sampler == "class_balanced":
        suffix = ""
        spt_iou, motion = curation.get("max_spt_iou"), curation.get("min_motion")
        if spt_iou is not None and spt_iou < 1:
            tbuff = curation.get("iou_tbuff")
            tbuff = math.inf if tbuff is None else float(tbuff)
            suffix += f"MaxIoU{spt_iou:0.2f}Buf{tbuff:0.2f}"
        if motion is not None and motion > 0:
            suffix += f"MinQ90Motion{motion:0.1f}"
        return f"{domain}-CB{n}-{size}-T{TEMPERATURE}{suffix}"
    if sampler == "min_redundancy":
        return f"{domain}-MinRed-CB{n}-{size}"
    if sampler == "max_motion":
        return f"{domain}-MaxQ90Motion-CB{n}-{size}"
    return name  # random (already curate_db.py's name) and video-balanced (vidmine's own)


def select_subset(name: str, index: pd.DataFrame, curation: dict[str, Any]) -> list[int]:
    """Index lines of the subset ``name`` (one of ``subset_names``)."""
    _, sampler, n = parse_subset_name(name)
    seed = int(curation.get("seed", 0))
    if sampler == "random":
        return sample_random(index, n, seed)
    if sampler == "min_redundancy":
        return sample_min_redundancy(index, n, seed)
    if sampler == "max_motion":
        return sample_max_motion(index, n)
    if sampler == "class_balanced":
        return sample_class_balanced(
            index,
            n,
            curation.get("min_motion"),
            curation.get("max_spt_iou"),
            curation.get("iou_tbuff"),
        )
    return sample_video_balanced(index, n)


def class_counts(index: pd.DataFrame, lines: list[int]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for cls in index.set_index("line").loc[lines, "class"]:
        counts[cls] += 1
    return dict(counts)
