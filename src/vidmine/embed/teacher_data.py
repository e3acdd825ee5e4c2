"""VIPE*'s training examples, built as VPD builds them (``vipe_dataset/keypoint.py``,
``vipe_dataset/dataset_base.py``), from any source of 3D pose sequences.

One example is a 3D pose seen by two cameras (the positive pair the embedding must bring
together), a negative pose of the same sequence that really differs in 3D (some bone turns by
more than 45 degrees; up to ten draws, else the negative is marked invalid and its loss term
dropped), and the 3D targets the decoder must recover: per bone its unit direction, its angle
to the parent bone, and the unit direction from the hips to the bone's end, all in a canonical
body frame (hips at the origin, facing a fixed direction) so that the target does not depend on
the camera. Half the examples are mirrored: the 2D views through VPD's flipped normalisation,
the 3D target through the same left/right swap.

VPD builds its 3D targets on each dataset's own skeleton; vidmine builds them on COCO-17 3D
points (13 joints plus the hip and shoulder midpoints), the layout every vidmine source can
give: the synthetic motion's ``coco_points_3d``, and Human3.6M-17 or Kinetics pseudo-3D poses
mapped by :func:`coco_from_h36m`. The 2D views go through the synthetic module's perspective
cameras (``random_camera``), not VPD's orthographic ones, with VPD's random confidences.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vidmine.embed.pose2d import FLIP_ORDER, normalize_poses
from vidmine.lifter.camera import world_to_camera
from vidmine.lifter.data import H36M_TEST_SUBJECTS, H36M_TRAIN_SUBJECTS, PoseDataset
from vidmine.lifter.synthetic import (
    ACTIONS,
    SyntheticConfig,
    animate,
    coco_points_3d,
    project_pixels,
    random_camera,
    subject_bones,
)

MAX_NEGATIVE_TRIES = 10  # VPD's MAX_NEG_SAMPLE_TRIES
NEGATIVE_COS = math.cos(math.radians(45))  # a bone must turn by more than this to be negative
HIP_CENTRE, NECK = 17, 18  # extra points appended to the 17 COCO points
# (child, parent) points of each bone, rooted at the hip centre; the neck is the shoulder middle.
BONES_3D = (
    (NECK, HIP_CENTRE), (0, NECK),
    (5, NECK), (7, 5), (9, 7), (6, NECK), (8, 6), (10, 8),
    (11, HIP_CENTRE), (13, 11), (15, 13), (12, HIP_CENTRE), (14, 12), (16, 14),
)  # fmt: skip
# Index of each bone's parent bone for the joint-angle feature; bones leaving the root are
# compared with the spine, the spine with itself (cosine 1), as VPD does.
_PARENT_BONE = tuple(
    next((j for j, (c, _) in enumerate(BONES_3D) if c == parent), 0) for _, parent in BONES_3D
)
TARGET_SHAPE = (len(BONES_3D), 7)  # direction (3), angle to the parent (1), root direction (3)
# COCO-17 joints from Human3.6M-17 (nose from the neck/nose joint; eyes and ears, which VIPE*
# ignores, on the nose).
_COCO_FROM_H36M = (9, 9, 9, 9, 9, 11, 14, 12, 15, 13, 16, 4, 1, 5, 2, 6, 3)
_TORSO_3D = (5, 6, 11, 12, HIP_CENTRE, NECK)


@dataclass(frozen=True)
class Sequence3d:
    """One take: COCO-17 3D points (T, 17, 3) in metres in a z-up world, and its labels."""

    points: np.ndarray
    subject: str
    action: str


@dataclass(frozen=True)
class Examples:
    """A batch of VIPE* examples (N of each), already normalised as the encoder reads them."""

    pose1: np.ndarray  # (N, 13 or 25, 3)
    pose2: np.ndarray
    pose_neg: np.ndarray
    neg_valid: np.ndarray  # (N,) float32, 0 where no negative passed the 3D test
    target_3d: np.ndarray  # (N, 14, 7)
    # Where each example came from (VPD's debug_info): indices into the sampler's frames
    # (all takes concatenated) and whether the anchor / the negative is mirrored.
    frames: np.ndarray
    neg_frames: np.ndarray
    flips: np.ndarray
    neg_flips: np.ndarray


def sequences_from_arrays(
    poses_3d: Sequence[np.ndarray], subjects: Sequence[str], actions: Sequence[str]
) -> list[Sequence3d]:
    """Plain arrays (COCO-17 3D points per take, z up) as the teacher's training input."""
    if not len(poses_3d) == len(subjects) == len(actions):
        raise ValueError("poses_3d, subjects and actions must have one entry per sequence")
    out = []
    for i, (points, subject, action) in enumerate(zip(poses_3d, subjects, actions, strict=True)):
        pts = np.asarray(points, dtype=np.float64)
        if pts.ndim != 3 or pts.shape[1:] != (17, 3) or len(pts) == 0:
            raise ValueError(
                f"sequence {i} ({subject}, {action}): points {pts.shape}, not (T, 17, 3)"
            )
        if not np.isfinite(pts).all():
            raise ValueError(f"sequence {i} ({subject}, {action}): points are not all finite")
        out.append(Sequence3d(pts, str(subject), str(action)))
    return out


