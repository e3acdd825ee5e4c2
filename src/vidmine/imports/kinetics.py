"""Temporal-3D-Pose-Kinetics pseudo-3D pickles as vidmine track tables, plus one lifter npz
(``kinetics_lifter.npz``, this module's format: :func:`load_kinetics_lifter` reads it).

The pickles are read by :func:`vidmine.formats.kinetics.read_kinetics_pkl` with a restricted
unpickler: a pickle naming any other callable is refused before it runs. The lifter npz holds
plain arrays only, so it loads without pickle at all.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidmine.formats import FormatError
from vidmine.formats.kinetics import (
    KineticsClip,
    kinetics_to_lifter_arrays,
    kinetics_to_track_rows,
    read_kinetics_pkl,
)
from vidmine.imports.common import Refused, refuse, write_refused
from vidmine.io import write_npz
from vidmine.tracks import N_KEYPOINTS, write_tracks

log = logging.getLogger(__name__)

KINETICS_LIFTER_FORMAT = "vidmine-kinetics-lifter/1"
KINETICS_LIFTER_FILE = "kinetics_lifter.npz"


@dataclass(frozen=True)
class KineticsSequence:
    """One imported clip: its name, the pickle's contents and its lifter arrays."""

    name: str  # ``<youtube_id>_<start>_<end>``, also its track table's name
    clip: KineticsClip
    arrays: dict[str, Any]  # kinetics_to_lifter_arrays' output


def _read_sequence(
    path: Path, fps: float, width: int, height: int, imported: set[str]
) -> tuple[KineticsSequence, list[dict[str, Any]]]:
    """One pickle as a sequence and its track rows; :class:`FormatError` when it is refused."""
    clip = read_kinetics_pkl(path)
    clip_id = f"{clip.youtube_id}_{clip.start}_{clip.end}"
    if clip_id in imported:
        raise FormatError(f"{path}: clip {clip_id} was already imported")
    if len(clip) == 0:
        raise FormatError(f"{path}: no frame")
    duration = clip.end - clip.start
    n_frames = round(duration * fps) if duration > 0 else None
    rows = kinetics_to_track_rows(clip, clip_id, width, height, fps, n_frames)
    arrays = kinetics_to_lifter_arrays(clip, width, height, source=path)
    return KineticsSequence(clip_id, clip, arrays), rows


def import_kinetics(
    pkl_paths: Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    fps: float,
    width: int,
    height: int,
) -> dict[str, Any]:
    """Temporal-3D-Pose-Kinetics pickles -> track tables and one lifter npz.

    Each ``<yid>_<start>_<end>.pkl`` becomes ``tracks/<yid>_<start>_<end>.parquet`` (its
    person at ``fps`` in a ``width`` x ``height`` clip, frames beyond the clip's
    ``(end - start) * fps`` dropped) and a sequence of ``kinetics_lifter.npz``
    (:func:`load_kinetics_lifter`). Refused files are returned as ``refused`` (file, reason).
    """
    if not (fps > 0 and width > 0 and height > 0):
        raise FormatError(f"import-kinetics: fps {fps}, size {width}x{height} must be positive")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    refused: Refused = []
    seqs: list[KineticsSequence] = []
    imported: set[str] = set()  # names of seqs
    written = []
    for path in map(Path, pkl_paths):
        try:
            seq, rows = _read_sequence(path, fps, width, height, imported)
        except FormatError as err:
            refuse(refused, path, err)
            continue
        target = out / "tracks" / f"{seq.name}.parquet"
        write_tracks(rows, target)
        written.append(str(target))
        seqs.append(seq)
        imported.add(seq.name)
        log.info(
            "%s: %d frames, %d track rows (%s projection)",
            seq.name,
            len(seq.clip),
            len(rows),
            seq.arrays["convention"],
        )
    lifter = out / KINETICS_LIFTER_FILE
    save_kinetics_lifter(lifter, seqs)
    write_refused(out, refused)
    return {"imported": len(seqs), "tracks": written, "lifter": str(lifter), "refused": refused}


def save_kinetics_lifter(path: Path, seqs: list[KineticsSequence]) -> None:
    """Sequences as flat arrays plus lengths: no pickled objects, ``np.load`` reads it."""
    lengths = np.array([len(s.arrays["pos2d"]) for s in seqs], np.int64)

    def cat(key: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        parts = [np.asarray(s.arrays[key], dtype) for s in seqs]
        return np.concatenate(parts) if parts else np.zeros((0, *shape), dtype)

    arrays = {
        "format": np.array(KINETICS_LIFTER_FORMAT),
        "names": np.array([s.name for s in seqs], dtype=str).reshape(-1),
        "youtube_ids": np.array([s.clip.youtube_id for s in seqs], dtype=str).reshape(-1),
        "spans": np.array([[s.clip.start, s.clip.end] for s in seqs], np.int64).reshape(-1, 2),
        "lengths": lengths,
        "pos2d": cat("pos2d", (N_KEYPOINTS, 2), np.float32),
        "pos3d": cat("pos3d", (17, 3), np.float32),
        "time": cat("time", (), np.float64),
        "intrinsics": np.array([s.arrays["intrinsics"] for s in seqs], np.float32).reshape(-1, 9),
        "res": np.array([s.arrays["res"] for s in seqs], np.int64).reshape(-1, 2),
        "convention": np.array([s.arrays["convention"] for s in seqs], dtype=str).reshape(-1),
    }
    write_npz(path, arrays)


def load_kinetics_lifter(path: str | os.PathLike) -> dict[str, list[Any]]:
    """Read ``kinetics_lifter.npz`` as per-sequence lists.

    Keys ``poses_2d`` ((T, 17, 2) COCO pixels), ``poses_3d`` ((T, 17, 3) H36M-17 camera
    metres), ``subjects`` (YouTube ids), ``actions`` (clip names), ``intrinsics`` and
    ``resolutions`` are :func:`vidmine.lifter.data.dataset_from_arrays`'s arguments; ``time``
    and ``convention`` (the projection convention that fitted) come along.
    """
    with np.load(path, allow_pickle=False) as data:
        if "format" not in data or str(data["format"]) != KINETICS_LIFTER_FORMAT:
            raise FormatError(f"{path}: not a vidmine Kinetics lifter file")
        bounds = np.concatenate([[0], np.cumsum(data["lengths"])]).astype(int)
        spans = list(zip(bounds[:-1], bounds[1:], strict=True))
        pos2d, pos3d, time = data["pos2d"], data["pos3d"], data["time"]
        return {
            "poses_2d": [pos2d[a:b] for a, b in spans],
            "poses_3d": [pos3d[a:b] for a, b in spans],
            "subjects": [str(s) for s in data["youtube_ids"]],
            "actions": [str(s) for s in data["names"]],
            "intrinsics": list(data["intrinsics"]),
            "resolutions": [(int(w), int(h)) for w, h in data["res"]],
            "time": [time[a:b] for a, b in spans],
            "convention": [str(s) for s in data["convention"]],
        }
