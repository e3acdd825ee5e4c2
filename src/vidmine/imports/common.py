"""What every importer shares: a refused input is recorded with its reason and the import goes
on; ``refused.tsv`` lists them all."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from vidmine.formats import FormatError, error_line
from vidmine.io import write_text_atomic

log = logging.getLogger(__name__)

REFUSED_FILE = "refused.tsv"

Refused = list[tuple[str, str]]  # (file, one-line reason) of every refused input


def refuse(refused: Refused, path: str | os.PathLike, err: FormatError) -> None:
    """Record an importer's refused input with its reason, and log it; the import goes on."""
    refused.append((str(path), error_line(err)))
    log.warning("refused %s", error_line(err))


def write_refused(out_dir: Path, refused: Refused) -> None:
    """``refused.tsv``: file and reason of every refused input (header only when none)."""
    lines = ["file\treason"] + [f"{file}\t{reason}" for file, reason in refused]  # one-line
    write_text_atomic(out_dir / REFUSED_FILE, "\n".join(lines) + "\n")
