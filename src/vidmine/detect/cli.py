"""``vidmine`` subcommands of detection, tracking, crops and flow: gathers, TrackVerse index
and subsets, report items. Registered by ``vidmine.cli``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd


def cmd_gather_tracks(args: argparse.Namespace) -> int:
    """The dataset's track table: every track of every shard, with its TrackVerse ``fn``."""
    from vidmine.gather import concat_tables
    from vidmine.io import write_parquet_atomic

    tracks = concat_tables(args.tables)
    links = concat_tables(args.trackverse) if args.trackverse else pd.DataFrame()
    if len(tracks) and len(links):
        tracks = tracks.merge(links, on=["clip_id", "track_id"], how="left")
    elif len(tracks):
        tracks["fn"] = None
    write_parquet_atomic(tracks, args.out)
    print(f"{len(tracks)} tracks -> {args.out}")
    return 0


def cmd_trackverse_index(args: argparse.Namespace) -> int:
    """Index of the meta files that the shards' trackverse status tables list."""
    from vidmine.runner import ok_items
    from vidmine.trackverse import build_index

    root = Path(args.dataset_dir)
    meta = [
        root / output
        for status in args.statuses
        for outputs in ok_items(status)["outputs"]
        for output in outputs
        if output.endswith("-meta.jsonl.gzip")
    ]
    print(f"{build_index(meta, args.out)} records -> {args.out}")
    return 0


def cmd_curate(args: argparse.Namespace) -> int:
    from vidmine.trackverse import class_counts, load_index, select_subset, write_subset

    tracks = pd.read_parquet(args.tracks) if args.tracks else None
    index = load_index(args.index, tracks)
    curation = json.loads(args.settings)
    lines = select_subset(args.name, index, curation)
    write_subset(index, lines, args.out)
    print(f"{args.name}: {len(lines)} of {len(index)} tracks {class_counts(index, lines)}")
    return 0


def cmd_report_tracks(args: argparse.Namespace) -> int:
    from vidmine.detect.report import track_examples, track_length_histogram

    tracks = pd.read_parquet(args.tracks)
    released = pd.read_parquet(args.released)
    track_examples(tracks, released, Path(args.dataset_dir), args.examples_png)
    track_length_histogram(tracks, args.lengths_png)
    return 0


def cmd_gather_crops(args: argparse.Namespace) -> int:
    """The dataset's crop table: one row per person track with its crop and flow files."""
    from vidmine.gather import concat_tables
    from vidmine.io import write_parquet_atomic

    crops = concat_tables(args.tables)
    flow = concat_tables(args.flow) if args.flow else pd.DataFrame()
    if len(crops) and len(flow):
        flow = flow.rename(columns={"path": "flow_path"})
        crops = crops.merge(flow, on=["clip_id", "track_id"], how="left")
    write_parquet_atomic(crops, args.out)
    print(f"{len(crops)} tracks -> {args.out}")
    return 0


def cmd_report_crops(args: argparse.Namespace) -> int:
    from vidmine.detect.report import crop_flow_examples

    crop_flow_examples(pd.read_parquet(args.crops), Path(args.dataset_dir), args.out)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gather-crops", help="gather per-shard crop and flow tables")
    p.add_argument("--out", required=True)
    p.add_argument("--flow", nargs="*", default=[], help="per-shard flow tables")
    p.add_argument("tables", nargs="*")
    p.set_defaults(func=cmd_gather_crops)

    p = sub.add_parser("report-crops", help="crops with their flow as colour-wheel images")
    p.add_argument("--dataset-dir", required=True)
    p.add_argument("--crops", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_report_crops)

    p = sub.add_parser("gather-tracks", help="gather per-shard track summaries")
    p.add_argument("--out", required=True)
    p.add_argument("--trackverse", nargs="*", default=[], help="per-shard track -> fn tables")
    p.add_argument("tables", nargs="*")
    p.set_defaults(func=cmd_gather_tracks)

    p = sub.add_parser("trackverse-index", help="concatenate TrackVerse meta files (dedupe fn)")
    p.add_argument("--dataset-dir", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("statuses", nargs="*", help="trackverse status tables of the shards")
    p.set_defaults(func=cmd_trackverse_index)

    p = sub.add_parser("curate", help="write one TrackVerse subset (RND-N, CBN, VBN, MinRed-CBN)")
    p.add_argument("--index", required=True)
    p.add_argument("--tracks", help="the dataset's track table (motion, embeddings)")
    p.add_argument("--name", required=True, help="e.g. COCO-CB300")
    p.add_argument("--settings", default="{}", help="the trackverse.curation section as JSON")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_curate)

    p = sub.add_parser("report-tracks", help="report items of detection and tracking")
    p.add_argument("--dataset-dir", required=True)
    p.add_argument("--tracks", required=True)
    p.add_argument("--released", required=True)
    p.add_argument("--examples-png", required=True)
    p.add_argument("--lengths-png", required=True)
    p.set_defaults(func=cmd_report_tracks)
