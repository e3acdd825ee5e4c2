"""The VIPE* teacher (vidmine.embed.teacher, teacher_data): VPD's examples, VPD's model and
loss, resumable training, VPD's own model folders, the features file of a pose folder, and
cross-view retrieval against the raw-2D baseline. Tiny models: the whole file runs in well
under a minute on one CPU."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
import torch

from vidmine.embed.pose2d import FLIP_ORDER, KEPT_JOINTS, normalize_poses, raw_2d_features
from vidmine.embed.teacher import (
    FCResNet,
    TeacherConfig,
    VipeTeacher,
    build_networks,
    cross_view_retrieval,
    embed_pose_folder,
    load_teacher,
    load_vpd_teacher,
    retrieval_report,
    train_teacher,
)
from vidmine.embed.teacher_data import (
    NEGATIVE_COS,
    ExampleSampler,
    bone_directions,
    canonical_pose,
    held_out_cameras,
    mirror_canonical,
    retrieval_views,
    sequences_from_arrays,
    sequences_from_pose_dataset,
    split_by_subject,
    synthetic_sequences,
    target_features,
)
from vidmine.formats import FormatError
from vidmine.formats.vpd import VpdPose, read_vpd_features, read_vpd_keypoints, write_vpd_pose
from vidmine.lifter.synthetic import SyntheticConfig, generate, synthetic_track

FRAMES = 60
TINY = TeacherConfig(
    hidden=32, blocks=1, decoder_hidden=16, epochs=3, examples_per_epoch=300, val_examples=100,
    synthetic_frames=20, lr=1e-3, batch_size=100, device="cpu", threads=1,
)  # fmt: skip
SMALL = TeacherConfig(
    hidden=256, blocks=1, decoder_hidden=128, epochs=10, examples_per_epoch=2000,
    val_examples=200, synthetic_frames=FRAMES, lr=1e-3, batch_size=100, device="cpu",
    threads=1,
)  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def _restore_threads():
    """Training sets torch's thread count (``threads=1``: the CI has few cores); put it back."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def sequences():
    return synthetic_sequences(frames=FRAMES)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, sequences):
    """A small teacher trained on the training subjects (about 15 s on one CPU)."""
    path = tmp_path_factory.mktemp("teacher") / "teacher.pt"
    train_teacher(SMALL, path, sequences=sequences)
    return path


def dlt_residual(points_3d: np.ndarray, points_2d: np.ndarray) -> float:
    """Relative residual of the best 3x4 projective camera mapping the 3D points onto the 2D
    ones (direct linear transform): ~0 when the 2D points are a view of those 3D points."""
    rows = []
    for (x, y, z), (u, v) in zip(points_3d, points_2d, strict=True):
        p = [x, y, z, 1.0]
        rows.append([*p, 0, 0, 0, 0, *(-u * np.array(p))])
        rows.append([0, 0, 0, 0, *p, *(-v * np.array(p))])
    singular = np.linalg.svd(np.array(rows), compute_uv=False)
    return float(singular[-1] / singular[0])


def mirrored_points(points: np.ndarray) -> np.ndarray:
    out = points[list(FLIP_ORDER)].copy()
    out[:, 0] *= -1
    return out


