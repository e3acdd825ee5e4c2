"""Procedural human motion on the H36M-17 skeleton, for the demo and the tests.

Human3.6M cannot be redistributed, so vidmine carries its own small stand-in: subjects
with their own proportions perform six parametric motions (walk, run, jump, squat, wave,
turn), forward kinematics turns joint angles into 3D, random cameras look at them, and
the 2D "detections" get pixel noise, outliers and dropped joints like a real keypoint
detector. Subjects are named like Human3.6M's so the same train/test split applies.

Body frame: +x = the subject's left, +y = forward, +z = up (world is z-up, metres).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from vidmine.lifter.camera import normalized_intrinsics, quaternion_from_matrix, world_to_camera
from vidmine.lifter.data import PoseDataset, dataset_from_arrays
from vidmine.lifter.skeleton import H36M_PARENTS

ACTIONS: tuple[str, ...] = ("Walk", "Run", "Jump", "Squat", "Wave", "Turn")
SUBJECTS: tuple[str, ...] = ("S1", "S5", "S6", "S7", "S8", "S9", "S11")

# Rest-pose bone vectors (child relative to parent, body frame, metres, 1.75 m person).
_REST = np.array(
    [
        [0.0, 0.0, 0.0],  # hip (root)
        [-0.13, 0.0, 0.0],  # r_hip
        [0.0, 0.0, -0.45],  # r_knee
        [0.0, 0.0, -0.44],  # r_foot
        [0.13, 0.0, 0.0],  # l_hip
        [0.0, 0.0, -0.45],  # l_knee
        [0.0, 0.0, -0.44],  # l_foot
        [0.0, 0.01, 0.23],  # spine
        [0.0, 0.0, 0.25],  # thorax
        [0.0, 0.04, 0.11],  # neck_nose
        [0.0, -0.03, 0.12],  # head
        [0.15, 0.0, -0.01],  # l_shoulder
        [0.0, 0.0, -0.28],  # l_elbow
        [0.0, 0.0, -0.25],  # l_wrist
        [-0.15, 0.0, -0.01],  # r_shoulder
        [0.0, 0.0, -0.28],  # r_elbow
        [0.0, 0.0, -0.25],  # r_wrist
    ]
)
# Bone groups that vary together between subjects (left/right stay symmetric).
_BONE_GROUP = np.array([0, 1, 2, 2, 1, 2, 2, 3, 3, 4, 4, 5, 6, 6, 5, 6, 6])
# Face points of the COCO layout in the neck_nose joint frame (nose, eyes, ears).
_FACE = np.array(
    [
        [0.0, 0.10, 0.03],
        [0.035, 0.085, 0.07],
        [-0.035, 0.085, 0.07],
        [0.075, 0.0, 0.05],
        [-0.075, 0.0, 0.05],
    ]
)
# COCO body joints taken from H36M joints: shoulders, elbows, wrists, hips, knees, ankles.
_COCO_FROM_H36M = (11, 14, 12, 15, 13, 16, 4, 1, 5, 2, 6, 3)
# Detector noise multiplier per COCO joint (face points are sharp, wrists/ankles are not).
_COCO_NOISE = np.array(
    [0.6, 0.6, 0.6, 0.8, 0.8, 1, 1, 1.3, 1.3, 1.7, 1.7, 1.2, 1.2, 1.3, 1.3, 1.6, 1.6]
)


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and difficulty of the synthetic set; defaults give a ~1 minute CPU demo."""

    subjects: tuple[str, ...] = SUBJECTS
    actions: tuple[str, ...] = ACTIONS
    sequences_per_action: int = 1
    frames: int = 200
    cameras: int = 2
    fps: float = 50.0
    noise_px: float = 2.0
    outlier_rate: float = 0.005
    drop_rate: float = 0.02
    seed: int = 0
    input_layout: str = "coco"


def _rot(axis: int, angle: np.ndarray) -> np.ndarray:
    """Stack of rotation matrices about a body axis (0=x, 1=y, 2=z), shape (T, 3, 3)."""
    angle = np.asarray(angle, dtype=np.float64)
    c, s = np.cos(angle), np.sin(angle)
    out = np.zeros(angle.shape + (3, 3))
    i, j = [a for a in range(3) if a != axis]
    out[..., axis, axis] = 1
    out[..., i, i], out[..., i, j], out[..., j, i], out[..., j, j] = c, -s, s, c
    return out


@dataclass
class _Angles:
    """Joint angles over time (radians); a motion fills the ones it uses."""

    t: np.ndarray
    yaw: np.ndarray
    speed: float = 0.0
    lean: float | np.ndarray = 0.0
    lift: float | np.ndarray = 0.0  # extra root height (jump flight)

    def __post_init__(self) -> None:
        zero = np.zeros_like(self.t)
        self.j: dict[str, np.ndarray] = {}
        for side in "lr":
            for name in ("hip_flex", "hip_abd", "knee", "sh_flex", "sh_abd", "elbow"):
                self.j[f"{name}_{side}"] = zero.copy()
        for name in ("spine_flex", "spine_twist", "neck_flex", "neck_turn"):
            self.j[name] = zero.copy()