def coco_from_h36m(points: np.ndarray) -> np.ndarray:
    """Human3.6M-17 joints (..., 17, 3) as COCO-17 points (eyes and ears on the nose)."""
    return np.asarray(points)[..., list(_COCO_FROM_H36M), :]


def sequences_from_pose_dataset(dataset: PoseDataset) -> list[Sequence3d]:
    """The 3D takes of a lifter :class:`PoseDataset` (Human3.6M, Kinetics pseudo-3D, ...).

    Those hold each take once per camera in camera space (x right, y down, z forward); one copy
    per (subject, action) is kept, turned z-up (x, z, -y), which is the world's up for the level
    cameras these sources have, and mapped to COCO points.
    """
    seen, out = set(), []
    for seq in dataset.sequences:
        if seq.pos3d is None or (seq.subject, seq.action) in seen:
            continue
        seen.add((seq.subject, seq.action))
        cam = np.asarray(seq.pos3d, dtype=np.float64)
        z_up = np.stack([cam[..., 0], cam[..., 2], -cam[..., 1]], axis=-1)
        out.append(Sequence3d(coco_from_h36m(z_up), seq.subject, seq.action))
    if not out:
        raise ValueError(f"{dataset.name}: no sequence has 3D poses")
    return out


def synthetic_sequences(
    subjects: Sequence[str] = H36M_TRAIN_SUBJECTS + H36M_TEST_SUBJECTS,
    actions: Sequence[str] = ACTIONS,
    frames: int = 110,
    sequences_per_action: int = 1,
    seed: int = 0,
) -> list[Sequence3d]:
    """vidmine's procedural motion as 3D takes: each subject its own body, each action its own
    take (the same generator the lifter trains on, without its cameras)."""
    rng = np.random.default_rng(seed)
    fps = SyntheticConfig.fps
    out = []
    for subject in subjects:
        bones = subject_bones(rng)
        for action in actions:
            for rep in range(sequences_per_action):
                name = action if sequences_per_action == 1 else f"{action} {rep + 1}"
                world, neck = animate(action, bones, frames, fps, rng)
                out.append(Sequence3d(coco_points_3d(world, neck), subject, name))
    return out


def split_by_subject(
    sequences: Sequence[Sequence3d],
    train: Sequence[str] = H36M_TRAIN_SUBJECTS,
    test: Sequence[str] = H36M_TEST_SUBJECTS,
) -> tuple[list[Sequence3d], list[Sequence3d]]:
    """The lifter's split: train and held-out subjects never share a take."""
    overlap = set(train) & set(test)
    if overlap:
        raise ValueError(f"subjects {sorted(overlap)} are in both the train and the test split")
    return (
        [s for s in sequences if s.subject in set(train)],
        [s for s in sequences if s.subject in set(test)],
    )


