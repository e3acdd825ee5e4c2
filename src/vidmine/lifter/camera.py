"""Camera conventions of VideoPose3D (docs/formats/videopose3d.md,
"Coordinates, normalisation and camera"), so data and checkpoints interoperate.

2D keypoints are normalised so x spans [-1, 1] over the image width and y keeps the aspect
ratio; the 9-value intrinsic vector ``[fx, fy, cx, cy, k1, k2, k3, p1, p2]`` lives in the
same normalised units. Quaternions are (w, x, y, z) and rotate camera -> world.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the projections import torch when called: data readers need no torch
    import torch


def normalize_screen_coordinates(x: np.ndarray, w: float, h: float) -> np.ndarray:
    """Pixels -> normalised coordinates; x in [0, w] maps to [-1, 1], aspect kept."""
    return x / w * 2 - np.array([1, h / w], dtype=x.dtype)


def image_coordinates(x: np.ndarray, w: float, h: float) -> np.ndarray:
    """Inverse of :func:`normalize_screen_coordinates` (normalised -> pixels)."""
    return (x + np.array([1, h / w], dtype=x.dtype)) * w / 2


def qrot(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors ``v`` (..., 3) by unit quaternions ``q`` (..., 4), broadcasting."""
    q = np.broadcast_to(q, v.shape[:-1] + (4,))
    w, u = q[..., :1], q[..., 1:]
    uv = np.cross(u, v)
    return v + 2 * (w * uv + np.cross(u, uv))


def qinverse(q: np.ndarray) -> np.ndarray:
    """Conjugate of a unit quaternion, i.e. the inverse rotation."""
    out = np.array(q, copy=True)
    out[..., 1:] *= -1
    return out


def world_to_camera(x: np.ndarray, orientation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """World points -> camera space: rotate by the inverse orientation after removing t."""
    return qrot(qinverse(orientation), x - translation)


def camera_to_world(x: np.ndarray, orientation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """Camera points -> world space (inverse of :func:`world_to_camera`)."""
    return qrot(orientation, x) + translation


def quaternion_from_matrix(rot: np.ndarray) -> np.ndarray:
    """(w, x, y, z) of a 3x3 rotation matrix; used to build synthetic cameras."""
    m = np.asarray(rot, dtype=np.float64)
    trace = np.trace(m)
    if trace > 0:
        s = np.sqrt(trace + 1.0) * 2
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = np.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k]) * 2
        q = [0.0] * 4
        q[0] = (m[k, j] - m[j, k]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (m[j, i] + m[i, j]) / s
        q[1 + k] = (m[k, i] + m[i, k]) / s
    q = np.array(q)
    return q / np.linalg.norm(q) * (1 if q[0] >= 0 else -1)


_MIN_DEPTH = 1e-6


def _clamped_ratio(x: torch.Tensor) -> torch.Tensor:
    """(x/z, y/z) clamped to [-1, 1], as the original, with a finite gradient everywhere.

    A predicted depth of exactly 0 (bf16 predictions of pose and trajectory do cancel exactly)
    made the original's division give a NaN gradient even where the clamp cuts the value off;
    depths within 1e-6 of 0 are moved to +-1e-6 first, so the ratio clamps and its gradient is
    0. Elsewhere the result is the original's.
    """
    import torch

    z = x[..., 2:]
    tiny = z.abs() < _MIN_DEPTH
    z = torch.where(tiny, torch.where(z < 0, -_MIN_DEPTH, _MIN_DEPTH).to(z.dtype), z)
    return torch.clamp(x[..., :2] / z, -1, 1)


def project_to_2d(x: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """Project camera-space points (N, ..., 3) with distortion (N, 9) as the original does.

    The x/y over z ratio is clamped to [-1, 1] before distortion, like VideoPose3D, so that
    wildly wrong early predictions cannot blow up the semi-supervised loss.
    """
    import torch

    shape = (intrinsics.shape[0],) + (1,) * (x.dim() - 2) + (-1,)
    k = intrinsics.reshape(shape)
    f, c, radial, tangential = k[..., :2], k[..., 2:4], k[..., 4:7], k[..., 7:9]
    xy = _clamped_ratio(x)
    r2 = torch.sum(xy**2, dim=-1, keepdim=True)
    powers = torch.cat((r2, r2**2, r2**3), dim=-1)
    radial_term = 1 + torch.sum(radial * powers, dim=-1, keepdim=True)
    tan_term = torch.sum(tangential * xy, dim=-1, keepdim=True)
    xy_d = xy * (radial_term + tan_term) + tangential * r2
    return f * xy_d + c


def project_to_2d_linear(x: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """Pinhole projection ignoring distortion (the original's ``--linear-projection``)."""
    shape = (intrinsics.shape[0],) + (1,) * (x.dim() - 2) + (-1,)
    k = intrinsics.reshape(shape)
    xy = _clamped_ratio(x)
    return k[..., :2] * xy + k[..., 2:4]


def normalized_intrinsics(
    focal: np.ndarray,
    center: np.ndarray,
    res_w: float,
    res_h: float,
    radial: np.ndarray | None = None,
    tangential: np.ndarray | None = None,
) -> np.ndarray:
    """Pixel intrinsics -> the 9-value normalised vector the projection functions use."""
    f = np.asarray(focal, dtype=np.float64) / res_w * 2
    c = normalize_screen_coordinates(np.asarray(center, dtype=np.float64), res_w, res_h)
    k = np.zeros(3) if radial is None else np.asarray(radial, dtype=np.float64)
    p = np.zeros(2) if tangential is None else np.asarray(tangential, dtype=np.float64)
    return np.concatenate([f, c, k, p]).astype(np.float32)
