"""Realism statistics of 3D human motion, to hold synthetic motion against motion capture.

All functions take world poses (T, 17, 3) on the Human3.6M-17 skeleton (z up, metres).
The published ranges the synthetic generator is tested against (tests/test_lifter_motion.py):

* knee flexion, walking + running: p5 3-12 deg, median 15-35 deg. Normative walking has
  ~5 deg at heel strike and terminal stance and ~60 deg swing peak (Perry & Burnfield, Gait
  Analysis, 2nd ed. 2010, ch. 7; Winter, The Biomechanics and Motor Control of Human Gait,
  1991); running ~40 deg at mid stance, 90+ deg in swing (Novacheck, Gait & Posture 7, 1998).
  The issue measured ~7 / 23 deg on real walking and running capture.
* head speed relative to the pelvis, locomotion: median 0.1-0.4 m/s (issue: ~0.20 m/s real;
  pelvis rotation +-4-5 deg, obliquity, trunk counter-rotation and head bob, Perry ch. 8).
* torso pitch (pelvis->thorax from vertical), locomotion: median 3-15 deg (a few degrees
  forward lean walking, ~10+ deg running; Thorstensson et al., Acta Physiol Scand 1984;
  Novacheck 1998). The issue measured ~6 deg on real capture.
* stance foot sliding < 0.05 m/s, the lowest body surface within +-3 cm of the floor
  outside flight phases (a planted foot does not move; bodies rest on the floor).

Joint centres are inside the body, so "height above the floor" subtracts a per-joint
contact radius (ankle above the sole, knee/hip/back/head surface) before comparing to 0.
"""

from __future__ import annotations

import numpy as np

# Distance from a joint centre to the skin that touches the floor (metres): ankle height
# above the sole (~7 cm, anthropometric tables, Winter 2009 ch. 4), knee cap, buttock/back,
# shoulder blade, back of the head, hand (wrist centre to palm).
CONTACT_RADIUS = np.array(
    [
        0.10,
        0.07,
        0.05,
        0.07,
        0.07,
        0.05,
        0.07,
        0.10,
        0.10,
        0.08,
        0.09,
        0.06,
        0.04,
        0.03,
        0.06,
        0.04,
        0.03,
    ]
)
# Actions with flight phases (both feet off the floor); every other one keeps a contact.
FLIGHT_ACTIONS = ("Run", "Jump", "Hop")
_LEGS = ((1, 2, 3), (4, 5, 6))  # (hip, knee, ankle) right, left
_ARMS = ((14, 15, 16), (11, 12, 13))


def _angle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    cos = (u * v).sum(-1) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1) + 1e-12)
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


def knee_flexion(pos: np.ndarray) -> np.ndarray:
    """Signed knee flexion (T, 2) in degrees, right then left; negative = hyperextended.

    The unsigned angle between thigh and shank is the flexion; its sign is that of the
    bend about the pelvis' left axis (a knee only bends backwards).
    """
    left_axis = pos[:, 4] - pos[:, 1]
    out = []
    for hip, knee, ankle in _LEGS:
        thigh, shank = pos[:, knee] - pos[:, hip], pos[:, ankle] - pos[:, knee]
        sign = np.where((np.cross(thigh, shank) * left_axis).sum(-1) > 0, -1.0, 1.0)
        out.append(sign * _angle(thigh, shank))
    return np.stack(out, axis=1)


def elbow_flexion(pos: np.ndarray) -> np.ndarray:
    """Unsigned elbow flexion (T, 2) in degrees (0 = straight arm)."""
    return np.stack(
        [_angle(pos[:, e] - pos[:, s], pos[:, w] - pos[:, e]) for s, e, w in _ARMS], axis=1
    )


def head_speed_rel_pelvis(pos: np.ndarray, fps: float) -> np.ndarray:
    """Speed (T-1,) in m/s of the head joint relative to the pelvis (root) joint."""
    rel = pos[:, 10] - pos[:, 0]
    return np.linalg.norm(np.diff(rel, axis=0), axis=-1) * fps


def torso_pitch(pos: np.ndarray) -> np.ndarray:
    """Angle (T,) in degrees of the pelvis -> thorax line from the vertical."""
    return _angle(pos[:, 8] - pos[:, 0], np.array([0.0, 0.0, 1.0]))


def lowest_point(pos: np.ndarray) -> np.ndarray:
    """Height (T,) of the lowest body surface (joint height minus its contact radius)."""
    return (pos[..., 2] - CONTACT_RADIUS).min(axis=1)


def stance_foot_speed(pos: np.ndarray, fps: float, contact: float = 0.02) -> np.ndarray:
    """Horizontal speeds (m/s) of the lower foot in frames where it touches the floor.

    A foot is in stance when it is the lower of the two ankles and its sole is within
    ``contact`` of the floor; a planted foot should not slide.
    """
    feet = pos[:, [3, 6]]
    sole = feet[..., 2] - CONTACT_RADIUS[[3, 6]]
    lower = sole.argmin(axis=1)
    idx = np.arange(len(pos))
    speed = np.linalg.norm(np.diff(feet[..., :2], axis=0), axis=-1) * fps  # (T-1, 2)
    pick = lower[:-1]
    planted = (sole[idx[:-1], pick] < contact) & (lower[1:] == pick)
    return speed[idx[:-1], pick][planted]


def summary(clips: dict[str, list[np.ndarray]], fps: float) -> dict[str, float]:
    """The statistics table over clips grouped by action name (each (T, 17, 3)).

    Locomotion = Walk, Run (and Turn for the head and torso figures, which are gait
    cycles too); the near-ground fraction and the floor contact cover every clip.
    """
    gait = [p for a in ("Walk", "Run") for p in clips.get(a, [])]
    loco = gait + clips.get("Turn", [])
    every = [p for ps in clips.values() for p in ps]
    knee = np.concatenate([knee_flexion(p).ravel() for p in gait])
    elbow = np.concatenate([elbow_flexion(p).ravel() for p in every])
    all_knee = np.concatenate([knee_flexion(p).ravel() for p in every])
    head = np.concatenate([head_speed_rel_pelvis(p, fps) for p in loco])
    pitch = np.concatenate([torso_pitch(p) for p in loco])
    pelvis = np.concatenate([p[:, 0, 2] for p in every])
    slide = np.concatenate([stance_foot_speed(p, fps) for p in clips.get("Walk", [])])
    low = np.concatenate([lowest_point(p) for p in every])
    grounded = [p for a, ps in clips.items() if a not in FLIGHT_ACTIONS for p in ps]
    floating = np.concatenate([lowest_point(p) > 0.03 for p in grounded])
    return {
        "knee_p5_deg": float(np.percentile(knee, 5)),
        "knee_median_deg": float(np.median(knee)),
        "knee_min_deg": float(all_knee.min()),
        "knee_max_deg": float(all_knee.max()),
        "elbow_max_deg": float(elbow.max()),
        "head_rel_pelvis_median_mps": float(np.median(head)),
        "torso_pitch_median_deg": float(np.median(pitch)),
        "near_ground_fraction": float((pelvis < 0.5).mean()),
        "walk_stance_slide_median_mps": float(np.median(slide)) if len(slide) else float("nan"),
        "walk_stance_slide_p90_mps": float(np.percentile(slide, 90))
        if len(slide)
        else float("nan"),
        "lowest_point_min_m": float(low.min()),
        "lowest_point_median_m": float(np.median(low)),
        "floating_fraction": float(floating.mean()),
    }
