"""The synthetic motion holds up against published motion-capture statistics (issue 21).

The ranges (see vidmine.lifter.motion_stats for the references): knee flexion over
walking + running p5 3-12 deg and median 15-35 deg (Perry & Burnfield 2010; Winter 1991;
Novacheck 1998; real capture ~7 / 23 deg); head speed relative to the pelvis in
locomotion, median 0.1-0.4 m/s (real ~0.20); torso pitch in locomotion, median 3-15 deg
(real ~6); some frames near the floor; a planted walking foot slides < 0.05 m/s; the lowest
body surface on the floor (+-3 cm) outside flight; no joint beyond its anatomical range.
"""

from __future__ import annotations

import numpy as np
import pytest

from vidmine.lifter import motion_stats as ms
from vidmine.lifter.synthetic import ACTIONS, SyntheticConfig, animate, subject_bones


@pytest.fixture(scope="module")
def clips() -> dict[str, list[np.ndarray]]:
    """The default dataset's motions: every subject performs every action."""
    cfg = SyntheticConfig()
    rng = np.random.default_rng(cfg.seed)
    out: dict[str, list[np.ndarray]] = {}
    for _ in cfg.subjects:
        bones = subject_bones(rng)
        for action in cfg.actions:
            out.setdefault(action, []).append(animate(action, bones, cfg.frames, cfg.fps, rng)[0])
    return out


@pytest.fixture(scope="module")
def stats(clips) -> dict[str, float]:
    return ms.summary(clips, SyntheticConfig.fps)


def test_the_action_set_reaches_the_floor_and_keeps_the_old_names():
    assert {"Walk", "Run", "Jump", "Squat", "Wave", "Turn"} <= set(ACTIONS)
    assert {"Sit", "Crawl", "LieDown", "Kneel", "Kick", "Hop", "Dance"} <= set(ACTIONS)


def test_knees_bend_like_real_gait(stats):
    assert 3 <= stats["knee_p5_deg"] <= 12, stats
    assert 15 <= stats["knee_median_deg"] <= 35, stats


def test_head_moves_relative_to_the_pelvis(stats):
    assert 0.1 <= stats["head_rel_pelvis_median_mps"] <= 0.4, stats


def test_torso_leans_in_locomotion(stats):
    assert 3 <= stats["torso_pitch_median_deg"] <= 15, stats


def test_some_poses_are_near_the_floor(stats, clips):
    assert stats["near_ground_fraction"] >= 0.05, stats
    lying = np.concatenate([ms.torso_pitch(p) > 70 for p in clips["LieDown"] + clips["Crawl"]])
    assert lying.mean() > 0.1  # the body is horizontal, not a squat


def test_planted_feet_do_not_slide(stats):
    assert stats["walk_stance_slide_median_mps"] < 0.05, stats
    assert stats["walk_stance_slide_p90_mps"] < 0.05, stats


def test_bodies_stand_on_the_floor(stats):
    assert stats["lowest_point_min_m"] >= -0.03, stats  # nothing sinks into the floor
    assert abs(stats["lowest_point_median_m"]) <= 0.03, stats
    assert stats["floating_fraction"] == 0.0, stats  # outside runs, jumps and hops


def test_no_joint_leaves_its_anatomical_range(stats):
    assert stats["knee_min_deg"] >= -1.0, stats  # never hyperextended
    assert stats["knee_max_deg"] <= 150.5, stats
    assert stats["elbow_max_deg"] <= 150.5, stats


def test_only_flight_leaves_the_floor_and_angles_stay_in_their_limits():
    from vidmine.lifter.synthetic import JOINT_LIMITS, simulate

    rng = np.random.default_rng(5)
    bones = subject_bones(rng)
    for action in ACTIONS:
        m = simulate(action, bones, 150, 50.0, rng)
        low = ms.lowest_point(m.world)
        assert np.abs(low[~m.flight]).max() <= 0.03, action
        assert (low[m.flight] >= -0.03).all(), action
        for name, value in m.angles.items():
            lo, hi = JOINT_LIMITS.get(name.removesuffix("_l").removesuffix("_r"), (-1e9, 1e9))
            assert lo <= value.min() and value.max() <= hi, (action, name)
    jump = simulate("Jump", bones, 300, 50.0, np.random.default_rng(0))
    assert jump.flight.any() and ms.lowest_point(jump.world).max() > 0.1  # a real jump
