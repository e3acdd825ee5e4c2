"""TrackVerse records (v1 layout), curated subsets and visual metrics (docs/formats/trackverse.md,
"Meta records", "Curation", "TrackVerse's visual metrics"); docs/formats/trackverse.md says
what each original reader takes from them.

Records are written per video as ``tracks_meta/<domain>/<yid[:2]>/<yid>-meta.jsonl.gzip``, one
gzip member per segment (clip) as TrackVerse appends them, with a ``-progress.txt`` of finished
segment ids. Curation reads an index (every record line, verbatim, deduplicated by ``fn``) and
writes subsets whose lines are identical to the index lines, in index order.

Two things make TrackVerse's own v1 ``curate_db.py`` run on these records:

* it reads ``top10_wcls`` (``[mu_list, std_list]``, the key of the first public parse_tracks.py,
  93dda91), while v1 ``parse_tracks.py`` writes ``top10_wlogit_mu``/``_std`` instead (KeyError on
  every v1 record). vidmine writes both: the v1 keys and ``top10_cls``/``top10_wcls`` as 93dda91
  did;
* ``load_tracks`` indexes ``top10_wcls[0][1]`` (softmax of the list, first minus second), so the
  lists need ten entries as DETIC gives. Where the detector recorded a class distribution per box
  (``class_scores`` in the track table) the ten are its ten most probable classes; where it gives
  only the winning class (BlazePose, HOG, keypoint R-CNN persons) the other nine entries are
  "no class": label ``-1``, name ``""``, scores ``0.0`` (see ``NO_CLASS_ID``).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vidmine.io import atomic_path, gzip_text_atomic, write_plain_array

log = logging.getLogger(__name__)

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
# The 93dda91 keys that v1 curate_db.py's load_tracks reads: [mu_list, std_list] each.
CURATE_KEYS = ("top10_cls", "top10_wcls")
RECORD_KEYS = V1_KEYS + CURATE_KEYS

TOP_K = 10  # DETIC's top-10 classes per track
# A top-10 slot without a class (the detector scored one class only): an id no vocabulary has,
# no name, probability 0. softmax([s, 0, ...]) and [0][0], [0][1] stay valid for curate_db.py.
NO_CLASS_ID = -1
NO_CLASS_NAME = ""
BACKGROUND_ID = 0  # COCO category 0 (and torchvision's class 0): not a class, left out of top-10


def track_tid(yid: str, ts: list[float], bboxes: list[list[float]]) -> str:
    """TrackVerse's track id: md5 of the video id, timestamps and boxes as Python reprs."""
    text = f"{yid}-{tuple(ts)!s}-{tuple(tuple(b) for b in bboxes)!s}"
    return hashlib.md5(text.encode()).hexdigest()


def track_record(
    yid: str,
    clip: dict[str, Any],
    rows: pd.DataFrame,
    video_size: tuple[int, int],
    class_names: list[str] | None = None,
) -> dict[str, Any]:
    """The record of one track: detected rows only (TrackVerse stores raw detector boxes at
    the matched frames, not interpolated or smoothed ones), timestamps absolute in the video.

    ``class_names`` (index = class id) names the classes of a recorded distribution."""
    detected = rows[~rows["interpolated"]]
    ts = [round(float(clip["start_time"]) + float(t), 6) for t in detected["time"]]
    boxes = [
        [float(r.x1), float(r.y1), float(r.x2 - r.x1), float(r.y2 - r.y1)]
        for r in detected.itertuples()
    ]
    top = top_classes(detected, class_names)
    tid = track_tid(yid, ts, boxes)
    return {
        "yid": yid,
        "tid": tid,
        "fn": f"{yid[:2]}/{yid}-{top['desc'][0].replace(' ', '-')}-{tid}.mp4",
        "video_size": [int(video_size[0]), int(video_size[1])],
        "track_ts": ts,
        "track_bbox": boxes,
        "top10_lbl": top["lbl"],
        "top10_desc": top["desc"],
        "top10_logit_mu": top["mu"],
        "top10_logit_std": top["std"],
        # vidmine's detectors have no objectness apart from the class score (DETIC's weight):
        # the weighted fields are the unweighted ones, objectness taken as 1.
        "top10_wlogit_mu": top["mu"],
        "top10_wlogit_std": top["std"],
        "top10_cls": [top["mu"], top["std"]],
        "top10_wcls": [top["mu"], top["std"]],
    }


