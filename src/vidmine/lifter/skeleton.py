"""Joint layouts used by the lifter: Human3.6M-17 (3D output) and COCO-17 (2D input).

The lifter always predicts the 17-joint Human3.6M skeleton. Its 2D input is either the
same H36M layout (Human3.6M ground truth / CPN detections) or COCO-17 (keypoint detectors
on wild video), exactly as VideoPose3D does for custom data: it does not convert COCO to
H36M but trains a model whose input layout is COCO. docs/formats/videopose3d.md, "Skeletons" lists
both orders.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

H36M_NAMES: tuple[str, ...] = (
    "hip",
    "r_hip",
    "r_knee",
    "r_foot",
    "l_hip",
    "l_knee",
    "l_foot",
    "spine",
    "thorax",
    "neck_nose",
    "head",
    "l_shoulder",
    "l_elbow",
    "l_wrist",
    "r_shoulder",
    "r_elbow",
    "r_wrist",
)
H36M_PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
H36M_LEFT: tuple[int, ...] = (4, 5, 6, 11, 12, 13)
H36M_RIGHT: tuple[int, ...] = (1, 2, 3, 14, 15, 16)

COCO_NAMES: tuple[str, ...] = (
    "nose",
    "l_eye",
    "r_eye",
    "l_ear",
    "r_ear",
    "l_shoulder",
    "r_shoulder",
    "l_elbow",
    "r_elbow",
    "l_wrist",
    "r_wrist",
    "l_hip",
    "r_hip",
    "l_knee",
    "r_knee",
    "l_ankle",
    "r_ankle",
)
COCO_LEFT: tuple[int, ...] = (1, 3, 5, 7, 9, 11, 13, 15)
COCO_RIGHT: tuple[int, ...] = (2, 4, 6, 8, 10, 12, 14, 16)
COCO_BONES: tuple[tuple[int, int], ...] = (
    (15, 13),
    (13, 11),
    (16, 14),
    (14, 12),
    (11, 12),
    (5, 11),
    (6, 12),
    (5, 6),
    (5, 7),
    (6, 8),
    (7, 9),
    (8, 10),
    (1, 2),
    (0, 1),
    (0, 2),
    (1, 3),
    (2, 4),
    (3, 5),
    (4, 6),
)

# Joints that COCO and H36M share closely enough to compare 2D reprojections in the
# semi-supervised loss (limbs only: COCO hips sit lower/wider than H36M hips, but both
# are on the femur head; face points have no H36M counterpart).
COCO_TO_H36M_SHARED: tuple[tuple[int, int], ...] = (
    (5, 11),
    (6, 14),
    (7, 12),
    (8, 15),
    (9, 13),
    (10, 16),
    (11, 4),
    (12, 1),
    (13, 5),
    (14, 2),
    (15, 6),
    (16, 3),
)


@dataclass(frozen=True)
class Layout:
    """A 2D/3D joint layout: names plus the left/right lists flipping needs."""

    name: str
    names: tuple[str, ...]
    left: tuple[int, ...]
    right: tuple[int, ...]

    @property
    def num_joints(self) -> int:
        return len(self.names)

    def flip_permutation(self) -> np.ndarray:
        """Index array that swaps left and right joints (used with a negated x)."""
        perm = np.arange(self.num_joints)
        perm[list(self.left)] = self.right
        perm[list(self.right)] = self.left
        return perm


H36M = Layout("h36m", H36M_NAMES, H36M_LEFT, H36M_RIGHT)
COCO = Layout("coco", COCO_NAMES, COCO_LEFT, COCO_RIGHT)
LAYOUTS: dict[str, Layout] = {"h36m": H36M, "coco": COCO}


def get_layout(name: str) -> Layout:
    """Look up a layout by name, failing loudly on typos in config."""
    try:
        return LAYOUTS[name]
    except KeyError as err:
        raise ValueError(
            f"unknown joint layout {name!r}; expected one of {sorted(LAYOUTS)}"
        ) from err


def reprojection_pairs(input_layout: str) -> tuple[np.ndarray, np.ndarray]:
    """(2D input indices, 3D H36M indices) compared by the semi-supervised 2D loss."""
    if input_layout == "h36m":
        idx = np.arange(17)
        return idx, idx
    pairs = np.array(COCO_TO_H36M_SHARED)
    return pairs[:, 0], pairs[:, 1]


def coco_to_h36m_2d(kp: np.ndarray) -> np.ndarray:
    """Approximate H36M-17 2D joints from COCO-17 keypoints, shape (..., 17, 2).

    Only needed to run a model trained on H36M-layout 2D (e.g. Human3.6M CPN) on COCO
    tracks; a COCO-input model (VideoPose3D's in-the-wild recipe) does not need it.
    Pelvis = mid-hips, thorax = mid-shoulders, spine = midway, neck/nose = nose and
    head = nose pushed away from the thorax by the ear-to-nose distance.
    """
    kp = np.asarray(kp)
    out = np.empty_like(kp)
    mid_hip = (kp[..., 11, :] + kp[..., 12, :]) / 2
    mid_sh = (kp[..., 5, :] + kp[..., 6, :]) / 2
    out[..., 0, :] = mid_hip
    for h36m_idx, coco_idx in ((1, 12), (2, 14), (3, 16), (4, 11), (5, 13), (6, 15)):
        out[..., h36m_idx, :] = kp[..., coco_idx, :]
    out[..., 7, :] = (mid_hip + mid_sh) / 2
    out[..., 8, :] = mid_sh
    out[..., 9, :] = kp[..., 0, :]
    up = kp[..., 0, :] - mid_sh
    up_len = np.linalg.norm(up, axis=-1, keepdims=True)
    ear_mid = (kp[..., 3, :] + kp[..., 4, :]) / 2
    head_len = np.linalg.norm(kp[..., 0, :] - ear_mid, axis=-1, keepdims=True) + 1e-9
    out[..., 10, :] = kp[..., 0, :] + up / np.maximum(up_len, 1e-9) * head_len
    for h36m_idx, coco_idx in ((11, 5), (12, 7), (13, 9), (14, 6), (15, 8), (16, 10)):
        out[..., h36m_idx, :] = kp[..., coco_idx, :]
    return out


def bone_lengths(pos: np.ndarray) -> np.ndarray:
    """Lengths of the 16 H36M bones, shape (..., 16), for subject checks and plots."""
    parents = np.array(H36M_PARENTS[1:])
    return np.linalg.norm(pos[..., 1:, :] - pos[..., parents, :], axis=-1)
