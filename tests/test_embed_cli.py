"""`vidmine embed` as the workflow runs it: the teacher's data sources, train, apply, evaluate
(on the synthetic actions and on a dataset whose manifest labels its videos) and the report page.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import kinetics_clip
from vidmine.embed.config import teacher_config, teacher_data_config, teacher_sequences
from vidmine.embed.labelled import (
    LabelledTrackConfig,
    synthetic_labelled_tracks,
    write_labelled_pose_folders,
)
from vidmine.formats.vpd import read_vpd_features
from vidmine.imports.kinetics import import_kinetics

TINY_TEACHER = {
    "hidden": 64,
    "blocks": 1,
    "decoder_hidden": 64,
    "epochs": 2,
    "examples_per_epoch": 600,
    "val_examples": 100,
    "lr": 0.001,
    "synthetic_frames": 40,
}
TINY_EVALUATE = {
    "trials": 2,
    "labelled_frames": 30,
    "labelled_takes": 1,
    "retrieval_frame_stride": 20,
}


def vidmine(*args: str) -> subprocess.CompletedProcess:
    run = subprocess.run(
        [sys.executable, "-m", "vidmine", "embed", *args], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def test_teacher_data_mixes_sources_with_prefixed_subjects(tmp_path):
    """synthetic+kinetics: the synthetic takes keep the teacher's split under a synthetic/
    prefix, Kinetics brings its own kinetics/train and kinetics/test."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(6):
        path = tmp_path / f"vid{i:02d}xxxxx_000010_000020.pkl"
        path.write_bytes(pickle.dumps(kinetics_clip(40, rng), protocol=2))
        paths.append(path)
    import_kinetics(paths, tmp_path / "out", 25.0, 320, 240)
    section = {
        "teacher": {"synthetic_frames": 20},
        "teacher_data": {
            "source": "synthetic+kinetics",
            "kinetics_lifter": str(tmp_path / "out" / "kinetics_lifter.npz"),
            "kinetics_test_every": 3,
        },
    }
    sequences, cfg = teacher_sequences(teacher_config(section), teacher_data_config(section))
    subjects = {s.subject for s in sequences}
    assert {"synthetic/S1", "synthetic/S9"} <= subjects
    assert subjects & {"kinetics/train", "kinetics/test"}
    assert "synthetic/S9" in cfg.subjects_test and "kinetics/test" in cfg.subjects_test
    assert "synthetic/S1" in cfg.subjects_train and "kinetics/train" in cfg.subjects_train
    assert all(s.points.shape[1:] == (17, 3) for s in sequences)
    only = {"teacher_data": {"source": "synthetic"}}
    assert teacher_sequences(teacher_config(only), teacher_data_config(only))[0] is None
    with pytest.raises(ValueError, match="unknown settings"):
        teacher_config({"teacher": {"epocs": 3}})


def labelled_dataset(root: Path) -> tuple[Path, Path]:
    """VPD pose folders named like released tracks (``<video>-c000-t001``) and a manifest
    that labels their videos with the synthetic actions: a dataset with labels."""
    cfg = LabelledTrackConfig(actions=("Walk", "Squat", "Wave", "Kick"), frames=30)
    tracks = synthetic_labelled_tracks(cfg)
    rows, renamed = [], []
    for i, track in enumerate(tracks):
        video = f"v{i:03d}"
        rows.append({"video_id": video, "label": track.label})
        renamed.append(type(track)(**{**track.__dict__, "track_id": f"{video}-c000-t001"}))
    write_labelled_pose_folders(root / "pose", renamed)
    manifest = root / "manifest.parquet"
    pd.DataFrame(rows).to_parquet(manifest)
    return root / "pose", manifest


