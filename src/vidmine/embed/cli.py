"""``vidmine embed {train-teacher,apply-teacher,train-student,apply-student,evaluate,report}``:
the commands the embed rules shell out to (workflow/rules/embed.smk, docs/embed.md).

Settings come as ``--settings``, the dataset's ``embed:`` config section as JSON; its
``teacher``, ``teacher_data``, ``student`` and ``evaluate`` sub-sections are the fields of
:class:`~vidmine.embed.teacher.TeacherConfig`, the lifter's
:class:`~vidmine.lifter.config.DataConfig`, :class:`~vidmine.embed.student.StudentConfig` and
:class:`~vidmine.embed.config.EvaluateConfig`. Trainers resume from ``--resume`` after a kill
and take a lock on their output, as the lifter's do.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vidmine.locks import hold, lock_path_for


def _section(args: argparse.Namespace) -> dict:
    settings = json.loads(args.settings or "{}")
    if not isinstance(settings, dict):
        raise SystemExit("vidmine embed: --settings must be a JSON object (the embed: section)")
    return settings


def _threads(args: argparse.Namespace) -> None:
    import torch

    if getattr(args, "threads", None):
        torch.set_num_threads(int(args.threads))


def _cmd_train_teacher(args: argparse.Namespace) -> int:
    import dataclasses

    from vidmine.embed.config import teacher_config, teacher_data_config, teacher_sequences
    from vidmine.embed.teacher import train_teacher

    section = _section(args)
    cfg = teacher_config(section)
    if args.threads:
        cfg = dataclasses.replace(cfg, threads=int(args.threads))
    sequences, cfg = teacher_sequences(cfg, teacher_data_config(section))
    out = Path(args.out)
    with hold(lock_path_for(out)):  # one trainer per model file (docs/cluster.md)
        final = train_teacher(cfg, out, Path(args.resume), sequences)
    history = final.get("history") or [{}]
    print(json.dumps({"model": str(out), "last_epoch": history[-1]}, indent=2, default=str))
    return 0


def _load_teacher(spec: str):
    """A vidmine teacher file, or one of VPD's own VIPE model folders (config.json +
    best_epoch.encoder.pt), so VPD's published model can be applied too."""
    from vidmine.embed.teacher import load_teacher, load_vpd_teacher

    path = Path(spec)
    return load_vpd_teacher(path) if path.is_dir() else load_teacher(path)


