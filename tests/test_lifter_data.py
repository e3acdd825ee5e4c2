"""Cameras, h36m/custom npz readers and the synthetic motion generator."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from vidmine.formats import FormatError
from vidmine.formats._pickles import save_npz
from vidmine.formats.videopose3d import (
    CustomEntry,
    interpolate_missing,
    read_custom_2d,
    write_custom_2d,
)
from vidmine.lifter.camera import (
    camera_to_world,
    image_coordinates,
    normalize_screen_coordinates,
    normalized_intrinsics,
    project_to_2d,
    project_to_2d_linear,
    quaternion_from_matrix,
    world_to_camera,
)
from vidmine.lifter.data import H36M_KEPT_32, load_h36m
from vidmine.lifter.skeleton import COCO, H36M, bone_lengths, coco_to_h36m_2d
from vidmine.lifter.synthetic import ACTIONS, SyntheticConfig, generate


def test_screen_normalisation_round_trip():
    px = np.array([[0.0, 0.0], [1000.0, 1002.0], [500.0, 501.0]], dtype=np.float32)
    norm = normalize_screen_coordinates(px, 1000, 1002)
    np.testing.assert_allclose(norm[0], [-1, -1.002], atol=1e-6)
    np.testing.assert_allclose(norm[1], [1, 1.002], atol=1e-6)
    np.testing.assert_allclose(image_coordinates(norm, 1000, 1002), px, atol=1e-3)


def test_quaternion_camera_round_trip():
    rot = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0]
    rot *= np.sign(np.linalg.det(rot))
    q = quaternion_from_matrix(rot)
    t = np.array([1.0, -2.0, 3.0])
    x = np.random.default_rng(1).normal(size=(10, 17, 3))
    cam = world_to_camera(x, q, t)
    np.testing.assert_allclose(cam, (x - t) @ rot, atol=1e-9)  # R^T (x - t)
    np.testing.assert_allclose(camera_to_world(cam, q, t), x, atol=1e-9)


def test_projection_without_distortion_is_pinhole():
    intr = normalized_intrinsics([1150, 1150], [512, 515], 1000, 1002)
    x = torch.tensor([[[0.3, -0.2, 4.0], [0.0, 0.0, 5.0]]], dtype=torch.float64)
    k = torch.from_numpy(intr).double()[None]
    lin = project_to_2d_linear(x, k)
    torch.testing.assert_close(project_to_2d(x, k), lin)
    px = image_coordinates(lin.numpy()[0], 1000, 1002)
    np.testing.assert_allclose(px[0], [1150 * 0.3 / 4 + 512, 1150 * -0.2 / 4 + 515], atol=1e-6)


@pytest.mark.parametrize("project", [project_to_2d, project_to_2d_linear])
def test_projection_of_zero_depth_has_a_finite_gradient(project):
    """bf16 pose + trajectory can sum to a depth of exactly 0; that must not poison training."""
    intr = torch.from_numpy(normalized_intrinsics([1150, 1150], [512, 515], 1000, 1002))[None]
    x = torch.tensor([[[0.3, -0.2, 0.0], [0.0, 0.0, 0.0], [0.3, -0.2, 4.0]]], requires_grad=True)
    out = project(x, intr.float())
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(x.grad).all()
    assert torch.equal(x.grad[0, 0], torch.zeros(3))  # clamped: no gradient, as the original
    expected = project(x[:, 2:].detach(), intr.float())
    torch.testing.assert_close(out[:, 2:], expected)  # ordinary depths: unchanged


def test_fill_missing_interpolates_and_clamps():
    kp = np.full((5, 1, 2), np.nan, dtype=np.float32)
    kp[1] = 10
    kp[3] = 30
    out = interpolate_missing(kp)
    np.testing.assert_allclose(out[:, 0, 0], [10, 10, 20, 30, 30])


def _fake_h36m(tmp_path):
    """Tiny files in VideoPose3D's h36m layouts, 2D projected from the 3D."""
    rng = np.random.default_rng(0)
    cams, pos3d, pos2d = {}, {}, {}
    for subject in ("S1", "S9"):
        cams[subject] = []
        for c in range(2):
            eye = np.array([4.0 * np.cos(c), 4.0 * np.sin(c), 1.5])
            fwd = -eye / np.linalg.norm(eye)
            right = np.cross(fwd, [0, 0, 1.0])
            right /= np.linalg.norm(right)
            rot = np.stack([right, np.cross(fwd, right), fwd], axis=1)
            cams[subject].append(
                {
                    "id": str(c),
                    "res_w": 1000,
                    "res_h": 1002,
                    "orientation": quaternion_from_matrix(rot).tolist(),
                    "translation": (eye * 1000).tolist(),  # millimetres, as in the original
                    "center": [510.0, 505.0],
                    "focal_length": [1145.0, 1144.0],
                    "radial_distortion": [0.0, 0.0, 0.0],
                    "tangential_distortion": [0.0, 0.0],
                }
            )
        world = rng.normal(scale=0.3, size=(30, 32, 3)) + np.array([0, 0, 1.0])
        pos3d[subject] = {"Walking 1": world.astype(np.float32)}
        views = []
        for cam in cams[subject]:
            cam3d = world_to_camera(
                world[:, list(H36M_KEPT_32)],
                np.array(cam["orientation"]),
                np.array(cam["translation"]) / 1000,
            )
            px = np.array([1145.0, 1144.0]) * cam3d[..., :2] / cam3d[..., 2:] + np.array(
                [510.0, 505.0]
            )
            views.append(np.concatenate([px, px[:5]]).astype(np.float32))  # 2D longer than 3D
        pos2d[subject] = {"Walking 1": views + [None, None]}  # H36M's 4 cameras, 2 without 2D
    np.savez_compressed(tmp_path / "data_3d_h36m.npz", positions_3d=pos3d)
    meta = {"num_joints": 17, "keypoints_symmetry": [list(H36M.left), list(H36M.right)]}
    np.savez_compressed(tmp_path / "data_2d_h36m_gt.npz", positions_2d=pos2d, metadata=meta)
    (tmp_path / "cameras.json").write_text(json.dumps({"cameras": cams}))