def test_a_positive_pair_is_two_views_of_the_anchor_pose(sequences):
    train, _ = split_by_subject(sequences)
    sampler = ExampleSampler(train, noise_px=0.0)
    ex = sampler.draw(40, np.random.default_rng(3))
    kept = list(KEPT_JOINTS)
    for i in range(40):
        pts = sampler.points[ex.frames[i]]
        pts = mirrored_points(pts) if ex.flips[i] else pts
        other = sampler.points[(ex.frames[i] + FRAMES // 2) % len(sampler.points)]
        for view in (ex.pose1[i], ex.pose2[i]):
            assert dlt_residual(pts[kept], view[:, :2]) < 1e-6
            assert dlt_residual(other[kept], view[:, :2]) > 1e-4  # another pose does not fit
        assert not np.allclose(ex.pose1[i], ex.pose2[i], atol=1e-3)  # two different cameras
    assert ex.pose1.shape == (40, 13, 3) and ex.target_3d.shape == (40, 14, 7)


def test_negatives_differ_in_3d_by_more_than_45_degrees(sequences):
    train, _ = split_by_subject(sequences)
    sampler = ExampleSampler(train, noise_px=0.0)
    ex = sampler.draw(200, np.random.default_rng(5))
    assert 0.5 < ex.neg_valid.mean() < 1.0  # most draws find a negative, static takes may not
    kept = list(KEPT_JOINTS)
    for i in np.flatnonzero(ex.neg_valid):
        anchor = canonical_pose(sampler.points[ex.frames[i]])
        neg_pts = sampler.points[ex.neg_frames[i]]
        neg = canonical_pose(neg_pts)
        anchor = mirror_canonical(anchor) if ex.flips[i] else anchor
        neg = mirror_canonical(neg) if ex.neg_flips[i] else neg
        cos = np.sum(bone_directions(anchor) * bone_directions(neg), axis=1)
        assert cos.min() <= NEGATIVE_COS
        seen = mirrored_points(neg_pts) if ex.neg_flips[i] else neg_pts
        assert dlt_residual(seen[kept], ex.pose_neg[i][:, :2]) < 1e-6


def test_the_3d_target_ignores_heading_and_position_and_mirrors_with_the_pose(sequences):
    pts = sequences[0].points[7]
    yaw = 1.1
    rot = np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]])
    moved = pts @ rot.T + np.array([3.0, -2.0, 0.5])
    target = target_features(canonical_pose(pts))
    assert np.allclose(target, target_features(canonical_pose(moved)), atol=1e-5)
    unit = np.linalg.norm(target[:, :3], axis=1)
    assert np.allclose(unit, 1.0, atol=1e-5) and np.all(np.abs(target[:, 3]) <= 0.5)
    mirrored = target_features(canonical_pose(mirrored_points(pts)))
    assert np.allclose(mirrored, target_features(mirror_canonical(canonical_pose(pts))), atol=1e-5)
    assert not np.allclose(mirrored, target, atol=1e-2)


def test_training_lowers_the_loss_on_train_and_held_out_subjects(trained):
    history = torch.load(trained, weights_only=True)["history"]
    assert len(history) == SMALL.epochs
    assert history[-1]["train_loss"] < 0.3 * history[0]["train_loss"]
    assert history[-1]["val_loss"] < 0.5 * history[0]["val_loss"]


def test_the_trained_teacher_beats_raw_2d_at_cross_view_retrieval(trained, sequences):
    _, test = split_by_subject(sequences)  # unseen subjects, seen by unseen cameras
    report = retrieval_report(load_teacher(trained, device="cpu"), test, cameras=4)
    teacher, raw = report["teacher"], report["raw_2d"]
    views = retrieval_views(test, held_out_cameras(4), frame_stride=15)
    assert report["poses"] == len(views) == 128 and report["cameras"] == 4
    assert raw == cross_view_retrieval(lambda kp: raw_2d_features(kp, flip=False), views)
    torch.manual_seed(0)
    encoder, _ = build_networks(SMALL)
    untrained = VipeTeacher(encoder.eval(), False, torch.device("cpu"), {})
    before = cross_view_retrieval(untrained.embed, views)
    print(f"hit@1/hit@10 teacher {teacher} raw-2D {raw} untrained {before}")
    assert teacher["hit@1"] > raw["hit@1"] + 0.1
    assert teacher["hit@10"] > raw["hit@10"] + 0.2
    assert before["hit@1"] < raw["hit@1"]  # the gain is learnt, not the architecture's


def test_retrieval_counts_a_hit_only_for_the_same_pose():
    rng = np.random.default_rng(0)
    views = rng.normal(size=(20, 2, 17, 3))
    views[:, 1] = views[:, 0]  # identical views: every query finds itself
    assert cross_view_retrieval(lambda kp: kp.reshape(len(kp), -1), views) == {
        "hit@1": 1.0,
        "hit@10": 1.0,
    }
    views[:, 1] = views[::-1, 0]  # every gallery pose is another pose's view
    hits = cross_view_retrieval(lambda kp: kp.reshape(len(kp), -1), views)
    assert hits["hit@1"] == 0.0


def test_a_killed_run_resumes_and_ends_where_the_uninterrupted_run_ends(tmp_path):
    seqs = synthetic_sequences(subjects=("S1", "S9"), actions=("Walk", "Squat"), frames=20)
    cfg = TeacherConfig(**{**TINY.__dict__, "subjects_train": ("S1",), "subjects_test": ("S9",)})
    whole = train_teacher(cfg, tmp_path / "whole.pt", sequences=seqs)

    class Killed(Exception):
        pass

    def kill_after_two(epoch, row):
        if epoch == 2:
            raise Killed

    resume = tmp_path / "resume.pt"
    with pytest.raises(Killed):
        train_teacher(cfg, tmp_path / "out.pt", resume, sequences=seqs, on_epoch_end=kill_after_two)
    assert not (tmp_path / "out.pt").exists()
    assert torch.load(resume, weights_only=True)["epoch"] == 2
    seen = []
    resumed = train_teacher(
        cfg, tmp_path / "out.pt", resume, sequences=seqs, on_epoch_end=lambda e, r: seen.append(e)
    )
    assert seen == [3] and not resume.exists()
    assert resumed["history"] == whole["history"]
    for key, value in whole["encoder"].items():
        assert torch.equal(value, resumed["encoder"][key]), key


