"""Plumbing: the commands the workflow's rules call. Each parses its arguments and calls one
function of the stage (or module) that owns the work; none holds logic of its own."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vidmine.registry import STAGE_NAMES

COMMANDS = (
    "manifest",
    "run-stage",
    "download-report",
    "gather-clips",
    "gather-released",
    "gather-tracks",
    "trackverse-index",
    "curate",
    "gather-crops",
    "report-funnel",
    "report-download",
    "report-scenecut",
    "report-filter",
    "report-blur",
    "report-audit",
    "report-detect",
    "report-flow",
)


def cmd_manifest(args: argparse.Namespace) -> int:
    from vidmine.manifest import write_manifest
    from vidmine.sources import read_source

    source = json.loads(args.source)
    rejected: list = []
    records = read_source(source, rejected)
    write_manifest(records, source["type"], args.shard_size, args.out, rejected)
    return 0


def cmd_run_stage(args: argparse.Namespace) -> int:
    from vidmine.errors import BackendUnavailable
    from vidmine.layout import DatasetLayout
    from vidmine.locks import LockHeld
    from vidmine.pipeline import parse_settings, run_stage
    from vidmine.runner import Interrupted, die_of

    if args.threads:
        from vidmine.threads import limit_threads

        limit_threads(args.threads)
    dataset_dir = Path(args.dataset_dir)
    layout = DatasetLayout(dataset_dir.parent, dataset_dir.name)
    try:
        run_stage(
            args.stage,
            layout,
            args.shard,
            parse_settings(args.settings),
            args.retry_failed,
            wait_for_lock=not args.exit_if_locked,
        )
    except (BackendUnavailable, LockHeld) as exc:  # before any item was touched: one line
        print(f"vidmine: {exc}", file=sys.stderr)
        return 2
    except Interrupted as stop:  # logged and journalled by the runner
        die_of(stop)
    return 0


def cmd_download_report(args: argparse.Namespace) -> int:
    from vidmine.stages.download.gather import download_report

    download_report(args.manifest, args.statuses, args.out)
    return 0


def cmd_gather_clips(args: argparse.Namespace) -> int:
    from vidmine.stages.scenecut.gather import gather_clips

    gather_clips(args.tables, args.out)
    return 0


def cmd_gather_released(args: argparse.Namespace) -> int:
    from vidmine.stages.audit.gather import gather_released

    gather_released(args.clips, args.scores, args.audit, args.out)
    return 0


def cmd_gather_tracks(args: argparse.Namespace) -> int:
    from vidmine.stages.trackverse.gather import gather_tracks

    tracks = gather_tracks(args.tables, args.trackverse, args.out)
    print(f"{len(tracks)} tracks -> {args.out}")
    return 0


def cmd_trackverse_index(args: argparse.Namespace) -> int:
    from vidmine.stages.trackverse.gather import trackverse_index

    count = trackverse_index(args.dataset_dir, args.statuses, args.out)
    print(f"{count} records -> {args.out}")
    return 0


def cmd_curate(args: argparse.Namespace) -> int:
    from vidmine.stages.trackverse.gather import curate

    chosen, total, counts = curate(
        args.index, args.dataset_dir, args.statuses, args.name, json.loads(args.settings), args.out
    )
    print(f"{args.name}: {chosen} of {total} tracks {counts}")
    return 0


def cmd_gather_crops(args: argparse.Namespace) -> int:
    from vidmine.stages.flow.gather import gather_crops

    crops = gather_crops(args.tables, args.flow, args.out)
    print(f"{len(crops)} tracks -> {args.out}")
    return 0


def cmd_report_funnel(args: argparse.Namespace) -> int:
    from vidmine.funnel import funnel_report
    from vidmine.layout import DatasetLayout

    folder = Path(args.dataset_dir)
    funnel_report(DatasetLayout(folder.parent, folder.name), args.html, args.png)
    return 0


def cmd_report_download(args: argparse.Namespace) -> int:
    from vidmine.stages.download.report import download_summary
    from vidmine.tables import DOWNLOAD_REPORT

    download_summary(DOWNLOAD_REPORT.read(args.download_report), args.out)
    return 0


def cmd_report_scenecut(args: argparse.Namespace) -> int:
    from vidmine.stages.scenecut.report import clip_summary, shot_plot
    from vidmine.tables import CLIPS

    clips = CLIPS.read(args.clips)
    clip_summary(clips, args.clips_html)
    shot_plot(args.statuses, clips, args.shots_png)
    return 0


def cmd_report_filter(args: argparse.Namespace) -> int:
    from vidmine.stages.filter.report import filter_scores, filter_summary
    from vidmine.tables import SCORES

    scores = SCORES.concat(args.scores)
    filter_summary(scores, args.filter_html)
    filter_scores(scores, json.loads(args.settings), args.scores_png)
    return 0


def cmd_report_blur(args: argparse.Namespace) -> int:
    from vidmine.stages.blur.report import blur_examples
    from vidmine.tables import FACES, RELEASED

    released = RELEASED.read(args.released)
    blur_examples(released, FACES.concat(args.faces), Path(args.dataset_dir), args.out)
    return 0


def cmd_report_audit(args: argparse.Namespace) -> int:
    from vidmine.stages.audit.report import audit_summary
    from vidmine.tables import AUDIT, FACES

    audit_summary(AUDIT.concat(args.audit), FACES.concat(args.faces), args.out)
    return 0


def cmd_report_detect(args: argparse.Namespace) -> int:
    from vidmine.stages.detect.report import track_examples, track_length_histogram
    from vidmine.tables import RELEASED, TRACK_TABLE

    tracks = TRACK_TABLE.read(args.tracks)
    track_examples(tracks, RELEASED.read(args.released), Path(args.dataset_dir), args.examples_png)
    track_length_histogram(tracks, args.lengths_png)
    return 0


def cmd_report_flow(args: argparse.Namespace) -> int:
    from vidmine.stages.flow.report import crop_flow_examples
    from vidmine.tables import CROP_TABLE

    crop_flow_examples(CROP_TABLE.read(args.crops), Path(args.dataset_dir), args.out)
    return 0


def _parser(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=f"[plumbing] {help_text}", description=help_text)


def register(sub: argparse._SubParsersAction) -> None:
    p = _parser(sub, "manifest", "read a dataset's source and write its manifest")
    p.add_argument("--source", required=True, help="the dataset's source config as JSON")
    p.add_argument("--shard-size", type=int, required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_manifest)

    p = _parser(sub, "run-stage", "run one stage over one shard")
    p.add_argument("stage", choices=STAGE_NAMES)
    p.add_argument("--dataset-dir", required=True, help="results/{dataset}")
    p.add_argument("--shard", required=True)
    p.add_argument("--settings", default="{}", help="the stage's config section as JSON")
    p.add_argument("--retry-failed", action="store_true", help="redo items recorded as failed")
    p.add_argument(
        "--threads", type=int, default=None, help="CPUs the job may use (its rule's threads)"
    )
    p.add_argument(
        "--exit-if-locked",
        action="store_true",
        help="exit at once (naming the holder) when another process runs this shard; default:"
        " wait for it, then reuse what it finished",
    )
    p.set_defaults(func=cmd_run_stage)

    p = _parser(sub, "download-report", "what the dataset lost at download, and why")
    p.add_argument("--manifest", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("statuses", nargs="*", help="download status tables of the shards")
    p.set_defaults(func=cmd_download_report)

    p = _parser(sub, "gather-clips", "gather per-shard clip tables into the clip table")
    p.add_argument("--out", required=True)
    p.add_argument("tables", nargs="*")
    p.set_defaults(func=cmd_gather_clips)

    p = _parser(sub, "gather-released", "gather the released (blurred, audited) clips")
    p.add_argument("--out", required=True)
    p.add_argument("--clips", nargs="+", required=True)
    p.add_argument("--scores", nargs="+", required=True)
    p.add_argument("--audit", nargs="+", required=True, help="audit status tables")
    p.set_defaults(func=cmd_gather_released)

    p = _parser(sub, "gather-tracks", "gather per-shard track summaries into the track table")
    p.add_argument("--out", required=True)
    p.add_argument("--trackverse", nargs="*", default=[], help="per-shard track -> fn tables")
    p.add_argument("tables", nargs="*")
    p.set_defaults(func=cmd_gather_tracks)

    p = _parser(sub, "trackverse-index", "concatenate TrackVerse meta files (dedupe fn)")
    p.add_argument("--dataset-dir", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("statuses", nargs="*", help="trackverse status tables of the shards")
    p.set_defaults(func=cmd_trackverse_index)

    p = _parser(
        sub,
        "curate",
        "write one TrackVerse subset (NK-RND, CBN, VBN, MinRed-CBN, MaxQ90Motion-CBN)",
    )
    p.add_argument("--index", required=True)
    p.add_argument("--dataset-dir", required=True)
    p.add_argument("--name", required=True, help="e.g. COCO-CB300")
    p.add_argument("--settings", default="{}", help="the trackverse.curation section as JSON")
    p.add_argument("--out", required=True)
    p.add_argument("statuses", nargs="*", help="trackverse status tables (their metric files)")
    p.set_defaults(func=cmd_curate)

    p = _parser(sub, "gather-crops", "gather per-shard crop and flow tables into the crop table")
    p.add_argument("--out", required=True)
    p.add_argument("--flow", nargs="*", default=[], help="per-shard flow tables")
    p.add_argument("tables", nargs="*")
    p.set_defaults(func=cmd_gather_crops)

    p = _parser(sub, "report-funnel", "report items: what every stage passed on, and why not")
    p.add_argument("--dataset-dir", required=True, help="results/<dataset>")
    p.add_argument("--html", required=True, help="the funnel table")
    p.add_argument("--png", required=True, help="the funnel picture")
    p.set_defaults(func=cmd_report_funnel)

    p = _parser(sub, "report-download", "report item: download outcomes")
    p.add_argument("--download-report", required=True)
    p.add_argument("--out", required=True, help="HTML page")
    p.set_defaults(func=cmd_report_download)

    p = _parser(sub, "report-scenecut", "report items: clip table and shot plot")
    p.add_argument("--clips", required=True, help="the clip table")
    p.add_argument("--clips-html", required=True)
    p.add_argument("--shots-png", required=True)
    p.add_argument("statuses", nargs="+", help="scenecut status tables of the shards")
    p.set_defaults(func=cmd_report_scenecut)

    p = _parser(sub, "report-filter", "report items: filter decisions and scores")
    p.add_argument("--settings", required=True, help="the dataset's filter section as JSON")
    p.add_argument("--scores", nargs="+", required=True)
    p.add_argument("--filter-html", required=True)
    p.add_argument("--scores-png", required=True)
    p.set_defaults(func=cmd_report_filter)

    p = _parser(sub, "report-blur", "report item: released frames with blurred faces outlined")
    p.add_argument("--dataset-dir", required=True)
    p.add_argument("--released", required=True, help="the released clip table")
    p.add_argument("--faces", nargs="+", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_report_blur)

    p = _parser(sub, "report-audit", "report item: the privacy audit's verdict")
    p.add_argument("--audit", nargs="+", required=True, help="audit row tables")
    p.add_argument("--faces", nargs="+", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_report_audit)

    p = _parser(sub, "report-detect", "report items: tracks on released frames, track lengths")
    p.add_argument("--dataset-dir", required=True)
    p.add_argument("--tracks", required=True)
    p.add_argument("--released", required=True)
    p.add_argument("--examples-png", required=True)
    p.add_argument("--lengths-png", required=True)
    p.set_defaults(func=cmd_report_detect)

    p = _parser(sub, "report-flow", "report item: crops with their flow as colour wheels")
    p.add_argument("--dataset-dir", required=True)
    p.add_argument("--crops", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_report_flow)