def test_h36m_reader_puts_poses_in_camera_space(tmp_path):
    _fake_h36m(tmp_path)
    ds = load_h36m(
        tmp_path / "data_3d_h36m.npz", tmp_path / "data_2d_h36m_gt.npz", tmp_path / "cameras.json"
    )
    assert ds.input_layout.name == "h36m"  # inferred: gt files have no layout_name
    assert len(ds.select(["S1"])) == 2 and len(ds.select(["S9"])) == 2
    with pytest.raises(ValueError, match="S5"):
        ds.select(["S5"])
    seq = ds.sequences[0]
    assert seq.pos2d.shape == (30, 17, 2) and seq.pos3d.shape == (30, 17, 3)
    # joints 1.. are root-relative; the root is the absolute camera-space trajectory
    absolute = seq.pos3d.copy()
    absolute[:, 1:] += absolute[:, :1]
    k = torch.from_numpy(seq.intrinsics).double()[None]
    proj = project_to_2d(torch.from_numpy(absolute).double()[None], k)[0].numpy()
    np.testing.assert_allclose(proj, seq.pos2d, atol=2e-3)


def test_custom_2d_round_trip(tmp_path):
    kp = np.random.default_rng(0).uniform(0, 640, size=(12, 17, 2)).astype(np.float32)
    write_custom_2d(tmp_path / "data_2d_custom_x.npz", "x", [CustomEntry("clip.mp4", 640, 360, kp)])
    with np.load(tmp_path / "data_2d_custom_x.npz", allow_pickle=True) as npz:
        meta = npz["metadata"].item()
        assert npz["positions_2d"].item()["clip.mp4"]["custom"][0].shape == (12, 17, 2)
    assert meta["layout_name"] == "coco" and meta["video_metadata"]["clip.mp4"] == {
        "w": 640,
        "h": 360,
        "first_frame": 0,
    }
    (entry,) = read_custom_2d(tmp_path / "data_2d_custom_x.npz", allow_missing=True)
    got, w, h = entry.keypoints, entry.width, entry.height
    np.testing.assert_array_equal(got, kp)
    assert (w, h) == (640, 360)


def test_custom_2d_with_gaps_is_read_for_the_lifter_only(tmp_path):
    """A hand-made custom 2D file may hold NaN keypoints: the lifter reads it and fills them,
    the format reader alone refuses it (VideoPose3D's own files have no gaps)."""
    kp = np.random.default_rng(1).uniform(0, 640, size=(6, 17, 2)).astype(np.float32)
    kp[2:4, 9] = np.nan
    path = tmp_path / "data_2d_custom_gaps.npz"
    meta = {"layout_name": "coco", "num_joints": 17, "video_metadata": {"t": {"w": 640, "h": 360}}}
    save_npz(path, {"positions_2d": {"t": {"custom": [kp]}}, "metadata": meta})
    with pytest.raises(FormatError, match="NaN"):
        read_custom_2d(path)
    (entry,) = read_custom_2d(path, allow_missing=True)
    np.testing.assert_array_equal(entry.keypoints, kp)
    filled = interpolate_missing(entry.keypoints)
    np.testing.assert_allclose(
        filled[2:4, 9], kp[1, 9] + (kp[4, 9] - kp[1, 9]) * [[1 / 3], [2 / 3]]
    )