def _rounded(values: Iterable[float]) -> list[float]:
    return [round(float(v), 6) for v in values]


def top_classes(detected: pd.DataFrame, class_names: list[str] | None = None) -> dict[str, list]:
    """The track's ten classes: its own (the class it was tracked as) first, then the other
    classes by mean probability over its boxes (background and unnamed ids left out) when the
    detector recorded per-box distributions (``class_scores``), else nine "no class" slots.

    Scores are the per-box probabilities of each class, averaged (``mu``) and spread (``std``)
    over the track's detected boxes, as TrackVerse's ``top10_logit_*``; the track's own class
    has the detection scores (which torchvision's detectors give as that class's probability).
    """
    class_id, name = int(detected["class_id"].iloc[0]), str(detected["class_name"].iloc[0])
    scores = detected["score"].to_numpy(dtype=np.float64)
    lbl, desc = [class_id], [name]
    mu, std = [float(scores.mean())], [float(scores.std())]
    distributions = class_distributions(detected)
    if distributions is not None and class_names is not None:
        mean, spread = distributions.mean(0), distributions.std(0)
        named = [
            c
            for c in np.argsort(-mean, kind="stable")
            if c != class_id
            and c != BACKGROUND_ID
            and c < len(class_names)
            and class_names[c] not in ("", "N/A")
        ]
        for c in named[: TOP_K - 1]:
            lbl.append(int(c))
            desc.append(class_names[c])
            mu.append(float(mean[c]))
            std.append(float(spread[c]))
    missing = TOP_K - len(lbl)
    return {
        "lbl": lbl + [NO_CLASS_ID] * missing,
        "desc": desc + [NO_CLASS_NAME] * missing,
        "mu": _rounded(mu) + [0.0] * missing,
        "std": _rounded(std) + [0.0] * missing,
    }


def class_distributions(detected: pd.DataFrame) -> np.ndarray | None:
    """(T, C) per-box class probabilities, or None unless every detected box has one."""
    if "class_scores" not in detected.columns:
        return None
    values = list(detected["class_scores"])
    if not values or not all(isinstance(v, list | np.ndarray) and len(v) for v in values):
        return None
    if len({len(v) for v in values}) != 1:
        return None
    return np.asarray([np.asarray(v, np.float64) for v in values])


def segment_id(yid: str, start: float, end: float) -> str:
    return f"{yid}-{start:.2f}-{end:.2f}"


def write_meta(path: Path, segments: list[list[dict[str, Any]]]) -> None:
    """A multi-member gzip JSON-lines file, one member per segment (as TrackVerse appends)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        for records in segments:
            text = "".join(json.dumps(r) + "\n" for r in records)
            handle.write(gzip.compress(text.encode(), mtime=0))  # no time: reproducible


def read_jsonl_gzip(path: str | Path) -> list[dict[str, Any]]:
    """Records of a (multi-member) jsonl.gzip file."""
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def read_lines_gzip(path: str | Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [line.rstrip("\n") for line in handle if line.strip()]


def write_lines_gzip(path: str | Path, lines: Iterable[str]) -> None:
    with gzip_text_atomic(path) as handle:  # no time or name in the header: reproducible
        for line in lines:
            handle.write(line + "\n")


# --- visual metrics (docs/formats/trackverse.md, "TrackVerse's visual metrics") ------------

MOTION, EMBEDDINGS = "motion", "embeddings"  # tracks_<metric>/<domain>/<fn with .npy>
# The flow-magnitude quantiles of one batch of frame pairs (visual_metrics.compute_optical_flow);
# curate_db.VisualMetricsDB.load_motion reads columns -4, -3, -2 as q50, q75, q90.
MOTION_QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)


def metric_path(root: str | Path, metric: str, domain: str, fn: str) -> Path:
    """Where TrackVerse's readers look for a track's metric: ``tracks_<metric>/<domain>/`` and
    the record's ``fn`` with ``.mp4`` replaced by ``.npy`` (``str.replace``, as they do)."""
    return Path(root) / f"tracks_{metric}" / domain / fn.replace(".mp4", ".npy")