def _gait(a: _Angles, freq: float, hip: float, knee: float, arm: float, elbow: float) -> None:
    phase = 2 * np.pi * freq * a.t
    for side, off in (("l", 0.0), ("r", np.pi)):
        a.j[f"hip_flex_{side}"] = hip * np.sin(phase + off)
        a.j[f"knee_{side}"] = -knee * np.clip(np.sin(phase + off + 1.2), 0, None)
        a.j[f"sh_flex_{side}"] = -arm * np.sin(phase + off)
        a.j[f"elbow_{side}"] = elbow + 0.3 * elbow * np.sin(phase + off)
        a.j[f"sh_abd_{side}"] += 0.08
    a.j["spine_twist"] = 0.1 * np.sin(phase)


def _curve(a: _Angles, rng: np.random.Generator) -> None:
    """Bend the path into an arc of 1.5-3 m radius so long takes stay in front of the cameras."""
    radius = rng.uniform(1.5, 3.0)
    a.yaw = a.yaw + rng.choice([-1, 1]) * a.speed / radius * a.t


def _walk(a: _Angles, rng: np.random.Generator) -> None:
    _gait(a, rng.uniform(0.8, 1.0), rng.uniform(0.35, 0.5), rng.uniform(0.7, 1.0), 0.3, 0.25)
    a.speed = rng.uniform(1.0, 1.5)
    _curve(a, rng)


def _run(a: _Angles, rng: np.random.Generator) -> None:
    _gait(a, rng.uniform(1.3, 1.6), rng.uniform(0.6, 0.8), rng.uniform(1.4, 1.8), 0.6, 1.4)
    a.speed = rng.uniform(2.0, 2.8)
    a.lean = rng.uniform(0.1, 0.25)
    _curve(a, rng)


def _jump(a: _Angles, rng: np.random.Generator) -> None:
    period = rng.uniform(1.0, 1.4)
    cyc = (a.t / period) % 1.0
    crouch = np.where(cyc < 0.5, np.sin(np.pi * cyc / 0.5), 0.0)
    flight = np.where(cyc >= 0.55, np.sin(np.pi * (cyc - 0.55) / 0.45), 0.0)
    depth = rng.uniform(0.6, 1.0)
    for side in "lr":
        a.j[f"hip_flex_{side}"] = depth * crouch
        a.j[f"knee_{side}"] = -2 * depth * crouch
        a.j[f"sh_flex_{side}"] = -0.6 * crouch + 2.6 * flight
        a.j[f"elbow_{side}"] = 0.3 * np.ones_like(a.t)
    a.j["spine_flex"] = 0.3 * depth * crouch
    a.lift = rng.uniform(0.2, 0.4) * flight


def _squat(a: _Angles, rng: np.random.Generator) -> None:
    depth = 0.5 - 0.5 * np.cos(2 * np.pi * a.t / rng.uniform(1.8, 2.6))
    amount = rng.uniform(1.1, 1.5)
    for side in "lr":
        a.j[f"hip_flex_{side}"] = amount * depth
        a.j[f"knee_{side}"] = -2 * amount * depth
        a.j[f"hip_abd_{side}"] = 0.15 * depth
        a.j[f"sh_flex_{side}"] = 1.4 * depth
    a.j["spine_flex"] = 0.45 * amount * depth


def _wave(a: _Angles, rng: np.random.Generator) -> None:
    side = "l" if rng.random() < 0.5 else "r"
    a.j[f"sh_abd_{side}"] = np.full_like(a.t, rng.uniform(2.2, 2.7))
    a.j[f"elbow_{side}"] = 0.7 + 0.5 * np.sin(2 * np.pi * rng.uniform(1.5, 2.5) * a.t)
    a.j["neck_turn"] = 0.2 * np.sin(2 * np.pi * 0.3 * a.t)
    sway = 0.05 * np.sin(2 * np.pi * 0.5 * a.t)
    for s, sign in (("l", 1), ("r", -1)):
        a.j[f"hip_abd_{s}"] = 0.05 + sign * sway


def _turn(a: _Angles, rng: np.random.Generator) -> None:
    _gait(a, 1.0, 0.15, 0.4, 0.1, 0.3)
    a.yaw = a.yaw + rng.choice([-1, 1]) * rng.uniform(1.5, 2.5) * a.t