@pytest.mark.filterwarnings("ignore:Mean of empty slice")
def test_interpolate_missing_fills_a_joint_never_seen_from_the_others():
    kp = np.arange(3 * 17 * 2, dtype=np.float32).reshape(3, 17, 2)
    kp[:, 4] = np.nan
    out = interpolate_missing(kp)
    others = np.delete(kp, 4, axis=1)
    np.testing.assert_allclose(out[:, 4], others.mean(axis=1))
    with pytest.raises(ValueError, match="no keypoints at all"):
        interpolate_missing(np.full((3, 17, 2), np.nan, np.float32))


def test_coco_to_h36m_uses_midpoints():
    kp = np.zeros((1, 17, 2))
    kp[0, 11], kp[0, 12] = [10, 100], [30, 100]  # hips
    kp[0, 5], kp[0, 6] = [10, 40], [30, 40]  # shoulders
    out = coco_to_h36m_2d(kp)
    np.testing.assert_allclose(out[0, 0], [20, 100])  # pelvis
    np.testing.assert_allclose(out[0, 8], [20, 40])  # thorax
    np.testing.assert_allclose(out[0, 7], [20, 70])  # spine


@pytest.fixture(scope="module")
def synth():
    return generate(SyntheticConfig(frames=60, cameras=2, seed=3))


def test_synthetic_covers_subjects_actions_and_cameras(synth):
    assert synth.subjects == sorted(["S1", "S5", "S6", "S7", "S8", "S9", "S11"])
    assert {s.action for s in synth.sequences} == set(ACTIONS)
    assert len(synth.sequences) == 7 * len(ACTIONS) * 2
    assert synth.input_layout is not H36M and synth.input_layout.name == COCO.name
    for seq in synth.sequences:
        assert np.isfinite(seq.pos2d).all() and np.isfinite(seq.pos3d).all()
        assert (seq.pos3d[:, 0, 2] > 2).all()  # always in front of the camera


def test_synthetic_subjects_keep_their_own_bone_lengths(synth):
    per_subject = {}
    for seq in synth.sequences:
        absolute = seq.pos3d.copy()
        absolute[:, 1:] += absolute[:, :1]
        bones = bone_lengths(absolute)
        np.testing.assert_allclose(bones, np.broadcast_to(bones[0], bones.shape), atol=1e-4)
        per_subject.setdefault(seq.subject, bones[0])
        np.testing.assert_allclose(bones[0], per_subject[seq.subject], atol=1e-4)
    heights = [b[[1, 2]].sum() for b in per_subject.values()]  # thigh + shin
    assert np.ptp(heights) > 0.01


def _one_subject(noise_px: float, drop_rate: float):
    cfg = SyntheticConfig(subjects=("S1",), frames=40, outlier_rate=0, input_layout="h36m")
    return generate(dataclasses.replace(cfg, noise_px=noise_px, drop_rate=drop_rate))


def test_synthetic_2d_is_a_noisy_projection_with_drops():
    clean, noisy = _one_subject(0, 0), _one_subject(3, 0.05)
    for seq in clean.sequences:
        absolute = seq.pos3d.copy()
        absolute[:, 1:] += absolute[:, :1]
        proj = project_to_2d_linear(
            torch.from_numpy(absolute)[None], torch.from_numpy(seq.intrinsics)[None]
        )[0].numpy()
        np.testing.assert_allclose(proj, seq.pos2d, atol=1e-4)
    diffs = [
        np.abs(a.pos2d - b.pos2d).mean()
        for a, b in zip(clean.sequences, noisy.sequences, strict=True)
    ]
    assert 0 < np.mean(diffs) < 0.05  # a few pixels of 1000, normalised to [-1, 1]


def test_human36m_mixed_with_synthetic_splits_both_by_subject(tmp_path):
    from vidmine.lifter.config import DataConfig, load_dataset, subject_split

    _fake_h36m(tmp_path)
    base = dict(h36m_dir=str(tmp_path), h36m_2d="gt", h36m_cameras=str(tmp_path / "cameras.json"))
    base.update(subjects_train=("S1",), subjects_test=("S9",), synthetic_frames=30)
    with pytest.raises(ValueError, match=r"mixes 2D layouts \(synthetic: coco, h36m: h36m\)"):
        load_dataset(DataConfig(source="synthetic+h36m", **base))
    cfg = DataConfig(source="synthetic+h36m", input_layout="h36m", **base)
    ds = load_dataset(cfg)
    split = subject_split(cfg)
    assert split["train"] == ("synthetic/S1", "h36m/S1")
    assert split["test"] == ("synthetic/S9", "h36m/S9")
    train = ds.select(split["train"])
    assert {s.action for s in train if s.subject == "h36m/S1"} == {"h36m/Walking 1"}
    assert len([s for s in train if s.subject == "synthetic/S1"]) == 2 * len(ACTIONS)
