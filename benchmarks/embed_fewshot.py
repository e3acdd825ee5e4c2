"""Few-shot accuracy of raw 2D, teacher and student features on the synthetic labelled actions
(issue 19: "few-shot accuracy (1, 5, all shots) of teacher and student features against the
raw-2D baseline"), with the seconds of every step.

Run on demand (not part of the tests):

    .venv/bin/python benchmarks/embed_fewshot.py --threads 1           # ~10 min on one core
    .venv/bin/python benchmarks/embed_fewshot.py --threads 1 --quick   # ~3 min
    .venv/bin/python benchmarks/embed_fewshot.py --student-epochs 8 --json out.json

``vidmine embed evaluate`` measures the teacher and raw 2D on these tracks, but the student
needs pixels, which 2D tracks do not have. Here the same tracks are drawn as VPD crop folders
(stick figures with their previous frame, mask and flow: ``write_labelled_crop_folders``), so
all three feature sets are measured on one set of labelled tracks:

1. ``tracks``: the 16 synthetic actions x 7 subjects x ``--takes`` as labelled COCO-17 tracks;
2. ``teacher``: a small VIPE* teacher (``train_teacher``) on the synthetic 3D motion of the
   training subjects, then applied to the labelled pose folders (teacher features);
3. ``raw_2d``: VPD's 2D baseline features of the same tracks;
4. ``crops``: the stick-figure crop folders of every track;
5. ``student``: a ResNet student (``train_student``) distilled from the teacher's features on
   the TRAINING subjects' crops only (their crop folders and teacher features are all it is
   given), then applied to every track;
6. ``evaluate``: few-shot 1-NN DTW accuracy (mean +- std over trials) and retrieval hit@k of
   each feature set, split by subject (train S1, S5, S6, S7, S8; test S9, S11), as
   ``evaluate_features``; the student's agreement with the teacher on the held-out training
   tracks (``train_student``'s metrics) and on the test subjects' tracks, next to the baseline
   that always answers the training tracks' mean teacher row.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidmine.embed.labelled import (
    TEST_SUBJECTS,
    LabelledTrackConfig,
    baseline_features,
    subject_split,
    synthetic_labelled_tracks,
    write_labelled_crop_folders,
    write_labelled_pose_folders,
)
from vidmine.embed.recognize import ALL_SHOTS, evaluate_features
from vidmine.embed.student import (
    StudentConfig,
    agreement,
    apply_student_to_tracks,
    load_student,
    train_student,
)
from vidmine.embed.teacher import TeacherConfig, embed_pose_folder, load_teacher, train_teacher
from vidmine.formats.vpd import features_path, read_vpd_features

FEATURE_SETS = ("raw_2d", "teacher", "student")
BASELINE_KEYS = ("baseline_mean_cosine", "baseline_mean_l2")
# --quick: the same steps at sizes that finish in about three minutes on one core.
QUICK = dict(
    takes=1,
    frames=40,
    teacher_epochs=6,
    teacher_examples=1500,
    student_epochs=2,
    student_samples=1500,
    trials=3,
)


class Timer:
    """Seconds of each named step, in the order run."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def run(self, name: str, step: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        print(f"{name} ...", flush=True)
        result = step()
        self.seconds[name] = time.perf_counter() - t0
        print(f"{name}: {self.seconds[name]:.1f} s", flush=True)
        return result


def feature_rows(folder: Path, videos: list[str]) -> dict[tuple[str, int], np.ndarray]:
    """(video, frame) -> that frame's (rows, D) embedding, for the feature files of videos."""
    rows = {}
    for video in videos:
        for feature in read_vpd_features(features_path(folder, video)):
            rows[video, feature.frame] = np.atleast_2d(feature.embedding)
    return rows