_MOTIONS: dict[str, Callable[[_Angles, np.random.Generator], None]] = {
    "Walk": _walk,
    "Run": _run,
    "Jump": _jump,
    "Squat": _squat,
    "Wave": _wave,
    "Turn": _turn,
}


def _local_rotations(a: _Angles) -> np.ndarray:
    """Per-joint local rotation matrices (T, 17, 3, 3) from the angle table."""
    t = len(a.t)
    rot = np.broadcast_to(np.eye(3), (t, 17, 3, 3)).copy()
    rot[:, 0] = _rot(2, a.yaw) @ _rot(0, -np.broadcast_to(a.lean, a.t.shape))
    for side, hip, knee, sh, elbow, sign in (("l", 4, 5, 11, 12, -1), ("r", 1, 2, 14, 15, 1)):
        j = a.j
        rot[:, hip] = _rot(0, j[f"hip_flex_{side}"]) @ _rot(1, sign * j[f"hip_abd_{side}"])
        rot[:, knee] = _rot(0, j[f"knee_{side}"])
        rot[:, sh] = _rot(0, j[f"sh_flex_{side}"]) @ _rot(1, sign * j[f"sh_abd_{side}"])
        rot[:, elbow] = _rot(0, j[f"elbow_{side}"])
    rot[:, 7] = _rot(2, a.j["spine_twist"]) @ _rot(0, -a.j["spine_flex"])
    rot[:, 9] = _rot(2, a.j["neck_turn"]) @ _rot(0, -a.j["neck_flex"])
    return rot


