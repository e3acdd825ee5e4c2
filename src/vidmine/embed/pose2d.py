"""VPD's 2D pose normalisation and the raw-2D baseline features (docs/formats/vpd.md,
"Embedding pickles").

VIPE* sees a COCO-17 pose only after it is made translation- and scale-free: the hip midpoint
moves to the origin, the widest torso distance becomes 0.5, confidences are centred on 0, and
the eyes and ears are dropped (13 joints stay). The flipped copy swaps left and right joints and
mirrors x, which is how VPD gets its second embedding row. The same normalised points, (x, y)
only, are VPD's ``dummy_2d_features.py`` baseline: what the teacher and student must beat.
"""

from __future__ import annotations

import numpy as np

N_COCO = 17
KEPT_JOINTS = (0, *range(5, 17))  # nose, shoulders ... ankles: eyes and ears are unreliable
FLIP_ORDER = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)
TORSO = (5, 6, 11, 12)
LEFT_HIP, RIGHT_HIP = 11, 12
# COCO's skeleton edges (1-based in the COCO annotation file) among the kept joints.
_COCO_EDGES_1BASED = (
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8),
    (7, 9), (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
)  # fmt: skip
BONES = tuple(
    (a - 1, b - 1) for a, b in _COCO_EDGES_1BASED if a - 1 in KEPT_JOINTS and b - 1 in KEPT_JOINTS
)


def normalize_pose(keypoints: np.ndarray, flip: bool = False, bones: bool = False) -> np.ndarray:
    """One (17, 3) COCO pose (x, y, confidence in [0, 1]) as VIPE*'s input: (13, 3), or
    (13 + 12, 3) with bone rows (joint differences, mean confidence) appended."""
    kp = np.array(keypoints, dtype=np.float64)
    if kp.shape != (N_COCO, 3):
        raise ValueError(f"a COCO pose is (17, 3), got {kp.shape}")
    kp[:, :2] -= (kp[LEFT_HIP, :2] + kp[RIGHT_HIP, :2]) / 2
    torso = kp[list(TORSO), :2]
    widest = np.max(np.linalg.norm(torso[:, None] - torso[None], axis=-1))
    kp[:, :2] *= 0.5 / (widest if widest > 0 else 1.0)
    if flip:
        kp = kp[list(FLIP_ORDER)]
        kp[:, 0] *= -1
    kp[:, 2] -= 0.5
    rows = [kp[list(KEPT_JOINTS)]]
    if bones:
        a, b = np.array(BONES).T
        bone_rows = np.empty((len(BONES), 3))
        bone_rows[:, :2] = kp[a, :2] - kp[b, :2]
        bone_rows[:, 2] = (kp[a, 2] + kp[b, 2]) / 2
        rows.append(bone_rows)
    return np.vstack(rows).astype(np.float32)


def normalize_poses(keypoints: np.ndarray, flip: bool = False, bones: bool = False) -> np.ndarray:
    """A (N, 17, 3) batch through :func:`normalize_pose`, vectorised (the apply and training
    loops call it on every frame)."""
    kp = np.array(keypoints, dtype=np.float64)
    if kp.ndim != 3 or kp.shape[1:] != (N_COCO, 3):
        raise ValueError(f"COCO poses are (N, 17, 3), got {kp.shape}")
    kp[..., :2] -= (kp[:, LEFT_HIP, None, :2] + kp[:, RIGHT_HIP, None, :2]) / 2
    torso = kp[:, list(TORSO), :2]
    widest = np.linalg.norm(torso[:, :, None] - torso[:, None], axis=-1).max(axis=(1, 2))
    kp[..., :2] *= (0.5 / np.where(widest > 0, widest, 1.0))[:, None, None]
    if flip:
        kp = kp[:, list(FLIP_ORDER)]
        kp[..., 0] *= -1
    kp[..., 2] -= 0.5
    rows = [kp[:, list(KEPT_JOINTS)]]
    if bones:
        a, b = np.array(BONES).T
        bone_xy = kp[:, a, :2] - kp[:, b, :2]
        bone_c = (kp[:, a, 2:] + kp[:, b, 2:]) / 2
        rows.append(np.concatenate([bone_xy, bone_c], axis=-1))
    return np.concatenate(rows, axis=1).astype(np.float32)


def raw_2d_features(keypoints: np.ndarray, flip: bool = True) -> np.ndarray:
    """The baseline embedding of (N, 17, 3) poses: normalised (x, y) of the 13 kept joints,
    (N, 26), or (N, 2, 26) with the flipped pose as row 1 (VPD's ``dummy_2d_features.py``)."""
    plain = normalize_poses(keypoints)[..., :2].reshape(len(keypoints), -1)
    if not flip:
        return plain
    flipped = normalize_poses(keypoints, flip=True)[..., :2].reshape(len(keypoints), -1)
    return np.stack([plain, flipped], axis=1)
