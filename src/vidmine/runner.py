"""The shared shard runner: the one place that loops over a shard's items.

A stage (``vidmine.stages``) only says how to process one item. The runner owns everything a
cluster job needs around that: skipping items that are already complete, catching a per-item
failure so one bad video never kills a shard, a progress bar, per-item log lines, and the
per-shard status table.

Resumability. Each finished item is appended as one JSON line to the shard's journal
(``status/{stage}/{shard}.journal.jsonl``), flushed and fsynced, *after* its files were renamed
into place. A job killed at any moment therefore loses at most the item in flight: on the rerun,
journal entries whose outputs still exist and whose settings hash matches are reused, a torn last
line is ignored, and leftover temporary files are deleted. The status parquet, the rule's declared
output, is written last, so Snakemake sees the shard as done only when it is.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import pyarrow as pa
from tqdm import tqdm

from vidmine.config import settings_hash
from vidmine.io import remove_partials, write_table_atomic
from vidmine.layout import DatasetLayout
from vidmine.tables import Table

log = logging.getLogger(__name__)

OK, FAILED, SKIPPED, DROPPED = "ok", "failed", "skipped", "dropped"
STATUSES = (OK, FAILED, SKIPPED, DROPPED)

STATUS_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("seconds", pa.float64()),
        ("outputs", pa.list_(pa.string())),
        ("settings_hash", pa.string()),
        ("fields", pa.string()),
    ]
)


@dataclass
class ItemResult:
    """What a stage returns for one item; errors are returned, not raised."""

    status: str
    reason: str = ""
    outputs: list[str] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def ok(cls, outputs: Iterable[str] = (), fields: dict | None = None, rows=None) -> ItemResult:
        return cls(OK, "", list(outputs), fields or {}, rows or [])

    @classmethod
    def failed(cls, reason: str, fields: dict | None = None) -> ItemResult:
        return cls(FAILED, one_line(reason), [], fields or {}, [])

    @classmethod
    def dropped(cls, reason: str, fields: dict | None = None, rows=None) -> ItemResult:
        return cls(DROPPED, one_line(reason), [], fields or {}, rows or [])


def one_line(text: str, limit: int = 300) -> str:
    """Collapse a (possibly multi-line) error to one line for tables and logs."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    line = " | ".join(lines) if len(lines) <= 2 else f"{lines[0]} | ... | {lines[-1]}"
    return line[:limit]


class Stage(Protocol):
    """One pipeline stage; ``process`` handles one item dict that has an ``id`` key."""

    name: str
    settings: dict[str, Any]

    def result_settings(self) -> dict[str, Any]:
        """The settings that decide an item's result (changing them redoes the item)."""
        ...

    def output_folders(self) -> list[Path]:
        """Folders the stage writes items into (swept for leftover partial files)."""
        ...

    def process(self, item: dict[str, Any]) -> ItemResult: ...


class ShardStage:
    """The stage contract's defaults; a stage subclasses it and writes ``process``.

    A stage keeps its layout, shard and settings; by default all its settings decide an item's
    result (``result_settings``), and the folder its items go to (``item_folder``, swept for
    files a killed job left half-written) is none.
    """

    name = ""

    def __init__(self, layout: DatasetLayout, shard: str, settings: dict[str, Any]):
        self.layout, self.shard, self.settings = layout, shard, settings
        self.folder = self.item_folder()

    def item_folder(self) -> Path | None:
        return None

    def result_settings(self) -> dict[str, Any]:
        return dict(self.settings)

    def output_folders(self) -> list[Path]:
        return [] if self.folder is None else [self.folder]

    def process(self, item: dict[str, Any]) -> ItemResult:
        raise NotImplementedError


