"""``vidmine export {videopose3d,detectron,hmmr,vpd,trackverse,index}`` and the importers
``vidmine import-kinetics`` / ``vidmine import-instavariety``. Registered by ``vidmine.cli``.

The commands only parse arguments and call :mod:`vidmine.exports` / :mod:`vidmine.imports`
(imported inside each command, so building the parser imports no heavy library and
``vidmine --help`` stays fast). Expected failures (a missing input table, a file in the wrong
format, an undecodable clip) print one line ``vidmine: <what>`` to stderr and exit with 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

COMMANDS = ("export", "import-kinetics", "import-instavariety")


def _fail(err: BaseException) -> int:
    from vidmine.formats import error_line

    print(f"vidmine: {error_line(err)}", file=sys.stderr)
    return 2


def _run(label: str, out: str, build: Callable[[], dict[str, Any]]) -> int:
    """Call ``build``; print its counts on success, one error line (exit 2) on known failures."""
    from vidmine.formats import FormatError
    from vidmine.frames import DecodeError
    from vidmine.weights import WeightsError

    try:
        summary = build()
    except (FileNotFoundError, FormatError, DecodeError, WeightsError) as err:
        return _fail(err)
    counts = ", ".join(f"{key} {value}" for key, value in summary.items())
    print(f"{label}: {counts} -> {out}")
    return 0


def cmd_export_videopose3d(args: argparse.Namespace) -> int:
    from vidmine.exports.videopose3d import export_videopose3d

    return _run(
        "videopose3d",
        args.out,
        lambda: export_videopose3d(
            args.dataset_dir, args.out, args.name, args.videos, args.min_keypoint_score
        ),
    )


def cmd_export_detectron(args: argparse.Namespace) -> int:
    from vidmine.exports.detectron import export_detectron

    return _run("detectron", args.out, lambda: export_detectron(args.dataset_dir, args.out))


def cmd_export_hmmr(args: argparse.Namespace) -> int:
    import json

    from vidmine.exports.hmmr import export_hmmr

    try:
        settings = json.loads(args.settings) if args.settings else {}
    except json.JSONDecodeError as err:
        return _fail(ValueError(f"--settings: not JSON ({err})"))
    return _run("hmmr", args.out, lambda: export_hmmr(args.dataset_dir, args.out, settings))


def cmd_export_vpd(args: argparse.Namespace) -> int:
    from vidmine.exports.vpd import export_vpd

    return _run("vpd", args.out, lambda: export_vpd(args.dataset_dir, args.out))


def cmd_export_trackverse(args: argparse.Namespace) -> int:
    from vidmine.exports.trackverse import export_trackverse

    return _run(
        "trackverse",
        args.out,
        lambda: export_trackverse(
            args.dataset_dir, args.out, args.domain, json.loads(args.curation)
        ),
    )


def cmd_export_index(args: argparse.Namespace) -> int:
    from vidmine.exports.index import export_index

    return _run(
        "index", args.out, lambda: export_index(args.dataset_dir, args.out, args.config_hash)
    )


def _run_import(label: str, out: str, build: Callable[[], dict[str, Any]]) -> int:
    """Call ``build``; refused files are warnings (one line each), exit 2 only on a known
    failure or if nothing was imported."""
    from vidmine.formats import FormatError

    try:
        summary = build()
    except (FileNotFoundError, FormatError) as err:
        return _fail(err)
    for path, reason in summary["refused"]:
        print(f"vidmine: refused {path}: {reason}", file=sys.stderr)
    print(f"{label}: {summary['imported']} imported, {len(summary['refused'])} refused -> {out}")
    return 2 if summary["refused"] and not summary["imported"] else 0


def cmd_import_kinetics(args: argparse.Namespace) -> int:
    from vidmine.imports.kinetics import import_kinetics

    return _run_import(
        "import-kinetics",
        args.out_dir,
        lambda: import_kinetics(args.pkl, args.out_dir, args.fps, args.width, args.height),
    )


def cmd_import_instavariety(args: argparse.Namespace) -> int:
    from vidmine.imports.instavariety import import_instavariety

    return _run_import(
        "import-instavariety",
        args.out_dir,
        lambda: import_instavariety(args.video_dir, args.out_dir, args.fps),
    )


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``export`` (one subcommand per target) and the two importers to ``sub``."""
    export = sub.add_parser("export", help="export a dataset in another project's format")
    kinds = export.add_subparsers(dest="export_kind", required=True)

    def add(
        name: str, help_text: str, func: Callable[[argparse.Namespace], int], out: str
    ) -> argparse.ArgumentParser:
        p = kinds.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--dataset-dir", required=True, help="results/{dataset}")
        p.add_argument("--out", required=True, help=out)
        p.set_defaults(func=func)
        return p

    p = add(
        "videopose3d",
        "VideoPose3D data_2d_custom_<name>.npz, one sequence per released person track",
        cmd_export_videopose3d,
        "the npz file (data_2d_custom_<name>.npz) or a folder",
    )
    p.add_argument("--name", required=True, help="the dataset name run.py -k takes")
    p.add_argument(
        "--videos",
        help="folder for one video per sequence, frame i = keypoint row i (run.py --viz-video)",
    )
    p.add_argument(
        "--min-keypoint-score",
        type=float,
        default=0.3,
        help="keypoints scoring below are filled from the joint's trusted frames (default 0.3)",
    )
    add(
        "detectron",
        "Detectron-style <clip>.mp4.npz per released clip (prepare_data_2d_custom.py input)",
        cmd_export_detectron,
        "the folder",
    )
    p = add("hmmr", "HMMR tfrecords (train/ per shard, test/ per track)", cmd_export_hmmr, "folder")
    p.add_argument(
        "--settings",
        default="",
        help="the config's hmmr section as JSON (precomputed_phi, min_track_frames, phis); "
        "schema defaults for what it leaves out",
    )
    add("vpd", "VPD pose/, videos/ and crops/ folders, one per track", cmd_export_vpd, "folder")
    p = add(
        "trackverse",
        "TrackVerse tracks_meta/, tracks_subsets/, tracks_motion/, tracks_embeddings/ of a domain",
        cmd_export_trackverse,
        "the folder",
    )
    p.add_argument("--domain", required=True, help="e.g. COCO")
    p.add_argument(
        "--curation", default="{}", help="trackverse.curation as JSON (subset file names)"
    )
    p = add(
        "index",
        "one row per track: times, scores, split, released, provenance",
        cmd_export_index,
        "the parquet file",
    )
    p.add_argument("--config-hash", required=True, help="hash of the dataset's config")

    kinetics_help = "Temporal-3D-Pose-Kinetics pickles -> track tables + lifter npz"
    p = sub.add_parser("import-kinetics", help=kinetics_help, description=kinetics_help)
    p.add_argument(
        "--out-dir", required=True, help="gets tracks/, kinetics_lifter.npz and refused.tsv"
    )
    p.add_argument("--fps", type=float, required=True, help="frame rate of the trimmed clips")
    p.add_argument("--width", type=int, required=True, help="clip width in pixels")
    p.add_argument("--height", type=int, required=True, help="clip height in pixels")
    p.add_argument("pkl", nargs="+", help="<youtube_id>_<start>_<end>.pkl files")
    p.set_defaults(func=cmd_import_kinetics)

    insta_help = "InstaVariety per-frame JSON tracks -> track tables"
    p = sub.add_parser("import-instavariety", help=insta_help, description=insta_help)
    p.add_argument("--out-dir", required=True, help="gets tracks/ and refused.tsv")
    p.add_argument("--fps", type=float, required=True, help="frame rate of the videos")
    p.add_argument("video_dir", help="<tag>/<video_id>/ (or a folder above or below it)")
    p.set_defaults(func=cmd_import_instavariety)