def _cmd_apply_teacher(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from vidmine.embed.teacher import embed_pose_folder

    teacher = _load_teacher(args.model)
    pose_dir, out = Path(args.pose_dir), Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    videos = sorted(p.name for p in pose_dir.iterdir() if p.is_dir()) if pose_dir.is_dir() else []
    written = skipped = 0
    for video in tqdm(videos, desc="teacher features", disable=None):
        path = embed_pose_folder(teacher, pose_dir, out, video, min_score=args.min_score)
        if path is None:
            print(f"{video}: no pose scoring >= {args.min_score}, no features", file=sys.stderr)
            skipped += 1
        else:
            written += 1
    print(json.dumps({"videos": len(videos), "written": written, "no_pose": skipped}))
    return 0


def _cmd_train_student(args: argparse.Namespace) -> int:
    from vidmine.embed.student import StudentConfig, train_student

    section = _section(args)
    settings = dict(section.get("student") or {})
    if args.threads:
        settings["threads"] = int(args.threads)
    cfg = StudentConfig.from_dict(settings)
    out = Path(args.out)
    with hold(lock_path_for(out)):
        last = train_student(cfg, [Path(args.crops_dir)], Path(args.teacher_dir), out, args.resume)
    print(json.dumps({"model": str(out), "last_epoch": last}, indent=2, default=str))
    return 0


def _cmd_apply_student(args: argparse.Namespace) -> int:
    from vidmine.embed.student import apply_student_to_tracks, load_student

    student = load_student(Path(args.model))
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    crops = Path(args.crops_dir)
    paths = apply_student_to_tracks(student, [crops], out) if crops.is_dir() else []
    print(json.dumps({"tracks": len(paths)}))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from vidmine.embed.config import evaluate_config
    from vidmine.embed.evaluate import evaluate_embedding, write_metrics

    _threads(args)
    teacher = _load_teacher(args.teacher)
    history = None
    if args.student:
        from vidmine.embed.student import load_student_checkpoint

        history = load_student_checkpoint(args.student).get("history")
    dataset = None
    if args.manifest:
        features = {"teacher": args.teacher_features}
        if args.student_features:
            features["student"] = args.student_features
        dataset = {"manifest": args.manifest, "pose_dir": args.pose_dir, "features": features}
    metrics = evaluate_embedding(teacher, evaluate_config(_section(args)), history, dataset)
    write_metrics(metrics, Path(args.out_json), Path(args.out_plot))
    print(json.dumps(metrics["cross_view_retrieval"], indent=2))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from vidmine.embed.report import write_report

    write_report(Path(args.metrics), Path(args.plot), Path(args.out))
    return 0


def _trainer_flags(p: argparse.ArgumentParser) -> None:
    """What both trainers take: the model file, the resume file, the settings, the threads
    (the trainer sets torch's thread count from them itself)."""
    p.add_argument("--out", required=True, help="the model file (written last)")
    p.add_argument("--resume", required=True, help="checkpoint rewritten every epoch")
    p.add_argument("--settings", help="the embed: config section as JSON")
    p.add_argument("--threads", type=int)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``vidmine embed`` and its commands to the top-level parser."""
    embed = sub.add_parser("embed", help="VPD's pose embeddings: VIPE* teacher, student, few-shot")
    cmds = embed.add_subparsers(dest="embed_command", required=True, metavar="COMMAND")

    p = cmds.add_parser("train-teacher", help="train VIPE* on 3D takes seen by random cameras")
    _trainer_flags(p)
    p.set_defaults(func=_cmd_train_teacher)

    p = cmds.add_parser("apply-teacher", help="teacher features of every VPD pose folder")
    p.add_argument("--model", required=True, help="a teacher file or a VPD VIPE model folder")
    p.add_argument("--pose-dir", required=True, help="VPD pose folders (export/vpd/pose)")
    p.add_argument("--out-dir", required=True, help="gets <video>.emb.pkl per pose folder")
    p.add_argument("--min-score", type=float, default=0.0, help="apply_vipe_model's --min_score")
    p.set_defaults(func=_cmd_apply_teacher)

    p = cmds.add_parser("train-student", help="distil the teacher into an RGB + flow student")
    p.add_argument("--crops-dir", required=True, help="VPD crop folders (export/vpd/crops)")
    p.add_argument("--teacher-dir", required=True, help="the teacher's features")
    _trainer_flags(p)
    p.set_defaults(func=_cmd_train_student)

    p = cmds.add_parser("apply-student", help="student features of every crop folder")
    p.add_argument("--model", required=True)
    p.add_argument("--crops-dir", required=True)
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=_cmd_apply_student)

    p = cmds.add_parser("evaluate", help="cross-view retrieval, few-shot, student agreement")
    p.add_argument("--teacher", required=True)
    p.add_argument("--student", help="the student model (its held-out agreement)")
    p.add_argument("--teacher-features")
    p.add_argument("--student-features")
    p.add_argument("--pose-dir", help="the dataset's VPD pose folders")
    p.add_argument("--manifest", help="the dataset's manifest (its label column)")
    p.add_argument("--settings")
    p.add_argument("--threads", type=int)
    p.add_argument("--out-json", required=True)
    p.add_argument("--out-plot", required=True)
    p.set_defaults(func=_cmd_evaluate)

    p = cmds.add_parser("report", help="report/embed.html from the metrics and the plot")
    p.add_argument("--metrics", required=True)
    p.add_argument("--plot", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=_cmd_report)