def sequences_fingerprint(sequences: Sequence[Sequence3d]) -> str:
    """A short hash of the training takes: a resume file is only reused on the same data."""
    digest = hashlib.sha1()
    for s in sequences:
        digest.update(f"{s.subject}/{s.action}/{s.points.shape}".encode())
        digest.update(np.ascontiguousarray(s.points, dtype=np.float32).tobytes())
    return digest.hexdigest()[:16]


# --------------------------------------------------------------------- 3D targets
def with_midpoints(points: np.ndarray) -> np.ndarray:
    """(..., 17, 3) COCO points plus the hip centre and the neck (shoulder midpoint)."""
    hips = (points[..., 11:12, :] + points[..., 12:13, :]) / 2
    neck = (points[..., 5:6, :] + points[..., 6:7, :]) / 2
    return np.concatenate([points, hips, neck], axis=-2)


def canonical_poses(points: np.ndarray) -> np.ndarray:
    """(T, 17, 3) z-up poses turned into their body frames: hips at the origin, the torso
    facing -y (the nose ahead of the neck at -y, the left shoulder at +x), z still up;
    (T, 19, 3) with the midpoints. Only the heading is removed (a rotation about z), so a
    bending or lying body keeps its pitch and roll, as in VPD.

    The facing is the torso plane's normal (VPD's ``get_canonical_orientation``): for a torso
    leaning more than 45 degrees (lying, crawling) it blends over to the spine, which then
    points the way a standing body would face, so a prone body still has a defined heading.
    """
    pts = with_midpoints(np.asarray(points, dtype=np.float64))
    pts = pts - pts[:, HIP_CENTRE : HIP_CENTRE + 1]
    torso = pts[:, list(_TORSO_3D)]
    _, _, axes = np.linalg.svd(torso - torso.mean(axis=1, keepdims=True))
    hint_forward = np.cross(pts[:, 5], pts[:, 6])  # left x right shoulder, from the hips
    normal, spine_axis = axes[:, 2], axes[:, 0]
    forward = normal * np.sign(np.sum(normal * hint_forward, axis=1) + 1e-12)[:, None]
    up = spine_axis * np.sign(np.sum(spine_axis * pts[:, NECK], axis=1) + 1e-12)[:, None]
    pitch = np.degrees(np.arcsin(np.clip(forward[:, 2], -1.0, 1.0)))
    blend = np.clip((np.abs(pitch) - 45.0) / 30.0, 0.0, 1.0)[:, None]
    spine = np.where(pitch[:, None] > 0, -up, up)
    heading = blend * spine + (1.0 - blend) * forward
    heading[:, 2] = 0.0
    norm = np.linalg.norm(heading, axis=1, keepdims=True)
    heading = np.where(norm > 1e-9, heading / np.maximum(norm, 1e-9), [0.0, 1.0, 0.0])
    z_axis = np.broadcast_to([0.0, 0.0, 1.0], heading.shape)
    lateral = np.cross(z_axis, heading)
    frame = np.stack([lateral, heading, z_axis], axis=2)  # columns: the body's axes
    return pts @ frame


def canonical_pose(points: np.ndarray) -> np.ndarray:
    """One (17, 3) pose in its body frame, (19, 3) (see :func:`canonical_poses`)."""
    return canonical_poses(np.asarray(points)[None])[0]


def mirror_canonical(canonical: np.ndarray) -> np.ndarray:
    """The left/right mirror of canonical (..., 19, 3) poses: sides swapped, x negated."""
    order = list(FLIP_ORDER) + [HIP_CENTRE, NECK]
    out = canonical[..., order, :].copy()
    out[..., 0] *= -1
    return out


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(n > 1e-9, n, 1.0)


def bone_directions(canonical: np.ndarray) -> np.ndarray:
    """(..., 14, 3) unit vectors of the bones of (..., 19, 3) canonical poses."""
    child, parent = np.array(BONES_3D).T
    return _unit(canonical[..., child, :] - canonical[..., parent, :])