def save_npy(path: str | Path, array: np.ndarray) -> None:
    """A plain ``.npy`` at exactly ``path``, written atomically (``np.save`` on a path would
    append ``.npy`` to a temporary name)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        write_plain_array(handle, array)


def save_motion(path: str | Path, stats: np.ndarray) -> None:
    """Motion as TrackVerse stores it: 1-D float32, 7 quantiles per batch of frame pairs."""
    stats = np.asarray(stats, np.float32).reshape(-1)
    if not len(stats) or len(stats) % len(MOTION_QUANTILES):
        raise ValueError(f"{path}: {len(stats)} motion values, not a multiple of 7")
    save_npy(path, stats)


def read_motion(path: str | Path) -> dict[str, float]:
    """q50, q75 and q90 as curate_db.VisualMetricsDB.load_motion reads them: the file reshaped
    to (-1, 7), averaged over batches, columns -4, -3, -2."""
    stats = np.load(path, allow_pickle=False).reshape(-1, len(MOTION_QUANTILES)).mean(0)
    return {"q50": float(stats[-4]), "q75": float(stats[-3]), "q90": float(stats[-2])}


def read_embedding(path: str | Path) -> np.ndarray:
    """A track embedding: 1-D float32 (TrackVerse: the mean ResNet-50 feature, (2048,))."""
    array = np.load(path, allow_pickle=False)
    if array.ndim != 1 or array.dtype != np.float32 or not np.isfinite(array).all():
        raise ValueError(
            f"{path}: not a finite 1-D float32 embedding ({array.dtype} {array.shape})"
        )
    return array


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


def load_index(
    path: str | Path,
    metrics_root: str | Path | None = None,
    domain: str | None = None,
    available: Callable[[Path], bool] = Path.is_file,
) -> pd.DataFrame:
    """Index lines as a table, read as curate_db.Curator.load_tracks reads them: line (its
    track id), fn, yid, class (``top10_desc[0]``), logit (``top10_wcls[0][0]``).

    With ``metrics_root`` (the folder holding ``tracks_motion/`` and ``tracks_embeddings/``),
    also each track's ``motion_q90`` and ``embedding`` where its file is ``available`` (NaN /
    None where not; a file that cannot be read is logged and left out)."""
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
    if metrics_root is not None and domain is not None:
        index["motion_q90"] = [
            _metric_or_none(metrics_root, MOTION, domain, fn, _q90, available) for fn in index["fn"]
        ]
        index["motion_q90"] = index["motion_q90"].astype(float)
        index["embedding"] = [
            _metric_or_none(metrics_root, EMBEDDINGS, domain, fn, read_embedding, available)
            for fn in index["fn"]
        ]
    return index


def _q90(path: Path) -> float:
    return read_motion(path)["q90"]


def _metric_or_none(root, metric: str, domain: str, fn: str, read, available) -> Any:
    path = metric_path(root, metric, domain, fn)
    if not available(path):
        return None
    try:
        return read(path)
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable %s file, track left out: %s", fn, metric, exc)
        return None


def _logit(record: dict[str, Any]) -> float:
    if "top10_wcls" in record:  # what v1 curate_db.py reads (93dda91's key)
        return float(record["top10_wcls"][0][0])
    return float(record["top10_wlogit_mu"][0])  # v1 parse_tracks.py records without it


def write_subset(index: pd.DataFrame, lines: list[int], target: str | Path) -> None:
    """Subset file: the selected index lines, verbatim, in index order."""
    wanted = set(lines)
    write_lines_gzip(
        target, (t for line, t in zip(index["line"], index["text"], strict=True) if line in wanted)
    )
