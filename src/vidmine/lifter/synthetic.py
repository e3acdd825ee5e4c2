"""Procedural human motion on the H36M-17 skeleton, for the demo and the tests.

Human3.6M cannot be redistributed, so vidmine carries its own small stand-in: subjects
with their own proportions perform sixteen motions (locomotion, poses on or near the
floor, transitions, strikes, throws, jumps, dance), forward kinematics turns joint angles
into 3D, random cameras look at them, and the 2D "detections" get pixel noise, outliers
and dropped joints like a real keypoint detector. Subjects are named like Human3.6M's so
the same train/test split applies.

Realism (issue 21; measured by :mod:`vidmine.lifter.motion_stats`):

* gait joint angles follow normative curves (Perry & Burnfield 2010, Winter 1991 for
  walking, Novacheck 1998 for running), with pelvis rotation, obliquity and trunk lean;
* every joint angle is clipped to a table of anatomical limits (:data:`JOINT_LIMITS`);
* the body is placed on the floor: its lowest surface touches z = 0 except in the
  ballistic flight of runs, jumps and hops, and the planted limb (the lowest one, or the
  stance limbs of a crawl) does not slide - the root travels by the planted limb's
  displacement instead of a constant speed.

Body frame: +x = the subject's left, +y = forward, +z = up (world is z-up, metres).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from vidmine.lifter.camera import normalized_intrinsics, quaternion_from_matrix, world_to_camera
from vidmine.lifter.data import PoseDataset, dataset_from_arrays
from vidmine.lifter.motion_stats import CONTACT_RADIUS
from vidmine.lifter.skeleton import H36M_PARENTS

ACTIONS: tuple[str, ...] = (
    "Walk",
    "Run",
    "Jump",
    "Squat",
    "Wave",
    "Turn",
    "Sit",
    "Crouch",
    "Kneel",
    "Crawl",
    "LieDown",
    "Kick",
    "Punch",
    "Throw",
    "Hop",
    "Dance",
)
SUBJECTS: tuple[str, ...] = ("S1", "S5", "S6", "S7", "S8", "S9", "S11")
GRAVITY = 9.81

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

# Anatomical range of each joint angle in degrees (active range of motion, AAOS / Norkin
# & White, Measurement of Joint Motion, 2016; hip and shoulder rounded): a knee never
# hyperextends, an elbow never bends backwards. Every motion is clipped to it.
JOINT_LIMITS: dict[str, tuple[float, float]] = {
    "hip_flex": (-20.0, 130.0),  # + flexion (thigh forward), - extension
    "hip_abd": (-30.0, 45.0),  # + abduction (thigh outwards)
    "knee": (0.0, 150.0),  # flexion
    "sh_flex": (-60.0, 180.0),  # + flexion (arm forward/up), - extension
    "sh_abd": (-10.0, 180.0),  # + abduction (arm sideways/up)
    "elbow": (0.0, 150.0),  # flexion
    "spine_flex": (-30.0, 80.0),  # + forward bend of the thorax on the pelvis
    "spine_side": (-35.0, 35.0),  # lateral bend
    "spine_twist": (-45.0, 45.0),  # axial rotation
    "neck_flex": (-60.0, 70.0),  # + head down
    "neck_turn": (-80.0, 80.0),
}
_SIDED = ("hip_flex", "hip_abd", "knee", "sh_flex", "sh_abd", "elbow")
_CENTRAL = ("spine_flex", "spine_side", "spine_twist", "neck_flex", "neck_turn")
# Root orientation (degrees): pitch forward (90 = prone, -90 = supine), roll (left side
# down), pelvis rotation about the trunk axis (left side forward).
_ROOT = ("pitch", "roll", "pelvis_rot")
# Relaxed standing: knees and elbows a little bent, arms slightly out.
_NEUTRAL = {"hip_flex": 2.0, "knee": 4.0, "hip_abd": 3.0, "sh_abd": 6.0, "elbow": 12.0}
# Mirroring an asymmetric motion swaps sides and negates the lateral angles.
_ODD = ("spine_side", "spine_twist", "neck_turn", "roll", "pelvis_rot")


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and difficulty of the synthetic set; defaults give a ~1 minute CPU demo.

    Sixteen actions at 110 frames keep the default set (24,640 frames) within 1.5x of the
    six-action, 200-frame set it replaced.
    """

    subjects: tuple[str, ...] = SUBJECTS
    actions: tuple[str, ...] = ACTIONS
    sequences_per_action: int = 1
    frames: int = 110
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