def target_features(canonical: np.ndarray) -> np.ndarray:
    """VPD's 3D decoder target (``get_3d_features``) of canonical (..., 19, 3) poses,
    (..., 14, 7): each bone's
    unit direction, its angle to the parent bone mapped to [-0.5, 0.5], and the unit direction
    from the hips to its end point (extremities included, as VPD trains by default)."""
    dirs = bone_directions(canonical)
    cos = np.clip(np.sum(dirs * dirs[..., list(_PARENT_BONE), :], axis=-1), -1.0, 1.0)
    cos[..., 0] = 1.0
    angle = np.arccos(cos)[..., None] / np.pi - 0.5
    child = np.array(BONES_3D)[:, 0]
    root_dirs = _unit(canonical[..., child, :])
    return np.concatenate([dirs, angle, root_dirs], axis=-1).astype(np.float32)


def is_negative(dirs_a: np.ndarray, dirs_b: np.ndarray) -> bool:
    """VPD's 3D negative test: some bone of the two poses differs by more than 45 degrees."""
    return bool(np.min(np.sum(dirs_a * dirs_b, axis=1)) <= NEGATIVE_COS)


# --------------------------------------------------------------------- 2D views
def project_views(
    points: np.ndarray, cameras: Sequence[dict], rng: np.random.Generator, noise_px: float = 2.0
) -> np.ndarray:
    """(N, 17, 3) z-up poses, pose i through ``cameras[i]``: (N, 17, 3) pixels and confidences.

    Each body is moved over the origin first (the camera follows it, as a tracked crop does).
    Confidences are VPD's random ones for projected poses: uniform in [0.5, 1), eyes and ears 0.
    """
    pts = np.asarray(points, dtype=np.float64).copy()
    pts[..., :2] -= (pts[:, 11:12, :2] + pts[:, 12:13, :2]) / 2
    orientation = np.stack([c["orientation"] for c in cameras])[:, None]
    translation = np.stack([c["translation"] for c in cameras])[:, None]
    lens = {k: np.stack([c[k] for c in cameras])[:, None] for k in ("focal", "centre")}
    xy = project_pixels(world_to_camera(pts, orientation, translation), lens)
    xy += rng.normal(0.0, noise_px, xy.shape)
    conf = rng.uniform(0.5, 1.0, xy.shape[:2])
    conf[:, 1:5] = 0.0
    return np.concatenate([xy, conf[..., None]], axis=-1)


def view_2d(
    points: np.ndarray, camera: dict, rng: np.random.Generator, noise_px: float = 2.0
) -> np.ndarray:
    """One (17, 3) z-up pose through ``camera`` (see :func:`project_views`)."""
    return project_views(np.asarray(points)[None], [camera], rng, noise_px)[0]