class Journal:
    """Append-only JSON-lines record of finished items; survives SIGKILL at any byte."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def load(self) -> dict[str, dict[str, Any]]:
        entries: dict[str, dict[str, Any]] = {}
        if not self.path.exists():
            return entries
        with self.path.open("rb") as handle:
            for raw in handle:
                try:
                    entry = json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    continue  # a line torn by a kill mid-write
                if isinstance(entry, dict) and "id" in entry:
                    entries[entry["id"]] = entry
        return entries

    def append(self, entry: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(entry, default=str) + "\n"
        # The rare torn line from an earlier kill must not swallow this one.
        prefix = "" if self._ends_cleanly() else "\n"
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(prefix + line)
            handle.flush()
            os.fsync(handle.fileno())

    def _ends_cleanly(self) -> bool:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return True
        with self.path.open("rb") as handle:
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) == b"\n"


def journal_path(status_path: Path) -> Path:
    return Path(status_path).with_suffix(".journal.jsonl")


def _is_reusable(entry: dict[str, Any], digest: str, base: Path, retry_failed: bool) -> bool:
    if entry.get("settings_hash") != digest:
        return False
    if entry["status"] == FAILED and retry_failed:
        return False
    return all((base / out).exists() for out in entry.get("outputs", []))


def run_shard(
    stage: Stage,
    items: list[dict[str, Any]],
    status_path: str | Path,
    base: str | Path,
    table_path: str | Path | None = None,
    retry_failed: bool = False,
    table: Table | None = None,
) -> pd.DataFrame:
    """Process a shard's items through ``stage`` and write its status table (and row table).

    ``base`` is the dataset folder: item outputs are stored relative to it, so a results folder
    can be moved or compared between runs. The items' rows go to ``table_path`` through
    ``table``'s schema (:mod:`vidmine.tables`).
    """
    if (table is None) != (table_path is None):
        raise ValueError("run_shard: a row table needs both table and table_path")
    status_path, base = Path(status_path), Path(base)
    for folder in stage.output_folders():
        if removed := remove_partials(folder):
            log.info("%s: removed %d partial files left by an interrupted run", stage.name, removed)
    journal = Journal(journal_path(status_path))
    done = journal.load()
    digest = settings_hash(stage.result_settings())
    entries, counts = [], dict.fromkeys(STATUSES, 0)
    reused = 0
    bar = tqdm(items, desc=f"{stage.name} {status_path.stem}", unit="item", mininterval=2.0)
    for item in bar:
        previous = done.get(item["id"])
        if previous and _is_reusable(previous, digest, base, retry_failed):
            entries.append(previous)
            counts[previous["status"]] += 1
            reused += 1
            continue
        entry = _process_one(stage, item, digest)
        journal.append(entry)
        entries.append(entry)
        counts[entry["status"]] += 1
        log.info(
            "%s %s: %s in %.1fs%s",
            stage.name,
            item["id"],
            entry["status"],
            entry["seconds"],
            f" ({entry['reason']})" if entry["reason"] else "",
        )
    log.info(
        "%s %s: %s; %d reused from an earlier run", stage.name, status_path.stem, counts, reused
    )
    if table is not None:
        table.write([row for entry in entries for row in entry.get("rows", [])], table_path)
    status = status_table(entries)
    write_table_atomic(status, status_path)
    return status.to_pandas()


def _process_one(stage: Stage, item: dict[str, Any], digest: str) -> dict[str, Any]:
    started = time.monotonic()
    try:
        result = stage.process(item)
    except Exception as exc:  # the safety net: a stage should return failures, not raise
        log.exception("%s %s: unexpected error", stage.name, item["id"])
        result = ItemResult.failed(f"{type(exc).__name__}: {exc}")
    return {
        "id": item["id"],
        "status": result.status,
        "reason": result.reason,
        "seconds": round(time.monotonic() - started, 3),
        "outputs": result.outputs,
        "settings_hash": digest,
        "fields": result.fields,
        "rows": result.rows,
    }


def status_table(entries: list[dict[str, Any]]) -> pa.Table:
    """The status table: one row per item; stage-specific scalars as a JSON ``fields`` column."""
    rows = [
        {
            "id": e["id"],
            "status": e["status"],
            "reason": e["reason"],
            "seconds": float(e["seconds"]),
            "outputs": list(e["outputs"]),
            "settings_hash": e["settings_hash"],
            "fields": json.dumps(e["fields"], sort_keys=True, default=str),
        }
        for e in entries
    ]
    return pa.Table.from_pylist(rows, schema=STATUS_SCHEMA)


def read_status(path: str | Path) -> pd.DataFrame:
    """A status table with its ``fields`` JSON expanded into columns."""
    frame = pd.read_parquet(path)
    expanded = pd.DataFrame(
        [json.loads(f) if f else {} for f in frame["fields"]], index=frame.index
    )
    expanded = expanded.drop(columns=[c for c in expanded.columns if c in STATUS_SCHEMA.names])
    return pd.concat([frame.drop(columns=["fields"]), expanded], axis=1)


def ok_items(path: str | Path) -> pd.DataFrame:
    """Rows of a status table whose status is ok: what the next stage takes."""
    frame = read_status(path)
    return frame[frame.status == OK].reset_index(drop=True)