def test_subject_agreement(
    teacher_dir: Path, student_dir: Path, train: list[str], test: list[str]
) -> dict[str, float]:
    """The student's rows against the teacher's on the test subjects' tracks (neither seen by
    the student in training), and the same for the training tracks' mean teacher row (plain
    and flipped row each): what a student that learnt nothing about the pose would score."""
    teacher, student = feature_rows(teacher_dir, test), feature_rows(student_dir, test)
    keys = sorted(set(teacher) & set(student))
    want = np.concatenate([teacher[k] for k in keys])
    got = np.concatenate([student[k] for k in keys])
    train_rows = np.stack(list(feature_rows(teacher_dir, train).values()))
    mean = np.concatenate([train_rows.mean(axis=0)] * len(keys))
    ours, baseline = agreement(got, want), agreement(mean, want)
    return {
        "frames": len(keys),
        **ours,
        **{f"baseline_mean_{k}": v for k, v in baseline.items()},
    }


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    timer = Timer()
    track_cfg = LabelledTrackConfig(takes=args.takes, frames=args.frames, seed=args.seed)
    tracks = timer.run("tracks", lambda: synthetic_labelled_tracks(track_cfg))
    labels = {t.track_id: t.label for t in tracks}
    split = subject_split(tracks, TEST_SUBJECTS)
    train_ids = sorted(t for t in split if split[t] == "train")
    test_ids = sorted(t for t in split if split[t] == "test")

    teacher_cfg = TeacherConfig(
        blocks=args.teacher_blocks,
        hidden=args.teacher_hidden,
        epochs=args.teacher_epochs,
        examples_per_epoch=args.teacher_examples,
        val_examples=args.teacher_val_examples,
        lr=args.teacher_lr,
        seed=args.seed,
        device="cpu",
        threads=args.threads or None,
    )
    teacher_file = work / "teacher.pt"
    trained = timer.run("teacher_train", lambda: train_teacher(teacher_cfg, teacher_file))

    def teacher_features() -> None:
        teacher = load_teacher(teacher_file, device="cpu")
        write_labelled_pose_folders(work / "pose", tracks)
        for track in tracks:
            embed_pose_folder(teacher, work / "pose", work / "teacher", track.track_id)

    timer.run("teacher_apply", teacher_features)
    timer.run("raw_2d", lambda: baseline_features(tracks, work / "raw_2d"))

    def crops() -> None:
        for side, ids in (("train", train_ids), ("test", test_ids)):
            chosen = [t for t in tracks if t.track_id in set(ids)]
            write_labelled_crop_folders(work / "crops" / side, chosen, args.img_dim, args.seed)
        # The student's teacher targets: the training subjects' features and nothing else.
        (work / "teacher_train").mkdir()
        for video in train_ids:
            shutil.copy(features_path(work / "teacher", video), work / "teacher_train")

    timer.run("crops", crops)
    student_cfg = StudentConfig(
        arch=args.arch,
        img_dim=args.img_dim,
        epochs=args.student_epochs,
        samples_per_epoch=args.student_samples,
        batch_size=args.batch,
        lr=args.student_lr,
        holdout_fraction=args.holdout,
        eval_every=0,
        seed=args.seed,
        device="cpu",
        threads=args.threads or None,
    )
    student_file = work / "student.pt"
    student_metrics = timer.run(
        "student_train",
        lambda: train_student(
            student_cfg, [work / "crops" / "train"], work / "teacher_train", student_file
        ),
    )

    def student_features() -> None:
        student = load_student(student_file, device="cpu")
        roots = [work / "crops" / "train", work / "crops" / "test"]
        apply_student_to_tracks(student, roots, work / "student")

    timer.run("student_apply", student_features)
    held_out = {k.removeprefix("test_"): v for k, v in student_metrics.items()}
    agreement_rows = {
        "held_out_training_tracks": {
            k: held_out[k] for k in ("frames", "cosine", "l2", *BASELINE_KEYS) if k in held_out
        },
        "test_subjects": test_subject_agreement(
            work / "teacher", work / "student", train_ids, test_ids
        ),
    }
    shots = (1, 5, ALL_SHOTS)
    results = {}
    for name in FEATURE_SETS:
        results[name] = timer.run(
            f"evaluate_{name}",
            lambda name=name: evaluate_features(
                work / name, labels, split, shots, args.trials, args.seed
            ),
        )
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "args": vars(args),
        "tracks": {"total": len(tracks), "train": len(train_ids), "test": len(test_ids)},
        "teacher_history": trained.get("history", []),
        "student_metrics": student_metrics,
        "student_agreement": agreement_rows,
        "few_shot": results,
        "seconds": timer.seconds,
    }


