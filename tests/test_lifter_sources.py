"""The lifter's training data beyond the synthetic set: Kinetics pseudo-3D imports, mixes."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from conftest import kinetics_clip
from vidmine.imports.kinetics import import_kinetics
from vidmine.lifter.config import (
    KINETICS_TEST,
    KINETICS_TRAIN,
    DataConfig,
    TrainConfig,
    data_files,
    kinetics_split,
    load_dataset,
    subject_split,
)
from vidmine.lifter.train import train

YOUTUBE_IDS = [f"vid{i:02d}xxxxx" for i in range(8)]
# synthetic+kinetics, small: the data settings the tests below share
MIX = dict(
    source="synthetic+kinetics", kinetics_test_every=3, synthetic_frames=40, synthetic_cameras=1
)


@pytest.fixture(scope="module")
def kinetics_npz(tmp_path_factory):
    root = tmp_path_factory.mktemp("kinetics")
    rng = np.random.default_rng(0)
    paths = []
    for yid in YOUTUBE_IDS:
        path = root / f"{yid}_000010_000020.pkl"
        path.write_bytes(pickle.dumps(kinetics_clip(60, rng), protocol=2))
        paths.append(path)
    summary = import_kinetics(paths, root / "out", 25.0, 320, 240)
    assert summary["imported"] == len(YOUTUBE_IDS)
    return root / "out" / "kinetics_lifter.npz"


def test_kinetics_split_holds_out_whole_videos_by_a_stable_hash():
    sides = [kinetics_split(y, 3) for y in YOUTUBE_IDS]
    assert sides == [kinetics_split(y, 3) for y in YOUTUBE_IDS]  # no randomness
    assert set(sides) == {KINETICS_TRAIN, KINETICS_TEST}
    assert {kinetics_split(y, 0) for y in YOUTUBE_IDS} == {KINETICS_TRAIN}


def test_mixed_sources_prefix_subjects_and_actions(kinetics_npz):
    cfg = DataConfig(
        **MIX, kinetics_lifter=str(kinetics_npz), subjects_train=("S1",), subjects_test=("S9",)
    )
    assert data_files(cfg) == [kinetics_npz]
    split = subject_split(cfg)
    assert split["train"] == ("synthetic/S1", KINETICS_TRAIN)
    assert split["test"] == ("synthetic/S9", KINETICS_TEST)
    ds = load_dataset(cfg)
    assert {s.subject for s in ds.sequences} == {
        "synthetic/S1",
        "synthetic/S9",
        KINETICS_TRAIN,
        KINETICS_TEST,
    }
    kinetics = [s for s in ds.sequences if s.subject.startswith("kinetics")]
    assert len(kinetics) == len(YOUTUBE_IDS)
    assert all(s.action.startswith("kinetics/vid") for s in kinetics)
    assert all(s.pos2d.shape == (60, 17, 2) and s.pos3d.shape == (60, 17, 3) for s in kinetics)
    assert all(s.action.startswith("synthetic/") for s in ds.sequences if s not in kinetics)


def test_unknown_sources_and_missing_files_are_one_line_errors():
    with pytest.raises(ValueError, match=r"unknown lifter data source 'synthetic\+mocap'"):
        load_dataset(DataConfig(source="synthetic+mocap"))
    with pytest.raises(ValueError, match="kinetics data needs kinetics_lifter"):
        data_files(DataConfig(source="kinetics"))


def test_training_on_synthetic_plus_kinetics_reports_both(kinetics_npz, tmp_path):
    data = DataConfig(**MIX, kinetics_lifter=str(kinetics_npz))
    cfg = TrainConfig(filter_widths=(3, 3), channels=16, epochs=1, batch_size=64, threads=1)
    final = train(cfg, data, tmp_path / "model.pt", resume=None)
    last = final["vidmine"]["history"][-1]
    assert np.isfinite(last["train_mpjpe_mm"]) and np.isfinite(last["test_mpjpe_mm"])
    assert final["vidmine"]["fingerprint"]["data"]["source"] == "synthetic+kinetics"
