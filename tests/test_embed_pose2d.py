"""VPD's 2D normalisation (docs/formats/vpd.md, "Embedding pickles")."""

from __future__ import annotations

import numpy as np
import pytest

from vidmine.embed.pose2d import (
    BONES,
    FLIP_ORDER,
    normalize_pose,
    normalize_poses,
    raw_2d_features,
)


def _pose(rng) -> np.ndarray:
    kp = np.zeros((17, 3))
    kp[:, :2] = rng.uniform(100, 400, (17, 2))
    kp[:, 2] = rng.uniform(0, 1, 17)
    return kp


def test_hips_at_origin_widest_torso_distance_half_confidences_centred():
    rng = np.random.default_rng(0)
    kp = _pose(rng)
    out = normalize_pose(kp)
    assert out.shape == (13, 3)
    full = normalize_pose(kp, bones=True)
    assert full.shape == (13 + len(BONES), 3) and len(BONES) == 12
    # rows 7, 8 are joints 11, 12 (the hips): their midpoint is the origin
    np.testing.assert_allclose((out[7, :2] + out[8, :2]) / 2, 0, atol=1e-6)
    torso = out[[1, 2, 7, 8], :2]
    widest = max(np.linalg.norm(a - b) for a in torso for b in torso)
    assert widest == pytest.approx(0.5, rel=1e-5)
    np.testing.assert_allclose(out[:, 2], kp[[0, *range(5, 17)], 2] - 0.5, atol=1e-6)


def test_invariant_to_translation_and_scale_and_flip_mirrors():
    rng = np.random.default_rng(1)
    kp = _pose(rng)
    moved = kp.copy()
    moved[:, :2] = moved[:, :2] * 3.0 + [50, -20]
    np.testing.assert_allclose(normalize_pose(kp), normalize_pose(moved), atol=1e-5)
    mirror = kp.copy()
    mirror[:, 0] = -mirror[:, 0]
    mirror = mirror[list(FLIP_ORDER)]  # a mirrored person is the flipped pose
    np.testing.assert_allclose(normalize_pose(kp, flip=True), normalize_pose(mirror), atol=1e-5)


def test_batch_equals_single_and_degenerate_torso_does_not_divide_by_zero():
    rng = np.random.default_rng(2)
    batch = np.stack([_pose(rng) for _ in range(5)])
    batch[4, :, :2] = 7.0  # every joint in one place
    for flip in (False, True):
        got = normalize_poses(batch, flip=flip, bones=True)
        want = np.stack([normalize_pose(p, flip=flip, bones=True) for p in batch])
        np.testing.assert_allclose(got, want, atol=1e-5)
    assert np.isfinite(normalize_poses(batch)).all()
    with pytest.raises(ValueError, match="17, 3"):
        normalize_pose(np.zeros((13, 3)))


def test_raw_2d_baseline_is_the_normalised_xy_with_its_flip():
    rng = np.random.default_rng(3)
    batch = np.stack([_pose(rng) for _ in range(3)])
    feats = raw_2d_features(batch)
    assert feats.shape == (3, 2, 26)
    np.testing.assert_allclose(feats[1, 0], normalize_pose(batch[1])[:, :2].ravel(), atol=1e-6)
    assert raw_2d_features(batch, flip=False).shape == (3, 26)