def print_table(report: dict[str, Any]) -> None:
    results = report["few_shot"]
    chance = results["raw_2d"]["chance"]
    shots = list(results["raw_2d"]["few_shot"])
    ks = [k for k in results["raw_2d"]["retrieval"] if k.startswith("hit@")]
    print(f"\nfew-shot 1-NN DTW accuracy, mean +- std over trials (chance {chance:.3f})")
    print(f"{'features':>9} " + " ".join(f"{s + ' shot':>15}" for s in shots) + " " +
          " ".join(f"{k:>7}" for k in ks))  # fmt: skip
    for name, metrics in results.items():
        few = metrics["few_shot"]
        accs = " ".join(f"{few[s]['mean']:8.3f} +-{few[s]['std']:5.3f}" for s in shots)
        hits = " ".join(f"{metrics['retrieval'][k]:7.3f}" for k in ks)
        print(f"{name:>9} {accs} {hits}")
    print("\nstudent vs teacher features: cosine, L2 (the mean-row baseline's in brackets)")
    for where, row in report["student_agreement"].items():
        print(
            f"  {where} ({row.get('frames', 0)} frames): {row.get('cosine', np.nan):.3f} "
            f"({row.get('baseline_mean_cosine', np.nan):.3f}), {row.get('l2', np.nan):.3f} "
            f"({row.get('baseline_mean_l2', np.nan):.3f})"
        )
    print("\nseconds: " + ", ".join(f"{k} {v:.1f}" for k, v in report["seconds"].items()))
    print(f"total {sum(report['seconds'].values()):.1f} s, {report['threads']} torch threads")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help=f"smaller sizes: {QUICK}")
    p.add_argument("--takes", type=int, default=2, help="takes per subject and action")
    p.add_argument("--frames", type=int, default=45, help="frames per labelled track")
    p.add_argument("--teacher-blocks", type=int, default=1)
    p.add_argument("--teacher-hidden", type=int, default=256)
    p.add_argument("--teacher-epochs", type=int, default=10)
    p.add_argument("--teacher-examples", type=int, default=2000, help="examples per epoch")
    p.add_argument("--teacher-val-examples", type=int, default=500)
    p.add_argument("--teacher-lr", type=float, default=1e-3)
    p.add_argument("--arch", default="resnet18", help="student encoder")
    p.add_argument("--img-dim", type=int, default=32, help="crop size in pixels")
    p.add_argument("--student-epochs", type=int, default=4)
    p.add_argument("--student-samples", type=int, default=4000, help="samples per epoch")
    p.add_argument("--batch", type=int, default=32, help="student batch")
    p.add_argument("--student-lr", type=float, default=1e-3)
    p.add_argument("--holdout", type=float, default=0.1, help="training tracks held out")
    p.add_argument("--trials", type=int, default=5, help="few-shot trials per shot count")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--keep", help="keep the work folder here (features, crops, models)")
    p.add_argument("--json", help="also write the results here")
    if p.parse_known_args(argv)[0].quick:
        p.set_defaults(**QUICK)  # sizes given on the command line still win
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.keep:
        work = Path(args.keep)
        work.mkdir(parents=True, exist_ok=False)
        report = run(args, work)
    else:
        with tempfile.TemporaryDirectory(prefix="vidmine-fewshot-") as tmp:
            report = run(args, Path(tmp))
    print_table(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
