"""The ``vidmine`` command line. Snakemake rules call these subcommands and hold no logic."""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import sys
from pathlib import Path

from vidmine.config import ConfigError, load_config
from vidmine.layout import STAGES


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def cmd_manifest(args: argparse.Namespace) -> int:
    from vidmine.manifest import write_manifest
    from vidmine.sources import read_source

    source = json.loads(args.source)
    write_manifest(read_source(source), source["type"], args.shard_size, args.out)
    return 0


def cmd_run_stage(args: argparse.Namespace) -> int:
    from vidmine.detect.base import BackendUnavailable
    from vidmine.layout import DatasetLayout
    from vidmine.pipeline import parse_settings, run_stage

    dataset_dir = Path(args.dataset_dir)
    layout = DatasetLayout(dataset_dir.parent, dataset_dir.name)
    try:
        run_stage(args.stage, layout, args.shard, parse_settings(args.settings), args.retry_failed)
    except BackendUnavailable as exc:  # before any item was touched: one line, no traceback
        print(f"vidmine: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_gather_clips(args: argparse.Namespace) -> int:
    from vidmine.gather import gather_clips

    gather_clips(args.tables, args.out)
    return 0


def cmd_gather_released(args: argparse.Namespace) -> int:
    from vidmine.gather import gather_released

    gather_released(args.clips, args.scores, args.audit, args.out)
    return 0


def cmd_download_report(args: argparse.Namespace) -> int:
    from vidmine.gather import download_report

    download_report(args.manifest, args.statuses, args.out)
    return 0


def cmd_report_items(args: argparse.Namespace) -> int:
    import pandas as pd

    from vidmine import report

    clips = pd.read_parquet(args.clips)
    report.download_summary(pd.read_parquet(args.download_report), args.download_html)
    report.clip_summary(clips, args.clips_html)
    report.shot_plot(args.scenecut_statuses, clips, args.shots_png)
    return 0


def cmd_report_privacy(args: argparse.Namespace) -> int:
    import pandas as pd

    from vidmine import report
    from vidmine.gather import concat_tables

    root = Path(args.dataset_dir)
    scores, faces = concat_tables(args.scores), concat_tables(args.faces)
    report.filter_summary(scores, args.filter_html)
    report.audit_summary(concat_tables(args.audit), faces, args.audit_html)
    report.dropped_examples(
        scores, pd.read_parquet(args.clips), root, json.loads(args.blur_settings), args.dropped_png
    )
    report.blur_examples(pd.read_parquet(args.released), faces, root, args.blur_png)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from vidmine.layout import DatasetLayout
    from vidmine.manifest import shard_names
    from vidmine.status import format_summary, summarise

    layout = DatasetLayout(Path(args.results), args.dataset)
    if not layout.manifest.exists():
        print(f"{layout.manifest}: no manifest yet for dataset {args.dataset!r}", file=sys.stderr)
        return 1
    print(format_summary(args.dataset, summarise(layout), len(shard_names(layout.manifest))))
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    """Delete a dataset's unblurred intermediates; released clips (hard links) stay."""
    import shutil

    from vidmine.layout import DatasetLayout

    layout = DatasetLayout(Path(args.results), args.dataset)
    folders = [layout.root / "private", layout.root / "work" / "blurred"]
    present = [f for f in folders if f.exists()]
    if not present:
        print(f"{layout.root}: nothing private to delete")
        return 0
    if not args.yes:
        print("would delete (add --yes): " + ", ".join(map(str, present)))
        return 1
    for folder in present:
        shutil.rmtree(folder)
        print(f"deleted {folder}")
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    print(json.dumps(config, indent=2) if args.show else f"{args.config}: ok")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vidmine", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("manifest", help="read a dataset's source and write its manifest")
    p.add_argument("--source", required=True, help="the dataset's source config as JSON")
    p.add_argument("--shard-size", type=int, required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_manifest)

    p = sub.add_parser("run-stage", help="run one stage over one shard")
    p.add_argument("stage", choices=STAGES)
    p.add_argument("--dataset-dir", required=True, help="results/{dataset}")
    p.add_argument("--shard", required=True)
    p.add_argument("--settings", default="{}", help="the stage's config section as JSON")
    p.add_argument("--retry-failed", action="store_true", help="redo items recorded as failed")
    p.set_defaults(func=cmd_run_stage)

    p = sub.add_parser("gather-clips", help="gather per-shard clip tables into the clip table")
    p.add_argument("--out", required=True)
    p.add_argument("tables", nargs="*")
    p.set_defaults(func=cmd_gather_clips)

    p = sub.add_parser("gather-released", help="gather the released (blurred, audited) clips")
    p.add_argument("--out", required=True)
    p.add_argument("--clips", nargs="+", required=True)
    p.add_argument("--scores", nargs="+", required=True)
    p.add_argument("--audit", nargs="+", required=True, help="audit status tables")
    p.set_defaults(func=cmd_gather_released)

    p = sub.add_parser("download-report", help="what the dataset lost at download, and why")
    p.add_argument("--manifest", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("statuses", nargs="*")
    p.set_defaults(func=cmd_download_report)

    p = sub.add_parser("report-items", help="HTML tables and plots for snakemake --report")
    p.add_argument("--download-report", required=True)
    p.add_argument("--clips", required=True)
    p.add_argument("--download-html", required=True)
    p.add_argument("--clips-html", required=True)
    p.add_argument("--shots-png", required=True)
    p.add_argument("scenecut_statuses", nargs="+")
    p.set_defaults(func=cmd_report_items)

    p = sub.add_parser("report-privacy", help="report items of the filter, blur and audit")
    p.add_argument("--dataset-dir", required=True)
    p.add_argument("--clips", required=True, help="the clip table")
    p.add_argument("--released", required=True, help="the released clip table")
    p.add_argument("--blur-settings", required=True, help="the dataset's blur section as JSON")
    p.add_argument("--scores", nargs="+", required=True)
    p.add_argument("--faces", nargs="+", required=True)
    p.add_argument("--audit", nargs="+", required=True, help="audit row tables")
    p.add_argument("--filter-html", required=True)
    p.add_argument("--audit-html", required=True)
    p.add_argument("--dropped-png", required=True)
    p.add_argument("--blur-png", required=True)
    p.set_defaults(func=cmd_report_privacy)

    p = sub.add_parser("status", help="per stage: ok, failed (top reasons) and pending")
    p.add_argument("dataset")
    p.add_argument("--results", default="results", help="the results folder (default: results)")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("purge", help="delete a dataset's unblurred intermediates after a run")
    p.add_argument("dataset")
    p.add_argument("--results", default="results")
    p.add_argument("--yes", action="store_true", help="really delete")
    p.set_defaults(func=cmd_purge)

    p = sub.add_parser("check-config", help="validate a config file against the schema")
    p.add_argument("config", nargs="?", default="config/config.yaml")
    p.add_argument("--show", action="store_true", help="print it with defaults filled in")
    p.set_defaults(func=cmd_check_config)

    _register_optional(sub)
    return parser


def _register_optional(sub: argparse._SubParsersAction) -> None:
    """Subcommands of stages that live in their own subpackages."""
    for module in ("vidmine.detect.cli", "vidmine.formats.cli", "vidmine.lifter.cli"):
        try:
            if importlib.util.find_spec(module) is None:
                continue
        except ModuleNotFoundError:  # the subpackage itself is absent
            continue
        importlib.import_module(module).register(sub)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"vidmine: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