class ExampleSampler:
    """Draws VIPE* examples from 3D takes; everything random comes from the caller's rng, so
    an epoch seeded by (seed, epoch) is drawn again identically after a resume.

    Each epoch draws a fresh pool of ``cameras_per_draw`` random cameras (the synthetic module's
    ``random_camera``), and every view picks one of them: over an epoch of VPD's size that is
    thousands of viewpoints, and over a training run hundreds of thousands.
    """

    def __init__(
        self,
        sequences: Sequence[Sequence3d],
        embed_bones: bool = False,
        noise_px: float = 2.0,
        cameras_per_draw: int = 512,
    ) -> None:
        if not sequences:
            raise ValueError("no 3D sequences to draw VIPE* examples from")
        if cameras_per_draw < 2:
            raise ValueError("a positive pair needs two cameras: cameras_per_draw >= 2")
        self.sequences = list(sequences)
        self.embed_bones, self.noise_px = embed_bones, noise_px
        self.cameras_per_draw = cameras_per_draw
        self.points = np.concatenate([s.points for s in sequences])  # (all frames, 17, 3)
        self._starts = np.cumsum([0] + [len(s.points) for s in sequences])
        canonical = canonical_poses(self.points)
        self._canonical = (canonical, mirror_canonical(canonical))  # plain, mirrored
        self._dirs = tuple(bone_directions(c) for c in self._canonical)

    def _negative(self, seq: int, anchor_dirs: np.ndarray, rng: np.random.Generator):
        """A frame index (into all frames) and flip of take ``seq`` that passes the 3D
        negative test, or None after ten tries."""
        for _ in range(MAX_NEGATIVE_TRIES):
            frame = int(rng.integers(self._starts[seq], self._starts[seq + 1]))
            flip = int(rng.integers(2))
            if is_negative(self._dirs[flip][frame], anchor_dirs):
                return frame, flip
        return None

    def draw(self, count: int, rng: np.random.Generator) -> Examples:
        """``count`` examples: a random take, frame and flip each, two different random cameras."""
        cameras = [random_camera(rng) for _ in range(self.cameras_per_draw)]
        seqs = rng.integers(len(self.sequences), size=count)
        frames = self._starts[seqs] + (rng.random(count) * np.diff(self._starts)[seqs]).astype(int)
        flips = rng.integers(2, size=count)
        anchor = np.where(
            flips[:, None, None], self._canonical[1][frames], self._canonical[0][frames]
        )
        anchor_dirs = np.where(flips[:, None, None], self._dirs[1][frames], self._dirs[0][frames])
        neg_frames, neg_flips, valid = frames.copy(), flips.copy(), np.zeros(count, np.float32)
        for i in range(count):
            found = self._negative(int(seqs[i]), anchor_dirs[i], rng)
            if found is not None:  # else the anchor stands in, masked out by neg_valid
                neg_frames[i], neg_flips[i], valid[i] = found[0], found[1], 1.0
        pick = rng.integers(len(cameras), size=(3, count))
        pick[1] = (pick[0] + 1 + rng.integers(len(cameras) - 1, size=count)) % len(cameras)
        views = [
            project_views(self.points[f], [cameras[c] for c in cams], rng, self.noise_px)
            for f, cams in ((frames, pick[0]), (frames, pick[1]), (neg_frames, pick[2]))
        ]
        return Examples(
            self._normalize(views[0], flips),
            self._normalize(views[1], flips),
            self._normalize(views[2], neg_flips),
            valid,
            target_features(anchor),
            frames,
            neg_frames,
            flips.astype(bool),
            neg_flips.astype(bool),
        )

    def _normalize(self, views: np.ndarray, flips: np.ndarray) -> np.ndarray:
        """VPD's 2D normalisation of each view, flipped where its example is mirrored."""
        plain = normalize_poses(views, bones=self.embed_bones)
        mirrored = normalize_poses(views, flip=True, bones=self.embed_bones)
        return np.where(flips[:, None, None].astype(bool), mirrored, plain)


# --------------------------------------------------------------------- held-out views
def held_out_cameras(count: int = 4, seed: int = 1_000_003) -> list[dict]:
    """Cameras for evaluation, from their own seed: training draws fresh random cameras from
    the training seed, so these positions are never seen in training."""
    rng = np.random.default_rng(seed)
    return [random_camera(rng) for _ in range(count)]


def retrieval_views(
    sequences: Sequence[Sequence3d],
    cameras: Sequence[dict],
    frame_stride: int = 10,
    seed: int = 0,
    noise_px: float = 2.0,
) -> np.ndarray:
    """Every ``frame_stride``-th pose of each take seen by each camera: (P, C, 17, 3) pixels
    and confidences, the input of :func:`vidmine.embed.teacher.cross_view_retrieval`."""
    if len(cameras) < 2:
        raise ValueError("cross-view retrieval needs at least two cameras")
    rng = np.random.default_rng(seed)
    poses = np.concatenate([s.points[::frame_stride] for s in sequences])
    views = [project_views(poses, [cam] * len(poses), rng, noise_px) for cam in cameras]
    return np.stack(views, axis=1)
