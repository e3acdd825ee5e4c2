"""User commands: what a dataset looks like now, is a config valid, delete private pixels."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

COMMANDS = ("status", "check-config", "fetch-weights", "purge")


def cmd_status(args: argparse.Namespace) -> int:
    from vidmine.layout import DatasetLayout
    from vidmine.manifest import shard_names
    from vidmine.status import format_summary, rejected_rows, summarise

    layout = DatasetLayout(Path(args.results), args.dataset)
    if not layout.manifest.exists():
        print(f"{layout.manifest}: no manifest yet for dataset {args.dataset!r}", file=sys.stderr)
        return 1
    n_shards = len(shard_names(layout.manifest))
    if args.watch is not None:
        from vidmine.status import watch

        try:
            watch(layout, args.watch, n_shards, show=lambda text: print(text, flush=True))
        except KeyboardInterrupt:
            pass
        return 0
    rejected = rejected_rows(layout)
    print(format_summary(args.dataset, summarise(layout), n_shards, rejected=rejected))
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
    from vidmine.config import load_config, missing_inputs

    config = load_config(args.config)
    if missing := missing_inputs(config):
        for line in missing:
            print(f"{args.config}: {line}", file=sys.stderr)
        return 2
    print(json.dumps(config, indent=2) if args.show else f"{args.config}: ok")
    return 0


def cmd_fetch_weights(args: argparse.Namespace) -> int:
    """Every weights file the config's backends load, into $VIDMINE_CACHE, before submission."""
    from vidmine.config import load_config
    from vidmine.prefetch import fetch_weights
    from vidmine.weights import cache_dir

    try:
        results = fetch_weights(load_config(args.config), args.datasets or None)
    except KeyError as exc:
        print(f"{args.config}: {exc.args[0]}", file=sys.stderr)
        return 2
    for r in results:
        print(f"{r.dataset}: {r.weight.what}: {r.status}: {r.detail}")
    if not results:
        print(f"no configured backend loads weights (cache: {cache_dir()})")
    failed = [r for r in results if r.status == "error"]
    return 1 if failed else 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="per stage: ok, failed (top reasons) and pending")
    p.add_argument("dataset")
    p.add_argument("--results", default="results", help="the results folder (default: results)")
    p.add_argument(
        "--watch",
        nargs="?",
        type=float,
        const=10.0,
        metavar="SECONDS",
        help="reprint every SECONDS (default 10) with each stage's items/min; Ctrl-C stops",
    )
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("check-config", help="validate a config file against the schema")
    p.add_argument("config", nargs="?", default="config/config.yaml")
    p.add_argument("--show", action="store_true", help="print it with defaults filled in")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser(
        "fetch-weights",
        help="download every weights file the config names into $VIDMINE_CACHE (for offline nodes)",
    )
    p.add_argument("datasets", nargs="*", help="only these datasets (default: all)")
    p.add_argument("--config", default="config/config.yaml")
    p.set_defaults(func=cmd_fetch_weights)

    p = sub.add_parser("purge", help="delete a dataset's unblurred intermediates after a run")
    p.add_argument("dataset")
    p.add_argument("--results", default="results")
    p.add_argument("--yes", action="store_true", help="really delete")
    p.set_defaults(func=cmd_purge)
