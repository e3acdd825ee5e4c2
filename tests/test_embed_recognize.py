"""Few-shot recognition and retrieval on VPD features (vidmine.embed.recognize) and the labelled
tracks they run on (vidmine.embed.labelled): VPD's densification with the gap fill the right
way round, DTW against an exhaustive search over warping paths, deterministic synthetic tracks,
the raw-2D baseline well above chance, and one-line errors for bad feature and label files."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from vidmine.embed import recognize
from vidmine.embed.labelled import (
    LabelledTrackConfig,
    baseline_features,
    baseline_features_from_pose_folders,
    labels_for_folder,
    read_label_table,
    subject_split,
    synthetic_labelled_tracks,
    write_label_table,
    write_labelled_pose_folders,
)
from vidmine.embed.pose2d import raw_2d_features
from vidmine.embed.recognize import (
    GruConfig,
    densify,
    dtw_distance_matrix,
    dtw_distances,
    evaluate_features,
    few_shot_accuracy,
    load_features,
    normalize_rows,
    plot_accuracy_vs_shots,
    retrieval,
    sample_shots,
)
from vidmine.formats import FormatError
from vidmine.formats.vpd import VpdFeature, features_path, read_vpd_keypoints, write_vpd_features

ALL = -1
SMALL = LabelledTrackConfig(subjects=("S1", "S9"), actions=("Walk", "Squat", "Wave"), frames=20)


def test_densify_averages_duplicate_frames_and_fills_gaps_from_the_nearer_frame():
    feats = [
        VpdFeature(2, np.array([0.0, 10.0]), {}),
        VpdFeature(2, np.array([2.0, 10.0]), {}),  # two poses in frame 2: mean (1, 10)
        VpdFeature(6, np.array([5.0, 30.0]), {}),
    ]
    dense, present = densify(feats)
    assert dense.shape == (7, 2)
    assert present.tolist() == [False, False, True, False, False, False, True]
    assert np.allclose(dense[:2], 0)  # before the first frame: zeros, as VPD
    # frame 3 lies next to frame 2, so it is mostly frame 2's value (VPD's weights would
    # give 4 and 25 here, mostly frame 6's)
    assert np.allclose(dense[2:], [[1, 10], [2, 15], [3, 20], [4, 25], [5, 30]])


def test_densify_keeps_flip_rows_and_normalize_rows_gives_unit_rows():
    feats = [VpdFeature(f, np.full((2, 3), f + 1.0), {}) for f in (0, 2)]
    dense, present = densify(feats)
    assert dense.shape == (3, 2, 3) and present.tolist() == [True, False, True]
    assert np.allclose(dense[1], 2.0)
    assert np.allclose(np.linalg.norm(normalize_rows(dense), axis=-1), 1.0)
    with pytest.raises(FormatError, match="frame 1: embedding"):
        densify([VpdFeature(0, np.zeros(3), {}), VpdFeature(1, np.zeros(4), {})])


# Step patterns as dtw-python defines them: (origin offset, [(cell offset, weight), ...]).
P2_STEPS = [
    ((2, 3), [((1, 2), 2), ((0, 1), 2), ((0, 0), 1)]),
    ((1, 1), [((0, 0), 2)]),
    ((3, 2), [((2, 1), 2), ((1, 0), 2), ((0, 0), 1)]),
]
SYMMETRIC2_STEPS = [((1, 0), [((0, 0), 1)]), ((0, 1), [((0, 0), 1)]), ((1, 1), [((0, 0), 2)])]


def brute_force_dtw(a: np.ndarray, b: np.ndarray, steps) -> float:
    """Cheapest cost over every warping path, enumerated one by one (no dynamic programming),
    divided by N + M; inf when no path exists."""
    local = np.linalg.norm(a[:, None] - b[None], axis=-1)

    def paths_cost(i: int, j: int) -> float:
        if (i, j) == (0, 0):
            return local[0, 0]
        best = np.inf
        for (di, dj), cells in steps:
            if i - di >= 0 and j - dj >= 0:
                step = sum(w * local[i - ci, j - cj] for (ci, cj), w in cells)
                best = min(best, paths_cost(i - di, j - dj) + step)
        return best

    return paths_cost(len(a) - 1, len(b) - 1) / (len(a) + len(b))


@pytest.mark.parametrize(
    ("pattern", "steps"), [("symmetricP2", P2_STEPS), ("symmetric2", SYMMETRIC2_STEPS)]
)
def test_dtw_equals_an_exhaustive_search_over_warping_paths(pattern, steps):
    rng = np.random.default_rng(7)
    for n in (1, 3, 5, 6):
        query = rng.normal(size=(n, 3))
        refs = [rng.normal(size=(m, 3)) for m in (1, 2, 4, 5, 7)]  # one padded batch
        got = dtw_distances(query, refs, pattern)
        want = [brute_force_dtw(query, r, steps) for r in refs]
        assert np.allclose(got, want, rtol=1e-9, atol=1e-12), (n, got, want)
    assert np.isinf(dtw_distances(np.zeros((2, 3)), [np.zeros((6, 3))])[0])  # slope > 3/2
    assert dtw_distances(np.ones((5, 2)), [np.ones((4, 2))])[0] == 0.0


def test_dtw_matrix_batches_queries_of_mixed_lengths_like_single_queries(monkeypatch):
    rng = np.random.default_rng(11)
    queries = [rng.normal(size=(n, 2)) for n in (4, 6, 4, 5, 6, 4)]
    refs = [rng.normal(size=(m, 2)) for m in (3, 5, 6, 8)]
    monkeypatch.setattr(recognize, "CELLS_PER_BATCH", 200)  # several batches per length
    got = dtw_distance_matrix(queries, refs)
    want = [[brute_force_dtw(q, r, P2_STEPS) for r in refs] for q in queries]
    assert got.shape == (6, 4) and np.allclose(got, want, rtol=1e-9)


def test_labelled_tracks_are_deterministic_and_differ_by_action():
    first, again = synthetic_labelled_tracks(SMALL), synthetic_labelled_tracks(SMALL)
    assert [t.track_id for t in first] == [t.track_id for t in again]
    assert len({t.track_id for t in first}) == 6
    for a, b in zip(first, again, strict=True):
        assert np.array_equal(a.keypoints, b.keypoints)
        assert a.keypoints.shape == (20, 17, 3) and np.isfinite(a.keypoints).all()
        assert ((a.keypoints[..., 2] > 0) & (a.keypoints[..., 2] <= 1)).all()
    # each track is seeded on its own: one action more changes none of the others
    more = synthetic_labelled_tracks(
        LabelledTrackConfig(subjects=SMALL.subjects, actions=(*SMALL.actions, "Kick"), frames=20)
    )
    kept = {t.track_id: t.keypoints for t in more}
    assert all(np.array_equal(kept[t.track_id], t.keypoints) for t in first)
    walk, squat = (
        raw_2d_features(next(t for t in first if t.label == x and t.subject == "S1").keypoints)
        for x in ("Walk", "Squat")
    )
    assert np.abs(walk - squat).mean() > 0.05  # normalised units: the torso is 0.5 wide
    assert subject_split(first) == {
        t.track_id: "train" if t.subject == "S1" else "test" for t in first
    }


def test_pose_folders_hold_the_tracks_keypoints(tmp_path):
    tracks = synthetic_labelled_tracks(SMALL)[:2]
    folders = write_labelled_pose_folders(tmp_path / "pose", tracks)
    poses = read_vpd_keypoints(folders[1])
    assert sorted(poses) == list(range(20))
    assert np.allclose(poses[5][0].keypoints, tracks[1].keypoints[5], atol=1e-3)
    # the baseline from the pose folders is the baseline from the tracks (up to the JSON's
    # rounding), so a teacher applied to these folders is compared like for like
    baseline_features_from_pose_folders(tmp_path / "pose", tmp_path / "from_pose")
    baseline_features(tracks, tmp_path / "direct")
    from_pose, direct = load_features(tmp_path / "from_pose"), load_features(tmp_path / "direct")
    assert sorted(from_pose) == sorted(direct) == sorted(t.track_id for t in tracks)
    for video, (dense, present) in direct.items():
        assert present.all() and np.allclose(from_pose[video][0], dense, atol=1e-3)
    (tmp_path / "pose" / "empty_video").mkdir()
    with pytest.raises(FormatError, match="empty_video: no coco_keypoints"):
        baseline_features_from_pose_folders(tmp_path / "pose", tmp_path / "again")


def test_raw_2d_baseline_recognises_the_synthetic_actions_well_above_chance(tmp_path):
    tracks = synthetic_labelled_tracks(LabelledTrackConfig(frames=30))
    paths = baseline_features(tracks, tmp_path)
    first = load_features(tmp_path, videos=[tracks[0].track_id])[tracks[0].track_id][0]
    assert first.shape == (30, 2, 26) and len(paths) == 112
    labels = {t.track_id: t.label for t in tracks}
    metrics = evaluate_features(tmp_path, labels, subject_split(tracks), trials=3, seed=1)
    few = metrics["few_shot"]
    assert (metrics["train"], metrics["test"], metrics["chance"]) == (80, 32, 1 / 16)
    assert few["all"]["mean"] >= 0.5  # chance is 0.0625
    assert few["1"]["mean"] >= 0.2 and len(few["1"]["trials"]) == 3
    ret = metrics["retrieval"]
    assert ret["hit@1"] <= ret["hit@5"] <= ret["hit@10"] and ret["hit@1"] >= 0.3
    assert ret["hit@1"] == ret["prec@1"] and ret["prec@10"] <= ret["prec@5"] <= 1
    assert json.loads(json.dumps(metrics)) == metrics  # the metrics file is plain JSON
    png = plot_accuracy_vs_shots({"raw 2D": metrics}, tmp_path / "plot" / "shots.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_retrieval_ranks_an_exact_copy_first_and_hits_grow_with_k():
    rng = np.random.default_rng(3)
    base = {f"a{i}": rng.normal(size=(8, 2, 4)) for i in range(4)}
    seqs = {**base, "copy": base["a0"] + 1e-6, "b": rng.normal(size=(8, 2, 4)) + 5}
    labels = {"a0": "x", "copy": "x", "a1": "y", "a2": "y", "a3": "z", "b": "w"}
    out = retrieval(seqs, labels, ks=(1, 2, 5), queries=["a0", "b", "a1"])
    # a0 finds its copy at rank 1; b (alone in its class) never hits; a1 hits a2 somewhere
    assert out["hit@1"] >= 1 / 3 and out["hit@5"] == 2 / 3
    assert out["hit@1"] <= out["hit@2"] <= out["hit@5"]


def test_shot_sampling_takes_n_per_class_and_keeps_small_classes_whole():
    labels = {f"{c}{i}": c for c in "ab" for i in range(6)} | {"c0": "c"}
    picked = sample_shots(labels, labels, 2, np.random.default_rng(0))
    counts = {c: sum(labels[t] == c for t in picked) for c in "abc"}
    assert counts == {"a": 2, "b": 2, "c": 1}
    assert picked == sample_shots(labels, labels, 2, np.random.default_rng(0))
    assert sorted(sample_shots(labels, labels, -1, np.random.default_rng(0))) == sorted(labels)
    draws = {tuple(sample_shots(labels, labels, 1, np.random.default_rng(s))) for s in range(8)}
    assert len(draws) > 1


def test_a_corrupt_feature_pickle_is_one_line_error_naming_it(tmp_path):
    tracks = synthetic_labelled_tracks(SMALL)[:3]
    baseline_features(tracks, tmp_path)
    bad = features_path(tmp_path, tracks[1].track_id)
    bad.write_bytes(b"\x80\x04not a pickle at all")
    with pytest.raises(FormatError) as err:
        load_features(tmp_path)
    assert str(bad) in str(err.value) and "\n" not in str(err.value)
    write_vpd_features(bad, [VpdFeature(0, np.zeros(3), {})])
    assert load_features(tmp_path)[tracks[1].track_id][0].shape == (1, 3)


def test_labels_from_a_table_match_the_features_folder(tmp_path):
    tracks = synthetic_labelled_tracks(SMALL)
    baseline_features(tracks, tmp_path / "feats")
    table = read_label_table(write_label_table(tmp_path / "labels.csv", tracks[:4]))
    assert table.labels == {t.track_id: t.label for t in tracks[:4]}
    assert table.split == subject_split(tracks[:4])
    labels, unlabelled = labels_for_folder(table.labels, tmp_path / "feats")
    assert labels == table.labels and unlabelled == 2  # two tracks in the folder have no label
    ghost = {**table.labels, "S7_Run_t0_c0": "Run"}
    with pytest.raises(FormatError, match="labelled track 'S7_Run_t0_c0'"):
        labels_for_folder(ghost, tmp_path / "feats")
    assert labels_for_folder(ghost, tmp_path / "feats", allow_missing=True) == (labels, 2)
    (tmp_path / "bad.csv").write_text("track,name\nx,y\n")
    with pytest.raises(FormatError, match=r"bad\.csv: label table lacks columns"):
        read_label_table(tmp_path / "bad.csv")


def test_evaluation_refuses_tracks_outside_the_split(tmp_path):
    tracks = synthetic_labelled_tracks(SMALL)
    baseline_features(tracks, tmp_path)
    labels = {t.track_id: t.label for t in tracks}
    split = dict(itertools.islice(subject_split(tracks).items(), 5))
    with pytest.raises(ValueError, match="neither train nor test"):
        evaluate_features(tmp_path, labels, split)


def test_gru_classifier_learns_a_separable_toy_task_and_scores_its_trials():
    rng = np.random.default_rng(5)
    # class "up" rises, class "down" falls, with noise, plain and flipped rows (2, 2)
    seqs, labels, split = {}, {}, {}
    for i in range(16):
        label = "up" if i % 2 else "down"
        ramp = np.linspace(-1, 1, 6 + i % 3)[:, None, None] * (1 if label == "up" else -1)
        seqs[f"s{i}"] = ramp + rng.normal(0, 0.1, (len(ramp), 2, 2))
        labels[f"s{i}"], split[f"s{i}"] = label, "train" if i < 10 else "test"
    cfg = GruConfig(hidden=8, epochs=25, batch_size=10, learning_rate=1e-2, threads=1)
    out = few_shot_accuracy(seqs, labels, split, (ALL,), trials=2, classifier="gru", gru=cfg)
    assert len(out["all"]["trials"]) == 2 and out["all"]["mean"] >= 0.8
    with pytest.raises(ValueError, match="classifier 'svm'"):
        few_shot_accuracy(seqs, labels, split, classifier="svm")
