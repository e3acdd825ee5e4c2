"""``vidmine embed evaluate``: the measured table of issue 19 (docs/embed.md, "What is
measured"), one JSON file and one plot.

* Cross-view retrieval of the teacher against the raw-2D baseline on poses of held-out subjects
  seen by held-out cameras (:func:`vidmine.embed.teacher.retrieval_report`).
* Few-shot recognition and retrieval (VPD's ``recognize.py``: 1-NN under DTW) of the teacher's
  features and the raw-2D baseline on the synthetic actions rendered as labelled 2D tracks, split
  by subject; and on the dataset's own released tracks when its manifest labels their videos
  (then the student's features too: the synthetic tracks have no pixels).
* The student's agreement with the teacher on held-out tracks, from its last evaluation.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from vidmine.embed.config import EvaluateConfig
from vidmine.embed.labelled import (
    LabelledTrackConfig,
    baseline_features,
    baseline_features_from_pose_folders,
    labels_for_folder,
    subject_split,
    synthetic_labelled_tracks,
    write_labelled_pose_folders,
)
from vidmine.embed.recognize import evaluate_features, plot_accuracy_vs_shots
from vidmine.embed.teacher import TeacherConfig, VipeTeacher, embed_pose_folder, retrieval_report
from vidmine.embed.teacher_data import synthetic_sequences
from vidmine.ids import video_of_clip


def trained_with(teacher: VipeTeacher) -> TeacherConfig:
    """The teacher's training settings (VPD's defaults for one of VPD's own model folders)."""
    return TeacherConfig.from_dict(teacher.meta.get("config") or {})


def synthetic_few_shot(teacher: VipeTeacher, cfg: EvaluateConfig, work: Path) -> dict[str, Any]:
    """Few-shot of the teacher and of raw 2D on the synthetic actions (labelled 2D tracks of
    every subject; the held-out subjects are the test side)."""
    tracks = synthetic_labelled_tracks(
        LabelledTrackConfig(frames=cfg.labelled_frames, takes=cfg.labelled_takes, seed=cfg.seed)
    )
    labels = {t.track_id: t.label for t in tracks}
    split = subject_split(tracks, trained_with(teacher).subjects_test)
    write_labelled_pose_folders(work / "pose", tracks)
    for track in tracks:
        embed_pose_folder(teacher, work / "pose", work / "teacher", track.track_id)
    baseline_features(tracks, work / "raw_2d")
    return {
        name: _named(
            evaluate_features(
                work / name, labels, split, cfg.shots, cfg.trials, cfg.seed, norm=cfg.norm
            ),
            f"synthetic labelled tracks, {name} features",
        )
        for name in ("raw_2d", "teacher")
    }


def _named(result: dict[str, Any], features: str) -> dict[str, Any]:
    """``result`` naming its features by what they are, not by the temporary folder they were
    evaluated in, so two runs write the same metrics file (README, "Reproducible files")."""
    return {**result, "features": features}


def video_labels(manifest: str | Path) -> dict[str, str]:
    """video_id -> label from a manifest's ``label`` column (empty where none)."""
    table = pd.read_parquet(manifest, columns=["video_id", "label"])
    table = table[table["label"].notna() & (table["label"].astype(str) != "")]
    return dict(zip(table["video_id"].astype(str), table["label"].astype(str), strict=True))


def track_labels(track_keys: list[str], by_video: Mapping[str, str]) -> dict[str, str]:
    """A released track's label is its video's (track ``<clip>-tNNN``, clip ``<video>-cNNN``)."""
    out = {}
    for key in track_keys:
        video = _video_of_track(key)
        if video in by_video:
            out[key] = by_video[video]
    return out


def _video_of_track(key: str) -> str:
    return video_of_clip(key.rsplit("-t", 1)[0])


def dataset_few_shot(
    folders: Mapping[str, Path],
    pose_dir: Path,
    by_video: Mapping[str, str],
    cfg: EvaluateConfig,
    work: Path,
) -> dict[str, Any]:
    """Few-shot on the dataset's labelled tracks, for each features folder and for raw 2D from
    the released pose folders. Every 5th labelled video (sorted ids) is the test side, so the
    tracks of one video never sit on both sides."""
    tracks = sorted(p.name for p in pose_dir.iterdir() if p.is_dir()) if pose_dir.is_dir() else []
    labels = track_labels(tracks, by_video)
    videos = sorted({_video_of_track(k) for k in labels})
    test_videos = set(videos[4::5])
    split = {k: "test" if _video_of_track(k) in test_videos else "train" for k in labels}
    classes = set(labels.values())
    result: dict[str, Any] = {
        "labelled_tracks": len(labels),
        "unlabelled_tracks": len(tracks) - len(labels),
        "classes": len(classes),
    }
    if len(classes) < 2 or {"train", "test"} - set(split.values()):
        result["skipped"] = (
            f"{len(labels)} labelled tracks of {len(classes)} classes: few-shot needs 2 or more "
            "classes with tracks on both sides of the split (the manifest's label column)"
        )
        return result
    baseline_features_from_pose_folders(pose_dir, work / "raw_2d")
    for name, folder in {"raw_2d": work / "raw_2d", **folders}.items():
        kept, _ = labels_for_folder(labels, folder, allow_missing=True)
        measured = evaluate_features(
            folder, kept, {k: split[k] for k in kept}, cfg.shots, cfg.trials, cfg.seed, cfg.norm
        )
        result[name] = _named(
            measured, f"raw 2D of {pose_dir}" if name == "raw_2d" else str(folder)
        )
    return result


def evaluate_embedding(
    teacher: VipeTeacher,
    cfg: EvaluateConfig,
    student_history: list[dict] | None = None,
    dataset: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Every measurement as one JSON-able dict. ``dataset``: ``pose_dir`` (the export's VPD
    pose folders), ``features`` ({'teacher': folder, 'student': folder}) and ``manifest``, for
    the dataset's own labelled tracks."""
    trained = trained_with(teacher)
    held_out = synthetic_sequences(
        trained.subjects_test,
        frames=trained.synthetic_frames,
        sequences_per_action=1,
        seed=trained.synthetic_seed + 1,  # other takes than the training ones
    )
    metrics: dict[str, Any] = {
        "cross_view_retrieval": retrieval_report(
            teacher, held_out, cfg.retrieval_cameras, cfg.retrieval_frame_stride, cfg.seed
        )
    }
    with tempfile.TemporaryDirectory(prefix="vidmine-embed-") as tmp:
        metrics["few_shot_synthetic"] = synthetic_few_shot(teacher, cfg, Path(tmp) / "synthetic")
        if dataset is not None:
            by_video = video_labels(dataset["manifest"])
            metrics["few_shot_dataset"] = dataset_few_shot(
                {k: Path(v) for k, v in dataset["features"].items()},
                Path(dataset["pose_dir"]),
                by_video,
                cfg,
                Path(tmp) / "dataset",
            )
    if student_history:
        metrics["student"] = student_history[-1]
    return metrics


def write_metrics(metrics: Mapping[str, Any], json_path: Path, plot_path: Path) -> None:
    """The metrics file and the accuracy-against-shots plot of the synthetic actions."""
    from vidmine.io import write_json_atomic

    write_json_atomic(json_path, metrics)
    plot_accuracy_vs_shots(
        {
            "raw 2D": metrics["few_shot_synthetic"]["raw_2d"],
            "VIPE* teacher": metrics["few_shot_synthetic"]["teacher"],
        },
        plot_path,
    )
