"""The ``vidmine`` command line.

User commands (``status``, ``check-config``, ``purge``, ``export``, ``import-*``, ``lifter``,
``embed``) are what a researcher types; plumbing commands (``manifest``, ``run-stage``,
``gather-*``, ``report-*``, ...) are what the Snakemake rules call, and hold no logic. Building
the parser imports no heavy library (torch, mediapipe, OpenCV, OpenVINO): each command imports
what it needs when it runs.
"""

from __future__ import annotations

import argparse
import logging
import sys

from vidmine.cli import exports, plumbing, user
from vidmine.config import ConfigError
from vidmine.formats import FormatError

EPILOG = (
    "user commands: "
    + ", ".join(user.COMMANDS + exports.COMMANDS + ("lifter", "embed"))
    + ". plumbing (called by the workflow's rules): "
    + ", ".join(plumbing.COMMANDS)
    + ". 'vidmine COMMAND --help' for each."
)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def package_version() -> str:
    """The installed distribution's version (pyproject.toml's, for an editable install)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vidmine")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vidmine",
        description="Mine in-the-wild video for pose and object-track datasets.",
        epilog=EPILOG,
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--version", action="version", version=f"vidmine {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    user.register(sub)
    exports.register(sub)
    from vidmine.embed.cli import register as register_embed
    from vidmine.lifter.cli import register as register_lifter

    register_lifter(sub)
    register_embed(sub)
    plumbing.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return args.func(args)
    except (ConfigError, FormatError) as exc:  # a bad config or input file: one line
        print(f"vidmine: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
