"""Pose errors of VideoPose3D (docs/formats/videopose3d.md, "Losses and metrics"): losses in torch,
evaluation in numpy.

Evaluation works per frame (each function returns one error per frame) so errors can be
summed per action and per sequence and then averaged the way the original reports them:
frame-weighted within an action, then the plain mean over actions. Units are those of
the inputs (metres); :func:`summarize` turns them into millimetres.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

METRICS: tuple[str, ...] = ("mpjpe", "p_mpjpe", "n_mpjpe", "mpjve")


def mpjpe_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean per-joint position error: mean Euclidean distance over everything."""
    return torch.mean(torch.linalg.vector_norm(pred - target, dim=-1))


def weighted_mpjpe_loss(pred: torch.Tensor, target: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """MPJPE with per-element weights; the trajectory model uses w = 1 / depth."""
    return torch.mean(w * torch.linalg.vector_norm(pred - target, dim=-1))


def n_mpjpe_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MPJPE after the least-squares scale per (batch, frame), for (B, T, J, 3) tensors."""
    num = torch.sum(target * pred, dim=(-1, -2), keepdim=True)
    den = torch.sum(pred * pred, dim=(-1, -2), keepdim=True)
    return mpjpe_loss(num / den * pred, target)


def frame_mpjpe(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(N, J, 3) -> (N,) mean joint distance per frame."""
    return np.linalg.norm(pred - target, axis=-1).mean(axis=-1)


def frame_n_mpjpe(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-frame MPJPE after scaling the prediction by its least-squares scale."""
    num = np.sum(target * pred, axis=(-1, -2), keepdims=True)
    den = np.sum(pred * pred, axis=(-1, -2), keepdims=True)
    return frame_mpjpe(num / np.maximum(den, 1e-12) * pred, target)


def procrustes_align(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Best similarity transform (rotation, scale, translation) of pred onto target.

    Per frame: centre both, normalise to unit Frobenius norm, take the SVD of
    pred0^T target0 = U S V^T; the rotation is U V^T, with the last singular direction
    negated when that would be a reflection; the scale is trace(S) * |target| / |pred|.
    """
    mu_t = target.mean(axis=1, keepdims=True)
    mu_p = pred.mean(axis=1, keepdims=True)
    t0, p0 = target - mu_t, pred - mu_p
    norm_t = np.sqrt(np.sum(t0**2, axis=(1, 2), keepdims=True))
    norm_p = np.sqrt(np.sum(p0**2, axis=(1, 2), keepdims=True))
    t0 = t0 / np.maximum(norm_t, 1e-12)
    p0 = p0 / np.maximum(norm_p, 1e-12)
    u, s, vt = np.linalg.svd(np.matmul(p0.transpose(0, 2, 1), t0))
    sign = np.sign(np.linalg.det(np.matmul(u, vt)))
    u[:, :, -1] *= sign[:, None]
    s[:, -1] *= sign
    rot = np.matmul(u, vt)
    scale = s.sum(axis=1)[:, None, None] * norm_t / np.maximum(norm_p, 1e-12)
    return scale * np.matmul(pred - mu_p, rot) + mu_t


def frame_p_mpjpe(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-frame MPJPE after Procrustes alignment (protocol 2)."""
    return frame_mpjpe(procrustes_align(pred, target), target)


def frame_mpjve(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-frame velocity error: (N, J, 3) -> (N - 1,) along the frame axis."""
    return frame_mpjpe(np.diff(pred, axis=0), np.diff(target, axis=0))


FRAME_METRICS = {
    "mpjpe": frame_mpjpe,
    "p_mpjpe": frame_p_mpjpe,
    "n_mpjpe": frame_n_mpjpe,
    "mpjve": frame_mpjve,
}


def mpjpe(pred: np.ndarray, target: np.ndarray) -> float:
    return float(frame_mpjpe(pred, target).mean())


def p_mpjpe(pred: np.ndarray, target: np.ndarray) -> float:
    return float(frame_p_mpjpe(pred, target).mean())


def n_mpjpe(pred: np.ndarray, target: np.ndarray) -> float:
    return float(frame_n_mpjpe(pred, target).mean())


def mean_velocity_error(pred: np.ndarray, target: np.ndarray) -> float:
    return float(frame_mpjve(pred, target).mean())


class ErrorAccumulator:
    """Sums per-frame errors per action group (``'Walking 1'`` counts as ``'Walking'``)."""

    def __init__(self) -> None:
        self.sums: dict[str, dict[str, float]] = {}
        self.counts: dict[str, dict[str, int]] = {}

    def add(self, action: str, pred: np.ndarray, target: np.ndarray) -> None:
        group = action.split(" ")[0]
        sums = self.sums.setdefault(group, dict.fromkeys(METRICS, 0.0))
        counts = self.counts.setdefault(group, dict.fromkeys(METRICS, 0))
        for name, fn in FRAME_METRICS.items():
            errs = fn(pred, target)
            sums[name] += float(errs.sum())
            counts[name] += int(errs.size)

    def summarize(self, scale: float = 1000.0) -> dict:
        """{'per_action': {action: {metric: mm, 'frames': n}}, 'overall': {metric: mm}}."""
        per_action = {}
        for group in sorted(self.sums):
            row = {m: self.sums[group][m] / max(self.counts[group][m], 1) * scale for m in METRICS}
            row["frames"] = self.counts[group]["mpjpe"]
            per_action[group] = row
        overall = {m: _mean(r[m] for r in per_action.values()) for m in METRICS}
        overall["frames"] = sum(r["frames"] for r in per_action.values())
        return {"per_action": per_action, "overall": overall}


def _mean(values: Iterable[float]) -> float:
    vals = list(values)
    return float(np.mean(vals)) if vals else float("nan")