def forward_kinematics(local: np.ndarray, bones: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Local rotations (T, 17, 3, 3) + bone vectors (17, 3) -> positions, global rotations.

    A joint's rotation turns the bones of its children, so the hip flexion lives on the
    hip joint and moves the knee. The root sits at the origin; callers translate it.
    """
    glob = np.empty_like(local)
    pos = np.zeros(local.shape[:2] + (3,))
    for j, parent in enumerate(H36M_PARENTS):
        if parent < 0:
            glob[:, j] = local[:, j]
            continue
        pos[:, j] = pos[:, parent] + glob[:, parent] @ bones[j]
        glob[:, j] = glob[:, parent] @ local[:, j]
    return pos, glob


def subject_bones(rng: np.random.Generator) -> np.ndarray:
    """Bone vectors of a random person: overall size plus per-group proportions."""
    scale = rng.normal(1.0, 0.06)
    group = rng.normal(1.0, 0.06, size=_BONE_GROUP.max() + 1)
    return _REST * scale * group[_BONE_GROUP][:, None]


def animate(action: str, bones: np.ndarray, frames: int, fps: float, rng: np.random.Generator):
    """World positions (T, 17, 3) and the neck-frame rotations (T, 3, 3) of one motion."""
    t = np.arange(frames) / fps
    a = _Angles(t=t, yaw=np.full(frames, rng.uniform(-np.pi, np.pi)))
    _MOTIONS[action](a, rng)
    pos, glob = forward_kinematics(_local_rotations(a), bones)
    heading = np.stack([-np.sin(a.yaw), np.cos(a.yaw), np.zeros(frames)], axis=-1)
    travel = np.cumsum(heading * a.speed / fps, axis=0)
    travel -= travel.mean(axis=0)  # keep the path centred on the origin for the cameras
    ground = -pos[:, [3, 6], 2].min(axis=1) + 0.02
    root = travel + np.stack([0 * t, 0 * t, ground + a.lift], axis=-1)
    return pos + root[:, None, :], glob[:, 9]


def coco_points_3d(pos: np.ndarray, neck_rot: np.ndarray) -> np.ndarray:
    """Virtual COCO-17 3D markers: face points from the head frame, body from H36M joints.

    COCO hips sit a little lower and wider than H36M's hip joint centres; this offset
    keeps the synthetic COCO input honest about that difference.
    """
    out = np.empty(pos.shape[:1] + (17, 3))
    out[:, :5] = pos[:, 9:10] + np.einsum("tij,kj->tki", neck_rot, _FACE)
    out[:, 5:] = pos[:, list(_COCO_FROM_H36M)]
    hip_axis = pos[:, 4] - pos[:, 1]
    hip_axis /= np.linalg.norm(hip_axis, axis=-1, keepdims=True)
    out[:, 11] += 0.03 * hip_axis - np.array([0, 0, 0.04])
    out[:, 12] += -0.03 * hip_axis - np.array([0, 0, 0.04])
    return out


def random_camera(rng: np.random.Generator, res: tuple[int, int] = (1000, 1000)) -> dict:
    """A camera 5-8 m from the origin, 0.8-2 m high, looking at the body's middle."""
    azim = rng.uniform(-np.pi, np.pi)
    dist = rng.uniform(5.0, 8.0)
    eye = np.array([dist * np.cos(azim), dist * np.sin(azim), rng.uniform(0.8, 2.0)])
    target = np.array([0, 0, 0.9]) + rng.normal(0, 0.2, 3)
    fwd = target - eye
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, [0, 0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    roll = rng.normal(0, 0.03)
    right, down = (
        np.cos(roll) * right + np.sin(roll) * down,
        np.cos(roll) * down - np.sin(roll) * right,
    )
    rot = np.stack([right, down, fwd], axis=1)  # camera axes as columns: camera -> world
    focal = rng.uniform(0.9, 1.3) * res[0]
    centre = np.array(res, dtype=np.float64) / 2 + rng.normal(0, 5, 2)
    return {
        "orientation": quaternion_from_matrix(rot),
        "translation": eye,
        "focal": np.array([focal, focal]),
        "centre": centre,
        "res": res,
    }


def project_pixels(cam_pts: np.ndarray, cam: dict) -> np.ndarray:
    """Pinhole projection of camera-space points to pixels."""
    return cam["focal"] * cam_pts[..., :2] / cam_pts[..., 2:] + cam["centre"]


def detector_noise(kp: np.ndarray, cfg: SyntheticConfig, rng: np.random.Generator) -> np.ndarray:
    """Gaussian jitter, rare large outliers and dropped joints (NaN), like a detector."""
    t, j = kp.shape[:2]
    scale = _COCO_NOISE[:j] if j == len(_COCO_NOISE) else np.ones(j)
    out = kp + rng.normal(0, cfg.noise_px, kp.shape) * scale[None, :, None]
    outliers = rng.random((t, j)) < cfg.outlier_rate
    out[outliers] += rng.normal(0, 25 * max(cfg.noise_px, 1), (int(outliers.sum()), 2))
    dropped = rng.random((t, j)) < cfg.drop_rate
    dropped[rng.integers(t)] = False  # every joint keeps at least one observation
    out[dropped] = np.nan
    return out


def generate(cfg: SyntheticConfig = SyntheticConfig()) -> PoseDataset:
    """Build the synthetic dataset: subjects x actions x sequences x cameras.

    The seed fixes everything, so tests, demo and benchmark all see the same data.
    """
    rng = np.random.default_rng(cfg.seed)
    cols: dict[str, list] = {k: [] for k in ("p2", "p3", "subj", "act", "intr", "res", "cam")}
    for subject in cfg.subjects:
        bones = subject_bones(rng)
        for action in cfg.actions:
            for rep in range(cfg.sequences_per_action):
                name = action if cfg.sequences_per_action == 1 else f"{action} {rep + 1}"
                world, neck = animate(action, bones, cfg.frames, cfg.fps, rng)
                markers = coco_points_3d(world, neck) if cfg.input_layout == "coco" else world
                for cam_idx in range(cfg.cameras):
                    cam = random_camera(rng)
                    pose_cam = world_to_camera(world, cam["orientation"], cam["translation"])
                    mk_cam = world_to_camera(markers, cam["orientation"], cam["translation"])
                    cols["p2"].append(detector_noise(project_pixels(mk_cam, cam), cfg, rng))
                    cols["p3"].append(pose_cam)
                    cols["subj"].append(subject)
                    cols["act"].append(name)
                    cols["cam"].append(cam_idx)
                    cols["res"].append(cam["res"])
                    cols["intr"].append(
                        normalized_intrinsics(cam["focal"], cam["centre"], *cam["res"])
                    )
    ds = dataset_from_arrays(
        cols["p2"],
        cols["p3"],
        cols["subj"],
        cols["act"],
        cols["intr"],
        cols["res"],
        input_layout=cfg.input_layout,
        cameras=cols["cam"],
        fps=cfg.fps,
        name="synthetic",
    )
    ds.meta["synthetic"] = cfg
    return ds


def synthetic_track(
    action: str = "Walk", frames: int = 120, seed: int = 0, res: tuple[int, int] = (1280, 720)
) -> tuple[np.ndarray, np.ndarray, dict]:
    """One COCO-17 pixel track with its camera-space 3D truth, for lifting tests/demos."""
    rng = np.random.default_rng(seed)
    world, neck = animate(action, subject_bones(rng), frames, 25.0, rng)
    cam = random_camera(rng, res)
    kp = project_pixels(
        world_to_camera(coco_points_3d(world, neck), cam["orientation"], cam["translation"]), cam
    )
    noisy = detector_noise(kp, SyntheticConfig(), rng)
    return noisy, world_to_camera(world, cam["orientation"], cam["translation"]), cam


def split_names(seq: Sequence[str] | str) -> tuple[str, ...]:
    """'S1,S5' or ['S1', 'S5'] -> ('S1', 'S5'); config and CLI accept either."""
    if isinstance(seq, str):
        return tuple(s.strip() for s in seq.split(",") if s.strip())
    return tuple(seq)
