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

One owner. The whole shard runs under an exclusive lock beside its status table
(:mod:`vidmine.locks`), taken before the sweep of temporary files: a second copy of the job (a
rerun started while a killed Snakemake's job still runs) waits for the first and then reuses
what it finished, instead of writing the same files beside it.

Reproducible. The status table holds no timing: the seconds each item took (and a stage's own
timings, ``ItemResult.timings``) go to ``timings/{shard}.parquet`` beside it, the one status
file that differs between two identical runs.

Killed jobs say so. A shard ended by SIGTERM, SIGINT, SIGHUP, SIGUSR1 or SIGUSR2 (SLURM's
preemption and time limit, ``scancel``, Snakemake's own stop) logs which signal stopped it and
which item was in flight, records that item as ``interrupted`` in the journal, and then dies of
the same signal. SIGKILL cannot be caught: the journal then simply ends at the last finished
item.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import pyarrow as pa
from tqdm import tqdm

from vidmine.config import settings_hash
from vidmine.io import remove_partials, write_table_atomic
from vidmine.layout import DatasetLayout
from vidmine.locks import hold, lock_path_for
from vidmine.tables import Table

log = logging.getLogger(__name__)

OK, FAILED, SKIPPED, DROPPED = "ok", "failed", "skipped", "dropped"
STATUSES = (OK, FAILED, SKIPPED, DROPPED)
INTERRUPTED = "interrupted"  # journal only: the item a signal stopped
CAUGHT_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)

STATUS_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
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
    timings: dict[str, float] = field(default_factory=dict)  # seconds, kept out of the status

    @classmethod
    def ok(
        cls,
        outputs: Iterable[str] = (),
        fields: dict | None = None,
        rows=None,
        timings: dict[str, float] | None = None,
    ) -> ItemResult:
        return cls(OK, "", list(outputs), fields or {}, rows or [], timings or {})

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


def timings_path(status_path: Path) -> Path:
    """``status/{stage}/timings/{shard}.parquet``: beside the status tables, out of their glob."""
    status_path = Path(status_path)
    return status_path.parent / "timings" / status_path.name


def _is_reusable(entry: dict[str, Any], digest: str, base: Path, retry_failed: bool) -> bool:
    if entry.get("status") not in STATUSES or entry.get("settings_hash") != digest:
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
    wait_for_lock: bool = True,
) -> pd.DataFrame:
    """Process a shard's items through ``stage`` and write its status table (and row table).

    Under the shard's lock (``wait_for_lock``: wait for another live copy of the job, else
    :class:`vidmine.locks.LockHeld` at once); a stop signal raises :class:`Interrupted` after
    recording the item in flight (callers end the process with :func:`die_of`).

    ``base`` is the dataset folder: item outputs are stored relative to it, so a results folder
    can be moved or compared between runs. The items' rows go to ``table_path`` through
    ``table``'s schema (:mod:`vidmine.tables`).
    """
    if (table is None) != (table_path is None):
        raise ValueError("run_shard: a row table needs both table and table_path")
    status_path, base = Path(status_path), Path(base)
    journal = Journal(journal_path(status_path))
    in_flight: list[str] = []
    try:
        with hold(lock_path_for(status_path), wait=wait_for_lock), _signals_raise():
            entries = _run_items(stage, items, status_path, base, journal, retry_failed, in_flight)
            if table is not None:
                rows = [row for entry in entries for row in entry.get("rows", [])]
                table.write(rows, table_path)
            write_table_atomic(timings_table(entries), timings_path(status_path))
            status = status_table(entries)
            write_table_atomic(status, status_path)
    except Interrupted as stop:
        _record_interruption(stage, status_path, journal, in_flight, stop)
        raise
    return status.to_pandas()


def _run_items(
    stage: Stage,
    items: list[dict[str, Any]],
    status_path: Path,
    base: Path,
    journal: Journal,
    retry_failed: bool,
    in_flight: list[str],
) -> list[dict[str, Any]]:
    """The shard's loop: reuse what the journal says is done, process the rest."""
    for folder in stage.output_folders():
        if removed := remove_partials(folder):
            log.info("%s: removed %d partial files left by an interrupted run", stage.name, removed)
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
        in_flight[:] = [item["id"]]
        entry = _process_one(stage, item, digest)
        journal.append(entry)
        in_flight.clear()
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
    return entries


class Interrupted(BaseException):
    """A caught stop signal, raised where the shard was (a BaseException, so no stage's
    ``except Exception`` takes it for an item's failure)."""

    def __init__(self, signum: int):
        self.signum = signum
        self.signal_name = signal.Signals(signum).name
        super().__init__(f"stopped by {self.signal_name}")


@contextmanager
def _signals_raise() -> Iterator[None]:
    """Turn the stop signals into :class:`Interrupted` for the block (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Interrupted(signum)

    previous = {sig: signal.signal(sig, handler) for sig in CAUGHT_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _record_interruption(
    stage: Stage, status_path: Path, journal: Journal, in_flight: list[str], stop: Interrupted
) -> None:
    """The log line and journal entry a signal leaves: which signal, which item."""
    item = in_flight[0] if in_flight else None
    log.error(
        "%s %s: stopped by %s while processing %s",
        stage.name,
        status_path.stem,
        stop.signal_name,
        item or "no item (between items)",
    )
    if item is not None:
        journal.append(
            {"id": item, "status": INTERRUPTED, "reason": str(stop), "outputs": [], "seconds": 0}
        )


def die_of(stop: Interrupted) -> None:
    """End the process by the signal that stopped it (its exit status says which), after the
    ``finally`` blocks and the log handlers have run."""
    logging.shutdown()
    signal.signal(stop.signum, signal.SIG_DFL)
    os.kill(os.getpid(), stop.signum)


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
        "timings": {k: round(float(v), 3) for k, v in result.timings.items()},
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
            "outputs": list(e["outputs"]),
            "settings_hash": e["settings_hash"],
            "fields": json.dumps(e["fields"], sort_keys=True, default=str),
        }
        for e in entries
    ]
    return pa.Table.from_pylist(rows, schema=STATUS_SCHEMA)


def timings_table(entries: list[dict[str, Any]]) -> pa.Table:
    """How long each item took (``seconds``; stage timings as further columns): measured, so
    not reproducible, and so kept out of the status table."""
    rows = [
        {"id": e["id"], "seconds": float(e.get("seconds", 0.0)), **e.get("timings", {})}
        for e in entries
    ]
    frame = pd.DataFrame(rows, columns=None if rows else ["id", "seconds"])
    return pa.Table.from_pandas(frame, preserve_index=False)


def read_timings(status_path: str | Path) -> pd.DataFrame:
    """The timings table of a status table (empty when the shard never finished)."""
    path = timings_path(Path(status_path))
    return pd.read_parquet(path) if path.exists() else pd.DataFrame(columns=["id", "seconds"])


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