def _angle_names() -> tuple[str, ...]:
    sided = tuple(f"{n}_{s}" for n in _SIDED for s in "lr")
    return sided + _CENTRAL + _ROOT


@dataclass
class _Angles:
    """Joint angles over time (degrees) plus what the floor placement needs.

    ``contact`` (T, 17) restricts which joints may be the planted one (None = the lowest
    surface); ``flight`` marks frames in the air; ``flight_speed`` is the forward speed
    (m/s) of a broad jump or hop while in the air.
    """

    t: np.ndarray
    yaw: np.ndarray
    j: dict[str, np.ndarray] = field(default_factory=dict)
    contact: np.ndarray | None = None
    flight: np.ndarray | None = None
    flight_speed: float = 0.0

    def __post_init__(self) -> None:
        for name in _angle_names():
            base = _NEUTRAL.get(name.rsplit("_", 1)[0] if name[-2:] in ("_l", "_r") else name)
            self.j.setdefault(name, np.full_like(self.t, base or 0.0))
        if self.flight is None:
            self.flight = np.zeros(self.t.shape, dtype=bool)


# --- gait: normative joint-angle curves ------------------------------------------------
# (percent of the gait cycle from the leg's initial contact, degrees).
# Walking, Perry & Burnfield, Gait Analysis 2nd ed. (2010) ch. 7-8, and Winter (1991):
# knee ~5 at initial contact, 15-20 loading-response peak (12 %), ~5 in terminal stance
# (40 %), 40 at toe-off (62 %), ~60 swing peak (73 %); hip +30 flexion at initial contact,
# -10 extension at 50 %, peak flexion ~33 in mid/terminal swing.
_WALK_KNEE = ((0, 5), (12, 18), (31, 8), (40, 5), (50, 10), (62, 40), (73, 60), (87, 25))
_WALK_HIP = ((0, 30), (15, 25), (38, 0), (50, -10), (62, 0), (75, 22), (87, 33))
# Running (jogging ~3 m/s), Novacheck, Gait & Posture 7 (1998) fig. 5: stance 0-39 %,
# knee ~18 at contact, ~40 mid-stance peak, ~95 swing peak; hip ~35 at contact, -8
# extension at toe-off, ~45 swing peak. Flight: 39-50 % and 89-100 % of the stride.
_RUN_KNEE = ((0, 18), (15, 40), (39, 18), (55, 60), (72, 95), (88, 40))
_RUN_HIP = ((0, 35), (20, 15), (39, -8), (50, -5), (70, 25), (85, 45))
_RUN_STANCE = 0.39


def _periodic(keys: tuple[tuple[float, float], ...], harmonics: int = 5) -> np.ndarray:
    """Fourier coefficients of the periodic curve through ``keys`` (first ``harmonics``).

    Linear interpolation through the literature key points, wrapped at 100 %, then
    truncated to a few harmonics: smooth, periodic and within ~1-2 deg of the points.
    """
    x = np.array([k[0] for k in keys] + [100.0])
    y = np.array([k[1] for k in keys] + [keys[0][1]])
    dense = np.interp(np.arange(200) / 2.0, x, y)
    c = np.fft.rfft(dense)[: harmonics + 1] / len(dense)
    c[1:] *= 2
    return c