def test_train_apply_evaluate_and_report(tmp_path):
    pose_dir, manifest = labelled_dataset(tmp_path / "dataset")
    settings = json.dumps({"teacher": TINY_TEACHER, "evaluate": TINY_EVALUATE})
    model, resume = tmp_path / "teacher.pt", tmp_path / "teacher.resume.pt"
    vidmine("train-teacher", "--out", str(model), "--resume", str(resume), "--settings", settings)
    assert model.is_file() and not resume.exists()
    features = tmp_path / "teacher_features"
    vidmine("apply-teacher", "--model", str(model), "--pose-dir", str(pose_dir),
            "--out-dir", str(features))  # fmt: skip
    written = sorted(features.glob("*.emb.pkl"))
    assert len(written) == len(list(pose_dir.iterdir()))
    first = read_vpd_features(written[0])
    assert first[0].embedding.shape == (2, 32) and first[0].meta["is_flip"] is False

    metrics, plot = tmp_path / "metrics.json", tmp_path / "few_shot.png"
    vidmine(
        "evaluate", "--teacher", str(model), "--teacher-features", str(features),
        "--pose-dir", str(pose_dir), "--manifest", str(manifest), "--settings", settings,
        "--out-json", str(metrics), "--out-plot", str(plot),
    )  # fmt: skip
    result = json.loads(metrics.read_text())
    assert "vidmine-embed-" not in metrics.read_text()  # no temporary path: reproducible bytes
    retrieval = result["cross_view_retrieval"]
    assert set(retrieval) == {"teacher", "raw_2d", "poses", "cameras"}
    assert 0 <= retrieval["teacher"]["hit@1"] <= retrieval["teacher"]["hit@10"] <= 1
    synthetic = result["few_shot_synthetic"]
    assert set(synthetic) == {"raw_2d", "teacher"}
    assert synthetic["teacher"]["classes"] == 16 and set(synthetic["teacher"]["few_shot"]) == {
        "1", "5", "all",
    }  # fmt: skip
    dataset = result["few_shot_dataset"]
    assert dataset["labelled_tracks"] == 28 and dataset["classes"] == 4
    # every 5th labelled video is a test video: both sides hold tracks
    assert dataset["teacher"]["test"] > 0 and dataset["teacher"]["train"] > 0
    assert dataset["raw_2d"]["few_shot"]["all"]["mean"] > 0.25  # above chance (4 classes)
    assert plot.stat().st_size > 1000

    page = tmp_path / "embed.html"
    vidmine("report", "--metrics", str(metrics), "--plot", str(plot), "--out", str(page))
    html = page.read_text()
    assert "Cross-view retrieval" in html and "synthetic actions" in html
    assert "labelled tracks (%)" in html and "data:image/png;base64," in html


def test_a_dataset_without_labels_is_reported_not_measured(tmp_path):
    from vidmine.embed.config import EvaluateConfig
    from vidmine.embed.evaluate import dataset_few_shot

    pose_dir, manifest = labelled_dataset(tmp_path)
    pd.DataFrame({"video_id": ["v000"], "label": [None]}).to_parquet(manifest)
    from vidmine.embed.evaluate import video_labels

    result = dataset_few_shot({}, pose_dir, video_labels(manifest), EvaluateConfig(), tmp_path)
    assert result["labelled_tracks"] == 0 and result["unlabelled_tracks"] == 28
    assert "needs 2 or more classes" in result["skipped"]
    empty = dataset_few_shot({}, tmp_path / "nowhere", {}, EvaluateConfig(), tmp_path)
    assert empty["labelled_tracks"] == 0 and "skipped" in empty


VPD_MIRROR = Path("/work/.mirror/jhong93+vpd/repo")
VPD_COMMIT = "7cde1ca"  # docs/formats/vpd.md


def test_vpds_own_loader_reads_teacher_and_student_features(tmp_path):
    """VPD's action_dataset/load.py (what recognize.py uses for figure skating and tennis) loads
    the features vidmine writes, teacher's (2, D) with meta and student's with meta {}."""
    import shutil

    from vidmine.formats.vpd import VpdFeature, features_path, write_vpd_features

    if not VPD_MIRROR.is_dir() or shutil.which("git") is None:
        pytest.skip(f"no mirror of jhong93/vpd at {VPD_MIRROR}")
    code = tmp_path / "vpd"
    for name in ("action_dataset/__init__.py", "action_dataset/load.py", "util/__init__.py",
                 "util/io.py"):  # fmt: skip
        text = subprocess.run(
            ["git", f"--git-dir={VPD_MIRROR}", "show", f"{VPD_COMMIT}:{name}"],
            capture_output=True,
            check=True,
        ).stdout
        (code / name).parent.mkdir(parents=True, exist_ok=True)
        (code / name).write_bytes(text)
    rng = np.random.default_rng(0)
    emb = tmp_path / "embs"
    teacher = [
        VpdFeature(
            f, rng.normal(size=(2, 32)), {"kp_score": 0.9, "is_mean": False, "is_flip": False}
        )  # fmt: skip
        for f in (0, 1, 4)
    ]
    write_vpd_features(features_path(emb, "clip-c000-t001"), teacher)
    write_vpd_features(
        features_path(emb, "clip-c001-t002"),
        [VpdFeature(f, rng.normal(size=(2, 32)), {}) for f in range(3)],
    )
    driver = (
        "import json, sys\n"
        "from action_dataset.load import load_embs\n"
        f"embs = load_embs({str(emb)!r}, norm=True)\n"
        "print(json.dumps({k: [list(v[0].shape), v[1].tolist()] for k, v in embs.items()}))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", driver], cwd=code, capture_output=True, text=True, check=True
    )
    loaded = json.loads(run.stdout.strip().splitlines()[-1])
    assert loaded["clip-c000-t001"] == [[5, 2, 32], [True, True, False, False, True]]
    assert loaded["clip-c001-t002"] == [[3, 2, 32], [True, True, True]]