def test_features_of_a_pose_folder_read_back_as_vpd_writes_them(tmp_path):
    model_path = tmp_path / "teacher.pt"
    seqs = synthetic_sequences(subjects=("S1",), actions=("Walk",), frames=20)
    cfg = TeacherConfig(**{**TINY.__dict__, "epochs": 1, "subjects_train": ("S1",)})
    train_teacher(cfg, model_path, sequences=seqs)
    model = load_teacher(model_path, device="cpu")

    kp2d, _, _ = synthetic_track("Walk", frames=12, seed=4)
    conf = np.where(np.isnan(kp2d[..., :1]), 0.0, 0.9)
    kp = np.concatenate([np.nan_to_num(kp2d), conf], axis=-1)
    boxes = {f: (10.0, 20.0, 200.0, 400.0) for f in range(12)}
    poses = {f: [VpdPose(0.95, boxes[f], kp[f])] for f in range(12) if f != 5}
    poses[3].append(VpdPose(0.8, boxes[3], kp[9]))  # two people in frame 3: averaged
    poses[7] = [VpdPose(0.2, boxes[7], kp[7])]  # below min_score: left out
    write_vpd_pose(tmp_path / "pose" / "clip", boxes, poses)

    path = embed_pose_folder(model, tmp_path / "pose", tmp_path / "embs", "clip", min_score=0.5)
    assert path == tmp_path / "embs" / "clip.emb.pkl"
    features = read_vpd_features(path)
    assert [f.frame for f in features] == [0, 1, 2, 3, 4, 6, 8, 9, 10, 11]
    stored = read_vpd_keypoints(tmp_path / "pose" / "clip")
    for f in features:
        assert f.embedding.shape == (2, model.embedding_dim) and f.embedding.dtype == np.float32
        frame_kp = np.stack([p.keypoints for p in stored[f.frame]])
        expect = np.stack([model.embed(frame_kp).mean(0), model.embed(frame_kp, flip=True).mean(0)])
        assert np.allclose(f.embedding, expect, atol=1e-5)
        if f.frame == 3:
            score = min(float(np.mean(k[:, 2])) for k in frame_kp)
            assert f.meta == {"kp_score": pytest.approx(score), "is_mean": True}
        else:
            assert f.meta == {
                "kp_score": pytest.approx(float(np.mean(frame_kp[0][:, 2]))),
                "is_mean": False,
                "is_flip": False,
            }
    assert not np.allclose(features[0].embedding[0], features[0].embedding[1])
    assert embed_pose_folder(model, tmp_path / "pose", tmp_path / "e2", "clip", min_score=2) is None
    with pytest.raises(FormatError, match="video other"):
        embed_pose_folder(model, tmp_path / "pose", tmp_path / "embs", "other")


def vpd_state_dict(in_dim: int, hidden: int, blocks: int, emb: int, rng) -> dict:
    """Tensors under the names and shapes VPD's FCResNet saves (models/module.py)."""
    state = {
        "layers.0.weight": rng.normal(0, 0.2, (hidden, in_dim)),
        "layers.0.bias": rng.normal(0, 0.1, hidden),
    }
    for b in range(2, 2 + blocks):
        for layer in (0, 4):
            state[f"layers.{b}.block.{layer}.weight"] = rng.normal(0, 0.2, (hidden, hidden))
            state[f"layers.{b}.block.{layer}.bias"] = rng.normal(0, 0.1, hidden)
        for bn in (1, 5):
            state[f"layers.{b}.block.{bn}.weight"] = rng.uniform(0.5, 1.5, hidden)
            state[f"layers.{b}.block.{bn}.bias"] = rng.normal(0, 0.1, hidden)
            state[f"layers.{b}.block.{bn}.running_mean"] = rng.normal(0, 0.1, hidden)
            state[f"layers.{b}.block.{bn}.running_var"] = rng.uniform(0.5, 2.0, hidden)
    state[f"layers.{2 + blocks}.weight"] = rng.normal(0, 0.2, (emb, hidden))
    state[f"layers.{2 + blocks}.bias"] = rng.normal(0, 0.1, emb)
    out = {k: torch.tensor(v, dtype=torch.float32) for k, v in state.items()}
    for b in range(2, 2 + blocks):
        for bn in (1, 5):
            out[f"layers.{b}.block.{bn}.num_batches_tracked"] = torch.tensor(7)
    return out