def _eval(coef: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """A Fourier curve at ``phase`` (cycles, any real)."""
    k = np.arange(len(coef))
    return np.real(np.exp(2j * np.pi * np.outer(phase, k)) @ coef)


_CURVES = {
    "walk": (_periodic(_WALK_HIP), _periodic(_WALK_KNEE)),
    "run": (_periodic(_RUN_HIP), _periodic(_RUN_KNEE)),
}


@dataclass(frozen=True)
class _Gait:
    """One gait's parameters: cadence, amplitude scales, arm swing, trunk lean (deg)."""

    curves: str
    freq: float  # strides per second
    hip_scale: float = 1.0
    knee_scale: float = 1.0
    arm_gain: float = 0.6  # shoulder swing per degree of the opposite hip
    elbow: float = 20.0
    lean: float = 4.0


def _gait(a: _Angles, g: _Gait, rng: np.random.Generator) -> None:
    """Legs from the normative curves, arms in opposition, pelvis and trunk motion.

    Pelvis rotation +-4 deg, obliquity +-4 deg, trunk counter-rotation and a +-1.5 deg
    trunk pitch oscillation twice per stride (Perry & Burnfield ch. 8; Thorstensson
    1984); forward lean grows with speed (``lean``).
    """
    hip_c, knee_c = _CURVES[g.curves]
    phase = g.freq * a.t + rng.uniform(0, 1)
    for side, off in (("l", 0.0), ("r", 0.5)):
        hip = _eval(hip_c, phase + off)
        a.j[f"hip_flex_{side}"] = hip_c[0].real + g.hip_scale * (hip - hip_c[0].real)
        a.j[f"knee_{side}"] = 5 + g.knee_scale * (_eval(knee_c, phase + off) - 5)
    for side, other in (("l", "r"), ("r", "l")):
        opp = a.j[f"hip_flex_{other}"] - hip_c[0].real
        a.j[f"sh_flex_{side}"] = -8 + g.arm_gain * opp
        a.j[f"elbow_{side}"] = g.elbow + 0.3 * g.arm_gain * opp
        a.j[f"sh_abd_{side}"] = np.full_like(a.t, 8.0)
    cyc = 2 * np.pi * phase
    a.j["pelvis_rot"] = 4.0 * np.cos(cyc) * g.hip_scale
    a.j["spine_twist"] = -7.0 * np.cos(cyc) * g.hip_scale
    a.j["roll"] = -4.0 * np.sin(cyc + 0.6)
    a.j["spine_side"] = 0.6 * 4.0 * np.sin(cyc + 0.6)
    a.j["pitch"] = g.lean + 1.5 * np.cos(2 * cyc)
    a.j["neck_flex"] = 3.0 - 0.5 * 1.5 * np.cos(2 * cyc)
    for side, sign in (("l", 1), ("r", -1)):  # legs stay vertical under the tilted pelvis
        a.j[f"hip_abd_{side}"] = 3.0 + sign * a.j["roll"]
    if g.curves == "run":
        stance = ((phase % 1.0) < _RUN_STANCE) | (((phase + 0.5) % 1.0) < _RUN_STANCE)
        a.flight = ~stance


def _curve(a: _Angles, rng: np.random.Generator, speed: float) -> None:
    """Bend the path into an arc of 2-4 m radius so long takes stay in front of the cameras."""
    a.yaw = a.yaw + rng.choice([-1, 1]) * speed / rng.uniform(2.0, 4.0) * a.t


def _walk(a: _Angles, rng: np.random.Generator) -> None:
    # Cadence ~0.85-1.0 strides/s (Perry: 113 steps/min); lean 2-5 deg.
    g = _Gait("walk", rng.uniform(0.85, 1.0), rng.uniform(0.85, 1.1), rng.uniform(0.9, 1.1))
    _gait(a, _Gait(**{**g.__dict__, "lean": rng.uniform(2.0, 5.0)}), rng)
    _curve(a, rng, 1.2)


def _run(a: _Angles, rng: np.random.Generator) -> None:
    # Cadence ~1.3-1.5 strides/s, lean 8-14 deg (Novacheck 1998), elbows ~90 deg.
    g = _Gait(
        "run",
        rng.uniform(1.3, 1.5),
        rng.uniform(0.9, 1.1),
        rng.uniform(0.9, 1.15),
        arm_gain=1.0,
        elbow=rng.uniform(75, 95),
        lean=rng.uniform(8.0, 14.0),
    )
    _gait(a, g, rng)
    _curve(a, rng, 2.8)


def _turn(a: _Angles, rng: np.random.Generator) -> None:
    """Turning on the spot with short steps (the planted foot is the pivot)."""
    _gait(a, _Gait("walk", 1.0, 0.35, 0.6, arm_gain=0.3, lean=3.0), rng)
    a.yaw = a.yaw + rng.choice([-1, 1]) * rng.uniform(1.5, 2.5) * a.t


# --- scripted motions: key poses with smooth (C1) transitions --------------------------
# A key is (seconds to reach it, pose); a third element True marks that segment airborne.
_Key = tuple


def _pose(**deg: float) -> dict[str, float]:
    """A key pose: ``hip_flex=90`` sets both sides, ``hip_flex_l=90`` one side."""
    out: dict[str, float] = {}
    for name, value in deg.items():
        if name in _SIDED:
            out[f"{name}_l"] = out[f"{name}_r"] = value
        else:
            out[name] = value
    return out


def _mirror(pose: dict[str, float]) -> dict[str, float]:
    out = {}
    for name, value in pose.items():
        if name[-2:] in ("_l", "_r"):
            name = name[:-1] + ("r" if name[-1] == "l" else "l")
        out[name] = -value if name in _ODD else value
    return out


STAND = _pose()


def _script(a: _Angles, keys: list[_Key], rng: np.random.Generator) -> None:
    """Play ``keys`` (looping, from a random point) into the angle table.

    Durations and the size of every deviation from standing vary per take, and half of
    the takes are mirrored, so seven subjects do not perform one identical motion.
    """
    speed, size = rng.uniform(0.85, 1.2), rng.uniform(0.85, 1.1)
    poses = [STAND] + [k[1] for k in keys]
    if rng.random() < 0.5:
        poses = [_mirror(p) for p in poses]
    times = np.concatenate([[0.0], np.cumsum([k[0] * speed for k in keys])])
    airborne = np.array([False] + [len(k) > 2 and k[2] for k in keys])
    clock = (a.t + rng.uniform(0, times[-1])) % times[-1]
    seg = np.clip(np.searchsorted(times, clock, side="right") - 1, 0, len(keys) - 1)
    u = (clock - times[seg]) / (times[seg + 1] - times[seg])
    ease = u * u * (3 - 2 * u)
    for name in a.j:
        base = a.j[name][0]
        vals = np.array([p.get(name, base) for p in poses])
        if name not in _ROOT:  # the root stays exact: prone is prone
            vals = base + size * (vals - base)
        a.j[name] = vals[seg] + ease * (vals[seg + 1] - vals[seg])
    a.flight = airborne[seg + 1]


def _flight_time(height: float) -> float:
    """Seconds in the air of a ballistic jump of ``height`` metres (t = sqrt(8 h / g))."""
    return float(np.sqrt(8 * height / GRAVITY))


def _jump(a: _Angles, rng: np.random.Generator) -> None:
    """Countermovement jump, vertical (20-40 cm) or broad (forward in the air).

    Knees ~90-100 deg at the bottom of the countermovement and an arm swing (Linthorne,
    Am. J. Phys. 69, 2001); the landing is absorbed in ~60-70 deg of knee flexion.
    """
    broad = rng.random() < 0.4
    a.flight_speed = rng.uniform(2.0, 3.0) if broad else 0.0
    lean = 15 if broad else 0
    keys = [
        (0.5, STAND),
        (0.45, _pose(hip_flex=85, knee=95, pitch=25 + lean, spine_flex=15, sh_flex=-50)),
        (0.2, _pose(hip_flex=-5, knee=2, pitch=5 + lean, sh_flex=150, sh_abd=10, elbow=10)),
        (_flight_time(rng.uniform(0.2, 0.4)), _pose(hip_flex=25, knee=35, sh_flex=90), True),
        (0.25, _pose(hip_flex=65, knee=70, pitch=20, spine_flex=15, sh_flex=40, elbow=20)),
        (0.6, STAND),
    ]
    _script(a, keys, rng)


def _hop(a: _Angles, rng: np.random.Generator) -> None:
    """Repeated single-leg hops (5-10 cm, ~0.5 s per hop), in place or forward."""
    a.flight_speed = rng.uniform(0.0, 1.2)
    free = {"hip_flex_r": 30.0, "knee_r": 80.0, "sh_abd": 20.0, "elbow": 40.0}
    land = _pose(**free, pitch=10) | {"hip_flex_l": 30.0, "knee_l": 40.0}
    push = _pose(**free, pitch=5) | {"hip_flex_l": 0.0, "knee_l": 5.0}
    air = _pose(**free, pitch=5) | {"hip_flex_l": 10.0, "knee_l": 15.0}
    hop = [(0.18, land), (0.12, push), (_flight_time(rng.uniform(0.05, 0.1)), air, True)]
    _script(a, [(0.4, STAND), (0.3, air), *hop, *hop, *hop, (0.18, land), (0.4, STAND)], rng)


def _squat(a: _Angles, rng: np.random.Generator) -> None:
    """Parallel squat: knee ~120, hip ~105, trunk forward ~25 deg (Hemmerich et al., Clin.
    Biomech. 21, 2006); the hips move back over the planted feet."""
    down = _pose(hip_flex=105, knee=120, hip_abd=12, pitch=25, sh_flex=80, neck_flex=-15)
    _script(a, [(0.4, STAND), (1.0, down), (0.4, down), (1.0, STAND)], rng)


def _crouch(a: _Angles, rng: np.random.Generator) -> None:
    """Full crouch (knee ~145, hip ~120, Hemmerich 2006), looking around, weight shifts."""
    low = _pose(hip_flex=120, knee=145, hip_abd=15, pitch=40, sh_flex=50, elbow=30, neck_flex=-25)
    left = low | {"roll": 6.0, "neck_turn": 40.0, "hip_abd_l": 9.0, "hip_abd_r": 21.0}
    right = low | {"roll": -6.0, "neck_turn": -40.0, "hip_abd_l": 21.0, "hip_abd_r": 9.0}
    _script(a, [(0.4, STAND), (1.0, low), (0.8, left), (1.2, right), (0.8, low), (1.1, STAND)], rng)


def _sit(a: _Angles, rng: np.random.Generator) -> None:
    """Sit down on the floor (knees up, then legs out, hands behind) and stand up again."""
    squat = _pose(hip_flex=100, knee=120, pitch=25, spine_flex=15, sh_flex=60, elbow=20)
    knees_up = _pose(hip_flex=95, knee=45, pitch=-15, sh_flex=-35, sh_abd=10, elbow=5)
    long_sit = _pose(hip_flex=85, knee=5, pitch=-5, sh_flex=-35, sh_abd=10, elbow=5)
    keys = [(0.6, STAND), (1.0, squat), (0.8, knees_up), (0.7, long_sit), (1.5, long_sit)]
    _script(a, keys + [(0.7, knees_up), (0.8, squat), (1.0, STAND)], rng)


def _kneel(a: _Angles, rng: np.random.Generator) -> None:
    """Half-kneel, kneel upright, sit back on the heels, and up again."""
    half = {"hip_flex_r": 95.0, "knee_r": 95.0, "hip_flex_l": -5.0, "knee_l": 95.0}
    half = _pose(pitch=5, sh_flex=20) | half
    tall = _pose(hip_flex=0, knee=90, sh_flex=10, elbow=20)
    heels = _pose(hip_flex=85, knee=145, pitch=10, spine_flex=10, sh_flex=30, elbow=40)
    keys = [(0.5, STAND), (1.0, half), (0.8, tall), (1.0, heels), (1.5, heels), (1.0, tall)]
    _script(a, keys + [(0.8, half), (1.0, STAND)], rng)


_ALL_FOURS = _pose(pitch=85, hip_flex=90, knee=90, sh_flex=85, elbow=5, neck_flex=-50)
_KNEEL_TALL = _pose(hip_flex=0, knee=90, sh_flex=10, elbow=20)


def _lie_down(a: _Angles, rng: np.random.Generator) -> None:
    """Lie down and get up: prone via kneeling and all fours, or supine via sitting."""
    if rng.random() < 0.5:
        prone = _pose(pitch=90, hip_flex=0, knee=5, sh_flex=10, elbow=10, neck_flex=-20)
        path = [(1.0, _KNEEL_TALL), (0.9, _ALL_FOURS), (1.0, prone)]
        back = [(1.0, _ALL_FOURS), (0.9, _KNEEL_TALL), (1.0, STAND)]
        rest = prone
    else:
        squat = _pose(hip_flex=100, knee=120, pitch=25, spine_flex=15, sh_flex=60, elbow=20)
        sit = _pose(hip_flex=85, knee=5, pitch=-5, sh_flex=-35, sh_abd=10, elbow=5)
        rest = _pose(pitch=-90, hip_flex=0, knee=5, sh_flex=0, elbow=10, neck_flex=15)
        path = [(1.0, squat), (0.8, sit), (1.0, rest)]
        back = [(1.0, sit), (0.8, squat), (1.0, STAND)]
    _script(a, [(0.5, STAND), *path, (1.5, rest), *back], rng)


def _kick(a: _Angles, rng: np.random.Generator) -> None:
    """Front kick from a guard: chamber, extend to waist height, re-chamber."""
    ready = _pose(knee=12, sh_flex=30, elbow=100, sh_abd=15)
    chamber = ready | {"hip_flex_r": 80.0, "knee_r": 110.0, "knee_l": 15.0, "pitch": -5.0}
    kick = ready | {"hip_flex_r": 95.0, "knee_r": 5.0, "knee_l": 15.0, "pitch": -12.0}
    keys = [(0.5, ready), (0.35, chamber), (0.15, kick), (0.2, chamber), (0.35, ready)]
    _script(a, keys + [(0.5, STAND)], rng)


def _punch(a: _Angles, rng: np.random.Generator) -> None:
    """Boxing guard with jab and cross; the trunk twists into each punch."""
    guard = _pose(knee=18, hip_flex=12, hip_abd=10, pitch=8, sh_flex=45, sh_abd=25, elbow=125)
    jab = guard | {"sh_flex_l": 90.0, "sh_abd_l": 10.0, "elbow_l": 8.0, "spine_twist": 15.0}
    cross = guard | {"sh_flex_r": 90.0, "sh_abd_r": 10.0, "elbow_r": 8.0, "spine_twist": -25.0}
    cross |= {"pelvis_rot": -10.0}
    keys = [(0.4, guard), (0.12, jab), (0.2, guard), (0.15, cross), (0.25, guard)]
    _script(a, keys + [(0.12, jab), (0.2, guard), (0.4, STAND)], rng)


def _throw(a: _Angles, rng: np.random.Generator) -> None:
    """Overarm throw: wind-up, stride, release, follow-through (after Fleisig et al., J.
    Biomech. 1996: shoulder abducted ~90-100 deg, elbow ~90 at arm cocking)."""
    arm_back = {"sh_abd_r": 100.0, "sh_flex_r": -15.0, "elbow_r": 95.0}
    wind = _pose(knee=15, pitch=-5, spine_twist=30, spine_side=10) | arm_back
    wind |= {"sh_flex_l": 60.0, "sh_abd_l": 30.0, "hip_flex_l": 35.0, "knee_l": 30.0}
    stride = wind | {"hip_flex_l": 40.0, "knee_l": 20.0, "hip_flex_r": -15.0, "knee_r": 25.0}
    release = stride | {"spine_twist": -30.0, "pitch": 20.0, "spine_flex": 15.0}
    release |= {"sh_flex_r": 150.0, "sh_abd_r": 80.0, "elbow_r": 20.0, "sh_flex_l": -20.0}
    follow = release | {"spine_flex": 35.0, "pitch": 25.0, "spine_twist": -35.0}
    follow |= {"sh_flex_r": 70.0, "sh_abd_r": 30.0, "elbow_r": 30.0, "knee_r": 40.0}
    keys = [(0.6, STAND), (0.6, wind), (0.35, stride), (0.12, release), (0.3, follow)]
    _script(a, keys + [(0.8, STAND)], rng)


def _wave(a: _Angles, rng: np.random.Generator) -> None:
    """Standing wave: one arm up, the forearm swinging, a slow weight shift."""
    side = "l" if rng.random() < 0.5 else "r"
    a.j[f"sh_abd_{side}"] = np.full_like(a.t, rng.uniform(130, 160))
    a.j[f"elbow_{side}"] = 60 + 30 * np.sin(2 * np.pi * rng.uniform(1.5, 2.5) * a.t)
    a.j["neck_turn"] = 12 * np.sin(2 * np.pi * 0.3 * a.t)
    a.j["roll"] = 3 * np.sin(2 * np.pi * 0.5 * a.t)
    a.j["spine_side"] = -2 * np.sin(2 * np.pi * 0.5 * a.t)
    for s, sign in (("l", 1), ("r", -1)):
        a.j[f"hip_abd_{s}"] = 3 + sign * a.j["roll"]


def _crawl(a: _Angles, rng: np.random.Generator) -> None:
    """Hands-and-knees crawl, diagonal limbs together (trot-like, ~0.7-1.1 cycles/s).

    A limb pushes back in stance (the planted knees/hands carry the body) and is lifted
    forward in swing; only stance limbs may be the planted point.
    """
    phase = rng.uniform(0.7, 1.1) * a.t + rng.uniform(0, 1)
    amp = rng.uniform(15, 22)
    a.j["pitch"] = 85 + 3 * np.cos(4 * np.pi * phase)
    a.j["neck_flex"] = np.full_like(a.t, -50.0)
    a.j["spine_side"] = 6 * np.sin(2 * np.pi * phase)
    a.contact = np.zeros(a.t.shape + (17,), dtype=bool)
    for arm, leg, off, wrist, knee in (("l", "r", 0.0, 13, 2), ("r", "l", 0.5, 16, 5)):
        p = 2 * np.pi * (phase + off)
        swing = np.clip(-np.sin(p), 0, None)
        a.j[f"hip_flex_{leg}"] = 90 + amp * np.cos(p)
        a.j[f"knee_{leg}"] = 90 + 15 * swing
        a.j[f"sh_flex_{arm}"] = 85 + amp * np.cos(p)
        a.j[f"elbow_{arm}"] = 5 + 25 * swing
        a.contact[:, wrist] = a.contact[:, knee] = np.sin(p) >= 0


def _dance(a: _Angles, rng: np.random.Generator) -> None:
    """Dance to a 100-130 bpm beat: knee bounce, alternating steps, hip sway, arms, turns."""
    beat = 2 * np.pi * rng.uniform(1.7, 2.2) * a.t + rng.uniform(0, 2 * np.pi)
    arm_phase = rng.uniform(0, np.pi)
    a.j["roll"] = 5 * np.sin(beat / 2)
    a.j["spine_side"] = -4 * np.sin(beat / 2)
    a.j["spine_twist"] = 15 * np.sin(beat / 2 + 0.5)
    a.j["pitch"] = 5 + 3 * np.cos(beat)
    a.j["neck_turn"] = 10 * np.sin(beat / 2)
    a.j["neck_flex"] = 5 * np.sin(beat)
    for side, sign in (("l", 1), ("r", -1)):
        step = np.clip(sign * np.sin(beat / 2), 0, None) ** 2
        a.j[f"knee_{side}"] = 10 + 15 * (0.5 - 0.5 * np.cos(beat)) + 40 * step
        a.j[f"hip_flex_{side}"] = 8 + 25 * step
        a.j[f"hip_abd_{side}"] = 6 + sign * a.j["roll"]
        a.j[f"sh_abd_{side}"] = 45 + 35 * np.sin(beat / 2 + sign * arm_phase)
        a.j[f"sh_flex_{side}"] = 30 + 30 * np.sin(beat + sign * arm_phase)
        a.j[f"elbow_{side}"] = 70 + 30 * np.sin(beat)
    a.yaw = a.yaw + rng.uniform(-1.0, 1.0) * a.t


_MOTIONS: dict[str, Callable[[_Angles, np.random.Generator], None]] = {
    "Walk": _walk,
    "Run": _run,
    "Jump": _jump,
    "Squat": _squat,
    "Wave": _wave,
    "Turn": _turn,
    "Sit": _sit,
    "Crouch": _crouch,
    "Kneel": _kneel,
    "Crawl": _crawl,
    "LieDown": _lie_down,
    "Kick": _kick,
    "Punch": _punch,
    "Throw": _throw,
    "Hop": _hop,
    "Dance": _dance,
}


def clip_to_limits(j: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every joint angle clipped to :data:`JOINT_LIMITS` (a motion may ask for more)."""
    out = {}
    for name, value in j.items():
        base = name[:-2] if name[-2:] in ("_l", "_r") else name
        lo, hi = JOINT_LIMITS.get(base, (-np.inf, np.inf))
        out[name] = np.clip(value, lo, hi)
    return out


def _local_rotations(a: _Angles, angles: dict[str, np.ndarray]) -> np.ndarray:
    """Per-joint local rotation matrices (T, 17, 3, 3) from an angle table (degrees)."""
    j = {k: np.radians(v) for k, v in angles.items()}
    t = len(a.t)
    rot = np.broadcast_to(np.eye(3), (t, 17, 3, 3)).copy()
    rot[:, 0] = (
        _rot(2, a.yaw) @ _rot(0, -j["pitch"]) @ _rot(1, j["roll"]) @ _rot(2, j["pelvis_rot"])
    )
    for side, hip, knee, sh, elbow, sign in (("l", 4, 5, 11, 12, -1), ("r", 1, 2, 14, 15, 1)):
        rot[:, hip] = _rot(0, j[f"hip_flex_{side}"]) @ _rot(1, sign * j[f"hip_abd_{side}"])
        rot[:, knee] = _rot(0, -j[f"knee_{side}"])
        rot[:, sh] = _rot(0, j[f"sh_flex_{side}"]) @ _rot(1, sign * j[f"sh_abd_{side}"])
        rot[:, elbow] = _rot(0, j[f"elbow_{side}"])
    spine = _rot(2, j["spine_twist"]) @ _rot(1, j["spine_side"])
    rot[:, 7] = spine @ _rot(0, -j["spine_flex"])
    rot[:, 9] = _rot(2, j["neck_turn"]) @ _rot(0, -j["neck_flex"])
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


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) frame of every run of True in ``mask``."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1, strict=True))


def _root_height(rel: np.ndarray, flight: np.ndarray, fps: float) -> np.ndarray:
    """Root height that puts the lowest body surface on the floor; ballistic in flight.

    In the air the root follows a parabola under gravity between the take-off and the
    landing heights, never letting a body part below the floor.
    """
    grounded = -(rel[..., 2] - CONTACT_RADIUS).min(axis=1)
    z = grounded.copy()
    last = len(z) - 1
    for first, end in _runs(flight):
        off, land = max(first - 1, 0), min(end + 1, last)
        span = (land - off) / fps
        tau = (np.arange(first, end + 1) - off) / fps
        line = grounded[off] + (grounded[land] - grounded[off]) * tau / max(span, 1e-9)
        z[first : end + 1] = line + 0.5 * GRAVITY * tau * (span - tau)
    return np.maximum(z, grounded)


def _root_travel(rel: np.ndarray, a: _Angles, fps: float) -> np.ndarray:
    """Horizontal root path that keeps the planted point still (no foot sliding).

    Between two frames the root moves by minus the planted point's motion relative to
    the root; the planted point is the lowest body surface (or, for a crawl, the lowest
    stance limb). In the air the take-off velocity carries on, plus a broad jump's
    forward speed.
    """
    height = rel[..., 2] - CONTACT_RADIUS
    if a.contact is not None:
        height = np.where(a.contact, height, np.inf)
    anchor = height.argmin(axis=1)[:-1]
    frame = np.arange(len(anchor))
    step = -(rel[frame + 1, anchor, :2] - rel[frame, anchor, :2])
    air = a.flight[1:] | a.flight[:-1]
    src = np.maximum.accumulate(np.where(air, 0, frame))
    heading = np.stack([-np.sin(a.yaw[1:]), np.cos(a.yaw[1:])], axis=-1)
    step = np.where(air[:, None], step[src] + heading * a.flight_speed / fps, step)
    path = np.concatenate([np.zeros((1, 2)), np.cumsum(step, axis=0)])
    return path - path.mean(axis=0)  # keep the path centred on the origin for the cameras


@dataclass
class Motion:
    """One generated take: world joints, neck-frame rotations, flight frames, angles."""

    world: np.ndarray  # (T, 17, 3)
    neck: np.ndarray  # (T, 3, 3)
    flight: np.ndarray  # (T,) bool, both feet off the floor
    angles: dict[str, np.ndarray]  # degrees, after the joint limits


def simulate(
    action: str, bones: np.ndarray, frames: int, fps: float, rng: np.random.Generator
) -> Motion:
    """One take of ``action``: angles, limits, forward kinematics, floor placement."""
    t = np.arange(frames) / fps
    a = _Angles(t=t, yaw=np.full(frames, rng.uniform(-np.pi, np.pi)))
    _MOTIONS[action](a, rng)
    angles = clip_to_limits(a.j)
    rel, glob = forward_kinematics(_local_rotations(a, angles), bones)
    z = _root_height(rel, a.flight, fps)
    root = np.concatenate([_root_travel(rel, a, fps), z[:, None]], axis=1)
    return Motion(rel + root[:, None, :], glob[:, 9], a.flight.copy(), angles)


def animate(
    action: str, bones: np.ndarray, frames: int, fps: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """World positions (T, 17, 3) and the neck-frame rotations (T, 3, 3) of one motion."""
    m = simulate(action, bones, frames, fps, rng)
    return m.world, m.neck


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
