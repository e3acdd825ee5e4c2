"""The manifest: the one table of videos, with safe ids and fixed shard assignments.

Shards are fixed lists of videos. A video keeps the shard it was given the first time the
manifest was written; new videos fill the last shard and then new ones, in source order. Adding
videos to a source therefore never reshuffles existing shards, and a fresh build from the same
source gives the same assignment.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from vidmine.ids import Collision, resolve_collisions, safe_id, shard_name
from vidmine.io import write_parquet_atomic
from vidmine.sources import RejectedRow, Rejections, SourceRecord

log = logging.getLogger(__name__)

MANIFEST_SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),
        ("shard", pa.string()),
        ("raw_id", pa.string()),
        ("url", pa.string()),
        ("start", pa.float64()),
        ("end", pa.float64()),
        ("split", pa.string()),
        ("label", pa.string()),
        ("spans", pa.list_(pa.list_(pa.float64()))),
        ("source", pa.string()),
        ("meta", pa.string()),
        ("id_renamed_from", pa.string()),
    ]
)
# Source rows left out of the manifest: the file, where in it, and why (sources.RejectedRow).
REJECTED_SCHEMA = pa.schema(
    [("file", pa.string()), ("where", pa.string()), ("reason", pa.string())]
)


def rejected_path(manifest_path: str | Path) -> Path:
    """Where the manifest job writes the rejected source rows: next to the manifest."""
    return Path(manifest_path).with_name("rejected_rows.parquet")


def _dedupe(records: list[SourceRecord], rejected: Rejections | None = None) -> list[SourceRecord]:
    """Drop exact repeats (same raw id, URL and span) that sources sometimes contain."""
    seen: set[tuple] = set()
    unique = []
    for record in records:
        key = (record.raw_id, record.url, record.start, record.end)
        if key in seen:
            log.warning("manifest: dropped duplicate record %s (%s)", record.raw_id, record.url)
            if rejected is not None:
                reason = "a repeat of an earlier row (same id, URL and span)"
                rejected.append(RejectedRow("source", f"id {record.raw_id}", reason))
            continue
        seen.add(key)
        unique.append(record)
    return unique


def assign_shards(video_ids: list[str], shard_size: int, previous: dict[str, str]) -> list[str]:
    """Keep previous assignments; fill the last shard, then new shards, with new videos."""
    counts: dict[str, int] = {}
    for video_id in video_ids:
        if video_id in previous:
            counts[previous[video_id]] = counts.get(previous[video_id], 0) + 1
    next_index = max((int(s[1:]) for s in counts), default=-1)
    if next_index < 0 or counts.get(shard_name(next_index), 0) >= shard_size:
        next_index += 1
    shards = []
    for video_id in video_ids:
        if video_id in previous:
            shards.append(previous[video_id])
            continue
        name = shard_name(next_index)
        shards.append(name)
        counts[name] = counts.get(name, 0) + 1
        if counts[name] >= shard_size:
            next_index += 1
    return shards


def build_manifest(
    records: list[SourceRecord],
    source_type: str,
    shard_size: int,
    previous: pd.DataFrame | None = None,
    rejected: Rejections | None = None,
) -> tuple[pd.DataFrame, list[Collision]]:
    """Return the manifest table and the id collisions that were resolved."""
    records = _dedupe(records, rejected)
    raw_ids = [r.raw_id for r in records]
    ids, collisions = resolve_collisions([safe_id(r) for r in raw_ids], raw_ids)
    prior = {} if previous is None else dict(zip(previous.video_id, previous.shard, strict=True))
    renamed = {c.renamed_to: c.video_id for c in collisions}
    rows = []
    for video_id, shard, record in zip(
        ids, assign_shards(ids, shard_size, prior), records, strict=True
    ):
        fields = asdict(record)
        rows.append(
            {
                "video_id": video_id,
                "shard": shard,
                **{
                    k: fields[k]
                    for k in ("raw_id", "url", "start", "end", "split", "label", "spans")
                },
                "source": source_type,
                "meta": json.dumps(fields["meta"], sort_keys=True, default=str),
                "id_renamed_from": renamed.get(video_id),
            }
        )
    frame = pd.DataFrame(rows, columns=MANIFEST_SCHEMA.names)
    return frame, collisions


def read_manifest(path: str | Path) -> pd.DataFrame:
    return pq.read_table(path).to_pandas()


def shard_names(manifest_path: str | Path) -> list[str]:
    """Sorted shard names of a manifest (reads only the shard column: fast at 100k rows)."""
    column = pq.read_table(manifest_path, columns=["shard"]).column("shard")
    return sorted(set(column.to_pylist()))


def write_manifest(
    records: list[SourceRecord],
    source_type: str,
    shard_size: int,
    path: str | Path,
    rejected: Rejections | None = None,
) -> pd.DataFrame:
    """Build the manifest, keeping shard assignments of an existing manifest at ``path``; the
    rejected source rows (the reader's, and repeated rows) go to :func:`rejected_path`."""
    path = Path(path)
    previous = read_manifest(path) if path.exists() else None
    rejected = [] if rejected is None else rejected
    frame, collisions = build_manifest(records, source_type, shard_size, previous, rejected)
    rows = pd.DataFrame([asdict(r) for r in rejected], columns=REJECTED_SCHEMA.names)
    write_parquet_atomic(rows, rejected_path(path), schema=REJECTED_SCHEMA)
    for c in collisions:
        log.warning(
            "manifest: id collision: %r -> %s renamed to %s", c.raw_id, c.video_id, c.renamed_to
        )
    write_parquet_atomic(frame, path, schema=MANIFEST_SCHEMA)
    n_shards = math.ceil(len(frame) / shard_size) if len(frame) else 0
    log.info(
        "manifest: %d videos, %d shards (>= %d at shard_size %d), %d id collisions resolved,"
        " %d source rows rejected (%s)",
        len(frame),
        frame.shard.nunique(),
        n_shards,
        shard_size,
        len(collisions),
        len(rejected),
        rejected_path(path).name,
    )
    return frame
