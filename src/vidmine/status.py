"""``vidmine status <dataset>``: per stage, how many items are ok, failed, dropped and pending.

Read from the status tables, plus the journals of shards still running, so it also answers
while a run is in flight.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pandas as pd
import pyarrow.parquet as pq

from vidmine.layout import STAGES, DatasetLayout
from vidmine.manifest import read_manifest
from vidmine.runner import FAILED, OK, Journal, journal_path


@dataclass
class StageSummary:
    stage: str
    counts: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    expected: int = 0
    shards_done: int = 0
    shards_running: int = 0

    @property
    def pending(self) -> int:
        return max(self.expected - sum(self.counts.values()), 0)


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


def _clip_count(layout: DatasetLayout, shards: list[str]) -> int:
    tables = [layout.table("clips", shard) for shard in shards]
    return sum(pq.ParquetFile(t).metadata.num_rows for t in tables if t.exists())


def summarise(layout: DatasetLayout) -> list[StageSummary]:
    manifest = read_manifest(layout.manifest)
    shards = sorted(manifest.shard.unique())
    expected = len(manifest)
    summaries = []
    for stage in STAGES:
        entries, done, running = _entries(layout, stage, shards)
        summary = StageSummary(stage, expected=expected, shards_done=done, shards_running=running)
        for entry in entries:
            summary.counts[entry["status"]] += 1
            if entry["status"] == FAILED:
                summary.reasons[entry["reason"][:90]] += 1
        summaries.append(summary)
        # What the next stage should see: the items this one passed on. Granularity changes at
        # the scene cut: from videos to the clips they were cut into.
        if stage == "scenecut":
            expected = _clip_count(layout, shards)
        else:
            expected = summary.counts[OK] + (summary.pending if done < len(shards) else 0)
    return summaries


def format_summary(dataset: str, summaries: list[StageSummary], n_shards: int, top: int = 3) -> str:
    lines = [
        f"dataset {dataset}: {n_shards} shards",
        f"{'stage':<10}{'ok':>8}{'failed':>8}{'dropped':>9}{'pending':>9}  shards done/running",
    ]
    for s in summaries:
        lines.append(
            f"{s.stage:<10}{s.counts[OK]:>8}{s.counts[FAILED]:>8}{s.counts['dropped']:>9}"
            f"{s.pending:>9}  {s.shards_done}/{s.shards_running}"
        )
        for reason, count in s.reasons.most_common(top):
            lines.append(f"{'':<10}  {count:>5} x {reason}")
    return "\n".join(lines)
