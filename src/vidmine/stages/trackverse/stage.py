"""TrackVerse records stage: per video, the ``-meta.jsonl.gzip`` and ``-progress.txt`` files of
FORMATS.md 3.1/3.4 from the clip track tables of the detect stage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from vidmine.formats.trackverse import (
    META_SUFFIX,
    PROGRESS_SUFFIX,
    segment_id,
    track_record,
    write_meta,
)
from vidmine.io import write_text_atomic
from vidmine.runner import ItemResult, ShardStage


class TrackVerseStage(ShardStage):
    name = "trackverse"

    def item_folder(self) -> Path:
        return self.layout.trackverse_meta(self.settings["domain"])

    def process(self, item: dict[str, Any]) -> ItemResult:
        yid = item["id"]
        segments, progress, table = [], [], []
        for clip in sorted(item["clips"], key=lambda c: c["start_time"]):
            tracks = pd.read_parquet(self.layout.root / clip["tracks"])
            records = []
            area = float(clip["width"]) * float(clip["height"])
            for track_id, rows in tracks.groupby("track_id", sort=True):
                if not keep_track(rows, float(clip["fps"]), area, self.settings):
                    continue
                record = track_record(yid, clip, rows, (clip["height"], clip["width"]))
                records.append(record)
                table.append(
                    {"clip_id": clip["clip_id"], "track_id": int(track_id), "fn": record["fn"]}
                )
            segments.append(records)
            progress.append(segment_id(yid, clip["start_time"], clip["end_time"]))
        base = self.folder / yid[:2]
        meta, done = base / f"{yid}{META_SUFFIX}", base / f"{yid}{PROGRESS_SUFFIX}"
        write_meta(meta, segments)
        write_text_atomic(done, "\n".join(progress) + "\n")
        outputs = [str(p.relative_to(self.layout.root)) for p in (meta, done)]
        return ItemResult.ok(outputs, {"n_records": len(table)}, table)


def keep_track(rows: pd.DataFrame, fps: float, area: float, settings: dict[str, Any]) -> bool:
    """TrackVerse's track filters: length (last - first timestamp) and mean box area share."""
    detected = rows[~rows["interpolated"]]
    if len(detected) < 2:
        return False
    span = (detected["frame"].iloc[-1] - detected["frame"].iloc[0]) / fps
    box_area = ((detected.x2 - detected.x1) * (detected.y2 - detected.y1)).mean() / area
    return span >= settings["min_track_seconds"] and box_area >= settings["min_track_area"]
