"""Lift wild 2D tracks (COCO-17, pixels) to 3D with a trained or published lifter.

A COCO-input model (VideoPose3D's in-the-wild recipe, and vidmine's default) takes the
track as it is. A model trained on H36M-layout 2D gets an approximate COCO -> H36M
conversion first. The model runs folded (:func:`vidmine.lifter.evaluate.inference_model`).

Gaps: the VideoPose3D export fills the frames where a track was lost by interpolation and
gives them score 0. A short gap (up to ``max_gap`` frames) is lifted from that
interpolation, as VideoPose3D lifts its own interpolated detections; a longer one cuts the
track into segments lifted on their own, and its frames get no 3D (NaN) and confidence 0, so
a person who walked behind a wall for two seconds is not given an invented walk.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vidmine.formats.videopose3d import (
    PUBLISHED_LIFTERS,
    CustomEntry,
    interpolate_missing,
    read_custom_2d,
)
from vidmine.lifter.camera import normalize_screen_coordinates
from vidmine.lifter.checkpoint import LoadedLifter, load_lifter
from vidmine.lifter.evaluate import inference_model, predict, predict_pair
from vidmine.lifter.skeleton import coco_to_h36m_2d, get_layout
from vidmine.weights import resolve_weights

log = logging.getLogger(__name__)

DEFAULT_MAX_GAP = 12  # frames: half a second at 25 fps


def resolve_lift_model(spec: str, sha256: str | None = None) -> tuple[Path, str | None]:
    """A ``lifter.lift_model`` value (a published name or a checkpoint path) -> the local
    file and the 2D layout it takes (None: the checkpoint says, or ``--model-layout``)."""
    if spec in PUBLISHED_LIFTERS:
        url, layout = PUBLISHED_LIFTERS[spec]
        return resolve_weights(url, sha256), layout
    return resolve_weights(spec, sha256), None


def lift_keypoints(
    lifter: LoadedLifter,
    keypoints_px: np.ndarray,
    width: int,
    height: int,
    track_layout: str = "coco",
    tta: bool = True,
    device: torch.device | str = "cpu",
    with_trajectory: bool = True,
) -> np.ndarray:
    """(T, 17, 2) pixel keypoints (NaN = missing) -> (T, 17, 3) camera-space metres.

    Joints are root-relative; when the checkpoint has a trajectory model (semi-supervised
    training) and ``with_trajectory`` is set, its root trajectory is added.
    """
    norm, layout = _model_input(lifter, keypoints_px, width, height, track_layout)
    pose = predict(lifter.model.to(device), norm, layout, tta, device)
    if with_trajectory and lifter.traj_model is not None:
        traj = inference_model(lifter.traj_model.to(device))
        pose = pose + predict(traj, norm, layout, tta, device)
    return pose.astype(np.float32)


def _model_input(lifter: LoadedLifter, kp_px: np.ndarray, width: int, height: int, layout: str):
    kp = interpolate_missing(np.asarray(kp_px, dtype=np.float32))
    if lifter.input_layout != layout:
        if (layout, lifter.input_layout) != ("coco", "h36m"):
            raise ValueError(f"cannot feed {layout} tracks to a {lifter.input_layout} model")
        kp = coco_to_h36m_2d(kp)
    return normalize_screen_coordinates(kp, width, height), get_layout(lifter.input_layout)


def _lift_segment(lifter, kp_px, width, height, track_layout, device):
    """(T, 17, 3) flip-averaged pose and (T,) distance between the direct and mirrored
    predictions (mean over joints, metres)."""
    norm, layout = _model_input(lifter, kp_px, width, height, track_layout)
    direct, mirrored = predict_pair(lifter.model, norm, layout, device)
    disagreement = np.linalg.norm(direct - mirrored, axis=-1).mean(axis=-1)
    return (direct + mirrored) / 2, disagreement


def segments(scores: np.ndarray, max_gap: int) -> list[tuple[int, int]]:
    """[start, end) frame spans of a track split at gaps longer than ``max_gap`` frames.

    A frame is in a gap when none of its keypoints has a positive score (the export's mark of
    a frame filled in where the track was lost). Leading and trailing gaps are dropped.
    """
    seen = (np.asarray(scores) > 0).any(axis=1)
    frames = np.flatnonzero(seen)
    if len(frames) == 0:
        return []
    breaks = np.flatnonzero(np.diff(frames) > max_gap + 1)
    starts = np.concatenate([[frames[0]], frames[breaks + 1]])
    ends = np.concatenate([frames[breaks], [frames[-1]]]) + 1
    return [(int(a), int(b)) for a, b in zip(starts, ends, strict=True)]


@dataclass
class LiftedTrack:
    """One lifted track; every array has one row per frame of the 2D track."""

    name: str
    poses_3d: np.ndarray  # (T, 17, 3) H36M-17 camera space, metres, root-relative; NaN in gaps
    confidence: np.ndarray  # (T,) in [0, 1]: mean 2D keypoint score over the receptive field
    flip_disagreement_m: np.ndarray  # (T,) direct vs mirrored prediction, NaN in gaps
    segments: list[tuple[int, int]]

    def arrays(self) -> dict[str, np.ndarray]:
        spans = np.array(self.segments, dtype=np.int64).reshape(-1, 2)
        return {
            "poses_3d": self.poses_3d,
            "confidence": self.confidence,
            "flip_disagreement_m": self.flip_disagreement_m,
            "segments": spans,
        }


def support(scores: np.ndarray, receptive_field: int) -> np.ndarray:
    """(T,) mean keypoint score over each frame's receptive field (edge-padded like the
    model's input): a frame lifted from filled-in neighbours is trusted less."""
    per_frame = np.asarray(scores, dtype=np.float64).mean(axis=1)
    pad = (receptive_field - 1) // 2
    padded = np.pad(per_frame, pad, mode="edge")
    return np.convolve(padded, np.ones(receptive_field) / receptive_field, mode="valid")


