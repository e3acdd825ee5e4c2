"""Pose metrics against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidmine.lifter.metrics import (
    ErrorAccumulator,
    mean_velocity_error,
    mpjpe,
    mpjpe_loss,
    n_mpjpe,
    n_mpjpe_loss,
    p_mpjpe,
    weighted_mpjpe_loss,
)


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


@pytest.fixture
def poses() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(5, 17, 3))


def test_mpjpe_of_constant_offset_is_offset_length(poses):
    offset = np.array([0.03, 0.0, 0.04])  # 5 cm
    assert mpjpe(poses + offset, poses) == pytest.approx(0.05)


def test_mpjpe_hand_case():
    target = np.zeros((1, 2, 3))
    pred = np.array([[[3.0, 4.0, 0.0], [0.0, 0.0, 1.0]]])
    assert mpjpe(pred, target) == pytest.approx((5 + 1) / 2)


def test_p_mpjpe_removes_rotation_scale_translation(poses):
    rot = _rotation(np.array([1.0, 2.0, 0.5]), 0.9)
    pred = 1.7 * poses @ rot.T + np.array([0.3, -2.0, 5.0])
    assert mpjpe(pred, poses) > 0.5
    assert p_mpjpe(pred, poses) == pytest.approx(0.0, abs=1e-9)


def test_p_mpjpe_does_not_undo_a_reflection(poses):
    mirrored = poses * np.array([-1.0, 1.0, 1.0])
    # the best proper rotation cannot map a point cloud onto its mirror image
    assert p_mpjpe(mirrored, poses) > 0.1
    assert p_mpjpe(mirrored, poses) <= mpjpe(mirrored, poses)


def test_n_mpjpe_removes_scale_only(poses):
    assert n_mpjpe(2.5 * poses, poses) == pytest.approx(0.0, abs=1e-12)
    rot = _rotation(np.array([0.0, 0.0, 1.0]), 0.5)
    assert n_mpjpe(poses @ rot.T, poses) > 0.1


def test_velocity_error_ignores_constant_offset_but_not_jitter(poses):
    assert mean_velocity_error(poses + 1.0, poses) == pytest.approx(0.0)
    jitter = poses.copy()
    jitter[2] += np.array([0.0, 0.0, 0.1])
    # frame 2 moves 10 cm: two velocity samples of 4 carry the error on every joint
    assert mean_velocity_error(jitter, poses) == pytest.approx(2 * 0.1 / 4)


def test_torch_losses_match_numpy(poses):
    rng = np.random.default_rng(1)
    pred = poses + rng.normal(scale=0.1, size=poses.shape)
    tp, tt = torch.from_numpy(pred)[None], torch.from_numpy(poses)[None]
    assert float(mpjpe_loss(tp, tt)) == pytest.approx(mpjpe(pred, poses))
    assert float(n_mpjpe_loss(tp, tt)) == pytest.approx(n_mpjpe(pred, poses))
    ones = torch.ones(1, 5, 17)
    assert float(weighted_mpjpe_loss(tp, tt, 2 * ones)) == pytest.approx(2 * mpjpe(pred, poses))


def test_accumulator_groups_actions_and_reports_millimetres():
    target = np.zeros((4, 17, 3))
    acc = ErrorAccumulator()
    acc.add("Walking 1", target + np.array([0.01, 0, 0]), target)  # 10 mm
    acc.add("Walking", target + np.array([0.03, 0, 0]), target)  # 30 mm
    acc.add("Sitting", target + np.array([0, 0.06, 0]), target)  # 60 mm
    res = acc.summarize()
    assert set(res["per_action"]) == {"Walking", "Sitting"}
    assert res["per_action"]["Walking"]["mpjpe"] == pytest.approx(20.0)
    assert res["per_action"]["Walking"]["frames"] == 8
    assert res["overall"]["mpjpe"] == pytest.approx((20.0 + 60.0) / 2)
    assert res["overall"]["mpjve"] == pytest.approx(0.0)
