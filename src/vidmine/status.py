"""``vidmine status <dataset>``: per stage, how many items are ok, failed, dropped and pending.

Read from the status tables, plus the journals of shards still running, so it also answers
while a run is in flight; ``--watch`` reprints it every few seconds with each stage's throughput
since the last refresh.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd
import pyarrow.parquet as pq

from vidmine.ids import video_of_clip
from vidmine.layout import DatasetLayout
from vidmine.manifest import REJECTED_SCHEMA, read_manifest, rejected_path
from vidmine.registry import BY_NAME, CLIP, STAGES, VIDEO, StageSpec
from vidmine.runner import DROPPED, FAILED, INTERRUPTED, OK, Journal, journal_path


@dataclass
class StageSummary:
    stage: str
    counts: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)  # (status, reason) of failed and dropped
    expected: int = 0
    shards_done: int = 0
    shards_running: int = 0
    upstream_pending: int = 0

    @property
    def pending(self) -> int:
        return max(self.expected - sum(self.counts.values()), 0)

    @property
    def finished(self) -> int:
        """Items with an outcome (ok, failed, dropped, skipped)."""
        return sum(self.counts.values())


def _entries(layout: DatasetLayout, stage: str, shards: list[str]) -> tuple[list[dict], int, int]:
    """Latest entry per item from finished tables, else from in-flight journals."""
    entries, done, running = [], 0, 0
    for shard in shards:
        table = layout.status(stage, shard)
        if table.exists():
            done += 1
            entries += pd.read_parquet(table, columns=["id", "status", "reason"]).to_dict("records")
        elif journal_path(table).exists():
            running += 1
            entries += list(Journal(journal_path(table)).load().values())
    return entries, done, running


def clip_count(layout: DatasetLayout, shards: list[str]) -> int:
    """How many clips the scene cut wrote, from the per-shard clip tables' metadata."""
    tables = [layout.table("clips", shard) for shard in shards]
    return sum(pq.ParquetFile(t).metadata.num_rows for t in tables if t.exists())


def _expected(
    entry: StageSpec, summaries: dict[str, StageSummary], ok_ids: dict[str, set[str]], base: dict
) -> int:
    """How many items ``entry`` should see: those every stage it reads passed on (in its item
    kind), plus what those stages still have pending."""
    if not entry.reads:
        return base["videos"] if entry.reads_manifest else base["clips"]
    passed = set.intersection(*(ok_ids[name] for name in entry.reads))
    if entry.item == VIDEO and any(BY_NAME[name].item == CLIP for name in entry.reads):
        passed = {video_of_clip(item_id) for item_id in passed}
    return len(passed) + max(summaries[name].upstream_pending for name in entry.reads)


def summarise(layout: DatasetLayout) -> list[StageSummary]:
    """Per registry stage, in registry order: counts, top failure reasons, what is pending."""
    manifest = read_manifest(layout.manifest)
    shards = sorted(manifest.shard.unique())
    base = {"videos": len(manifest), "clips": clip_count(layout, shards)}
    summaries: dict[str, StageSummary] = {}
    ok_ids: dict[str, set[str]] = {}
    for entry in STAGES:
        entries, done, running = _entries(layout, entry.name, shards)
        expected = _expected(entry, summaries, ok_ids, base)
        summary = StageSummary(
            entry.name, expected=expected, shards_done=done, shards_running=running
        )
        for item in entries:
            if item["status"] == INTERRUPTED:  # a signal stopped the shard here: still pending
                summary.reasons[(INTERRUPTED, f"{item['reason']} at {item['id']}")] += 1
                continue
            summary.counts[item["status"]] += 1
            if item["status"] in (FAILED, DROPPED):
                summary.reasons[(item["status"], item["reason"])] += 1
        ok_ids[entry.name] = {item["id"] for item in entries if item["status"] == OK}
        # What the next stage should still wait for: this one's pending items, while some of
        # its shards have not finished.
        summary.upstream_pending = summary.pending if done < len(shards) else 0
        summaries[entry.name] = summary
    return list(summaries.values())


def rejected_rows(layout: DatasetLayout) -> pd.DataFrame:
    """The source rows the manifest left out (file, where, reason); none before it is built."""
    path = rejected_path(layout.manifest)
    return pd.read_parquet(path) if path.exists() else pd.DataFrame(columns=REJECTED_SCHEMA.names)


def format_summary(
    dataset: str,
    summaries: list[StageSummary],
    n_shards: int,
    top: int = 3,
    rejected: pd.DataFrame | None = None,
) -> str:
    """The status table; under each stage its most common failed and dropped reasons, in
    full; first, the source rows the manifest rejected."""
    lines = [f"dataset {dataset}: {n_shards} shards"]
    if rejected is not None and len(rejected):
        lines.append(f"source: {len(rejected)} rows rejected (rejected_rows.parquet)")
        for reason, count in Counter(rejected.reason).most_common(top):
            example = rejected[rejected.reason == reason].iloc[0]
            lines.append(
                f"{'':<10}  {count:>5} x {reason} (e.g. {example['file']}, {example['where']})"
            )
    lines += [
        f"{'stage':<10}{'ok':>8}{'failed':>8}{'dropped':>9}{'pending':>9}  shards done/running",
    ]
    for s in summaries:
        lines.append(
            f"{s.stage:<10}{s.counts[OK]:>8}{s.counts[FAILED]:>8}{s.counts['dropped']:>9}"
            f"{s.pending:>9}  {s.shards_done}/{s.shards_running}"
        )
        for (status, reason), count in s.reasons.most_common(top):
            lines.append(f"{'':<10}  {count:>5} x {status}: {reason}")
    return "\n".join(lines)


def format_throughput(
    previous: list[StageSummary], current: list[StageSummary], seconds: float
) -> str:
    """Per stage, items finished per minute between two summaries ``seconds`` apart."""
    before = {s.stage: s.finished for s in previous}
    lines = [f"throughput over the last {seconds:.0f} s (items/min):"]
    for s in current:
        done = s.finished - before.get(s.stage, 0)
        rate = 60 * done / seconds if seconds > 0 else 0.0
        lines.append(f"{s.stage:<10}{rate:>8.1f}  (+{done})")
    return "\n".join(lines)


def watch(
    layout: DatasetLayout,
    interval: float,
    n_shards: int,
    refreshes: int | None = None,
    show: Callable[[str], None] = print,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Print the status every ``interval`` seconds (``refreshes`` times; forever by default),
    each time after the first with the items per minute every stage finished since the last."""
    previous, then, count = None, clock(), 0
    while refreshes is None or count < refreshes:
        if count:
            sleep(interval)
        summaries, now = summarise(layout), clock()
        text = format_summary(layout.dataset, summaries, n_shards)
        if previous is not None:
            text += "\n" + format_throughput(previous, summaries, now - then)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        show(f"--- {stamp}\n{text}")
        previous, then, count = summaries, now, count + 1