def lift_track(
    lifter: LoadedLifter,
    entry: CustomEntry,
    max_gap: int = DEFAULT_MAX_GAP,
    device: torch.device | str = "cpu",
) -> LiftedTrack:
    """Lift one export entry segment by segment (see the module docstring on gaps)."""
    kp = np.asarray(entry.keypoints, dtype=np.float32)
    n = len(kp)
    scores = entry.scores if entry.scores is not None else np.isfinite(kp).all(-1).astype(float)
    pose = np.full((n, 17, 3), np.nan, dtype=np.float32)
    flip = np.full(n, np.nan, dtype=np.float32)
    confidence = np.zeros(n, dtype=np.float32)
    spans = segments(scores, max_gap)
    field = lifter.model.receptive_field()
    for a, b in spans:
        w, h = entry.width, entry.height
        pose[a:b], flip[a:b] = _lift_segment(lifter, kp[a:b], w, h, "coco", device)
        confidence[a:b] = support(scores[a:b], field)
    return LiftedTrack(entry.name, pose, confidence, flip, spans)


def _seen_frames(entry: CustomEntry) -> float:
    """Frames of a track weighted by how well its keypoints were seen (the sum of per-frame
    mean scores): the tracks worth drawing first are long and clearly detected."""
    if entry.scores is None:
        return float(len(entry.keypoints))
    return float(np.asarray(entry.scores).mean(axis=1).sum())


def safe_name(name: str) -> str:
    """A track name usable as a file name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "track"


def load_for_lifting(model_path: Path, input_layout: str | None, device: str) -> LoadedLifter:
    """A checkpoint opened and folded for inference, on ``device``."""
    lifter = load_lifter(model_path, input_layout=input_layout)
    lifter.model = inference_model(lifter.model.to(device))
    return lifter


def lift_custom_file(
    model_path: Path,
    input_npz: Path,
    out_dir: Path,
    render: int = 0,
    fps: float = 25.0,
    input_layout: str | None = None,
    device: str = "cpu",
    max_gap: int = DEFAULT_MAX_GAP,
    videos: Path | None = None,
) -> list[Path]:
    """Lift every track of a ``data_2d_custom`` npz; write ``<track>.npz`` (+ GIFs).

    Each output npz holds :class:`LiftedTrack`'s arrays (``poses_3d``, ``confidence``,
    ``flip_disagreement_m``, ``segments``) and the input: ``keypoints_2d`` (pixels),
    ``scores_2d``, ``width``, ``height``, ``first_frame``. The ``render`` tracks with the most
    clearly seen frames (:func:`_seen_frames`) also get ``<track>.gif``: the 2D skeleton on the
    released frame (from ``videos``, the export's ``videopose3d_videos`` folder) beside the 3D
    skeleton.
    """
    from vidmine.lifter.render import render_lift_gif

    lifter = load_for_lifting(Path(model_path), input_layout, device)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    tracks = sorted(read_custom_2d(input_npz, allow_missing=True), key=lambda e: e.name)
    to_render = {e.name for e in sorted(tracks, key=_seen_frames, reverse=True)[:render]}
    for entry in tracks:
        lifted = lift_track(lifter, entry, max_gap, device)
        path = out_dir / f"{safe_name(entry.name)}.npz"
        scores = entry.scores if entry.scores is not None else np.ones(entry.keypoints.shape[:2])
        np.savez_compressed(
            path,
            **lifted.arrays(),
            keypoints_2d=entry.keypoints,
            scores_2d=scores.astype(np.float32),
            width=entry.width,
            height=entry.height,
            first_frame=entry.first_frame,
        )
        written.append(path)
        kept = sum(b - a for a, b in lifted.segments)
        log.info(
            "%s: %d frames, %d lifted in %d segments",
            entry.name,
            len(scores),
            kept,
            len(lifted.segments),
        )
        if entry.name in to_render and lifted.segments:
            video = Path(videos) / entry.video if videos and entry.video else None
            gif = path.with_suffix(".gif")
            render_lift_gif(
                entry.keypoints,
                lifted.poses_3d,
                entry.width,
                entry.height,
                gif,
                fps=fps,
                video=video,
                confidence=lifted.confidence,
            )
            written.append(gif)
    return written