def vpd_forward(state: dict, x: np.ndarray, blocks: int) -> np.ndarray:
    """VPD's FCResNet in eval mode, by hand: Linear, ReLU, (block(x) - x) per block, Linear."""
    s = {k: v.double().numpy() for k, v in state.items()}

    def linear(name, v):
        return v @ s[f"{name}.weight"].T + s[f"{name}.bias"]

    def bn(name, v):
        return (v - s[f"{name}.running_mean"]) / np.sqrt(s[f"{name}.running_var"] + 1e-5) * s[
            f"{name}.weight"
        ] + s[f"{name}.bias"]

    h = np.maximum(linear("layers.0", x), 0)
    for b in range(2, 2 + blocks):
        p = f"layers.{b}.block"
        y = np.maximum(bn(f"{p}.1", linear(f"{p}.0", h)), 0)
        y = np.maximum(bn(f"{p}.5", linear(f"{p}.4", y)), 0)
        h = y - h
    return linear(f"layers.{2 + blocks}", h)


@pytest.mark.parametrize("embed_bones", [False, True])
def test_a_vpd_model_folder_loads_and_embeds_as_vpd_computes(tmp_path, embed_bones):
    in_dim = (25 if embed_bones else 13) * 3
    state = vpd_state_dict(in_dim, 24, 2, 8, np.random.default_rng(1))
    torch.save(state, tmp_path / "best_epoch.encoder.pt")
    config = {"embedding_dim": 8, "encoder_arch": [2, 24], "decoder_arch": [2, 512]}
    config |= {"embed_bones": embed_bones, "num_epochs": 500, "datasets": []}
    (tmp_path / "config.json").write_text(json.dumps(config))
    model = load_vpd_teacher(tmp_path, device="cpu")
    kp, _, _ = synthetic_track("Jump", frames=5, seed=2)
    kp = np.concatenate([np.nan_to_num(kp), np.full((5, 17, 1), 0.8)], axis=-1)
    got = model.embed(kp, flip=True)
    x = normalize_poses(kp, flip=True, bones=embed_bones).reshape(5, -1).astype(np.float64)
    assert got.shape == (5, 8)
    assert np.allclose(got, vpd_forward(state, x, 2), atol=1e-4)


def test_vpd_model_folders_refuse_pickled_code_and_wrong_shapes(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (tmp_path / "config.json").write_text(
        json.dumps({"embedding_dim": 8, "encoder_arch": [1, 16], "embed_bones": False})
    )
    (tmp_path / "best_epoch.encoder.pt").write_bytes(pickle.dumps({"w": Payload()}))
    with pytest.raises(FormatError, match="best_epoch.encoder.pt"):
        load_vpd_teacher(tmp_path, device="cpu")
    assert not marker.exists()
    torch.save(FCResNet(39, 8, 2, 16).state_dict(), tmp_path / "best_epoch.encoder.pt")
    with pytest.raises(FormatError, match="not VPD encoder weights"):
        load_vpd_teacher(tmp_path, device="cpu")  # two blocks saved, one configured
    with pytest.raises(FormatError, match="epoch0007.encoder.pt"):
        load_vpd_teacher(tmp_path, epoch=7, device="cpu")


def test_other_3d_sources_feed_the_same_examples():
    ds = generate(SyntheticConfig(subjects=("S1", "S9"), actions=("Walk",), frames=20, cameras=2))
    seqs = sequences_from_pose_dataset(ds)
    assert [(s.subject, s.action, s.points.shape) for s in seqs] == [
        ("S1", "Walk", (20, 17, 3)),
        ("S9", "Walk", (20, 17, 3)),
    ]
    ex = ExampleSampler(seqs).draw(10, np.random.default_rng(0))
    assert np.isfinite(ex.pose1).all() and np.isfinite(ex.target_3d).all()
    plain = sequences_from_arrays([seqs[0].points], ["S5"], ["Kick"])
    assert plain[0].subject == "S5"
    with pytest.raises(ValueError, match="sequence 0 \\(S5, Kick\\)"):
        sequences_from_arrays([np.zeros((4, 13, 3))], ["S5"], ["Kick"])
