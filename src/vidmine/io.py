"""Atomic file writing.

Every file vidmine produces is written under a temporary name in its final folder and renamed
into place, so an interrupted job (SIGKILL, preemption) never leaves a file that looks complete.
Temporary names are hidden and carry a ``.partial-<pid>`` marker; ``remove_partials`` sweeps the
ones a killed job left behind.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

PARTIAL_MARKER = ".partial-"


def partial_path(final: Path) -> Path:
    """A temporary sibling of ``final`` that keeps its suffix (ffmpeg picks muxers by suffix)."""
    final = Path(final)
    return final.with_name(f".{final.stem}{PARTIAL_MARKER}{os.getpid()}{final.suffix}")


@contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path; on success rename it onto ``final``, on error delete it."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(final)
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=1, sort_keys=True, default=str) + "\n")


def write_parquet_atomic(
    frame: pd.DataFrame, path: str | os.PathLike, schema: pa.Schema | None = None
) -> None:
    """Write a DataFrame as parquet atomically; an empty frame still gets its schema."""
    write_table_atomic(pa.Table.from_pandas(frame, schema=schema, preserve_index=False), path)


def write_table_atomic(table: pa.Table, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def remove_partials(folder: str | os.PathLike) -> int:
    """Delete temp files and work folders that killed jobs left in ``folder``; return the count."""
    folder = Path(folder)
    if not folder.exists():
        return 0
    removed = 0
    for leftover in sorted(folder.rglob(f".*{PARTIAL_MARKER}*")):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)  # a download or cut work folder
        else:
            leftover.unlink(missing_ok=True)
        removed += 1
    return removed


def link_or_copy(source: str | os.PathLike, target: str | os.PathLike) -> str:
    """Hard-link ``source`` to ``target`` (no second copy of the bytes), else copy it.

    Returns ``"linked"`` or ``"copied"``. Hard links fail across file systems (an export or a
    released zone elsewhere than ``results/``). Not atomic by itself: give it a temporary name
    (``atomic_path``) or a folder that is renamed into place.
    """
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
        return "linked"
    except OSError:
        shutil.copy2(source, target)
        return "copied"
