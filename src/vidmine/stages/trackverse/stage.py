"""TrackVerse records stage: per video, the ``-meta.jsonl.gzip`` and ``-progress.txt`` files of
docs/formats/trackverse.md, "Database layout (v1)", "Meta records" from the clip track tables of the
detect stage, and (``visual_metrics``) each record's ``tracks_motion/`` and ``tracks_embeddings/``
files (same page, "TrackVerse's visual metrics"), which curate_db.py's max-motion, min-motion and
MinRed curation read.

The metrics are computed from the same private clip detection read (only numbers leave the
private zone, as the track tables), one decode pass per clip for all its records. A clip that
cannot be decoded, or a record whose span holds too few frames, gets no metric files: logged with
the reason and counted in the item's fields, the records are written all the same.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import cv2
import pandas as pd

from vidmine.formats.trackverse import (
    EMBEDDINGS,
    META_SUFFIX,
    MOTION,
    PROGRESS_SUFFIX,
    metric_path,
    save_motion,
    save_npy,
    segment_id,
    track_record,
    write_meta,
)
from vidmine.frames import DecodeError
from vidmine.io import write_text_atomic
from vidmine.runner import ItemResult, ShardStage
from vidmine.stages.trackverse.backends import make_embedding_backend
from vidmine.stages.trackverse.clips import collect_crops, track_frames
from vidmine.stages.trackverse.metrics import motion_stats, weighted_embedding
from vidmine.tracks import COCO_CATEGORIES

log = logging.getLogger(__name__)


class TrackVerseStage(ShardStage):
    name = "trackverse"

    def __init__(self, layout, shard: str, settings: dict[str, Any]):
        self.domain = settings["domain"]
        super().__init__(layout, shard, settings)
        self.flow = self.embedder = None
        if settings.get("visual_metrics", False):
            # Built here, before any video: a missing package or weights stops the job at start.
            from vidmine.optical_flow import make_flow_backend

            motion = settings.get("motion", {})
            backend = motion.get("backend", "dis")
            self.flow = make_flow_backend(backend, **motion.get(backend, {}))
            self.embedder = make_embedding_backend(settings.get("embeddings", {}))

    def item_folder(self) -> Path:
        return self.layout.trackverse_meta(self.domain)

    def output_folders(self) -> list[Path]:
        root = self.layout.trackverse_dir
        return [self.folder] + [root / f"tracks_{m}" / self.domain for m in (MOTION, EMBEDDINGS)]

    def process(self, item: dict[str, Any]) -> ItemResult:
        yid = item["id"]
        segments, progress, table, by_clip = [], [], [], []
        for clip in sorted(item["clips"], key=lambda c: c["start_time"]):
            tracks = pd.read_parquet(self.layout.root / clip["tracks"])
            records = []
            area = float(clip["width"]) * float(clip["height"])
            for track_id, rows in tracks.groupby("track_id", sort=True):
                if not keep_track(rows, float(clip["fps"]), area, self.settings):
                    continue
                size = (clip["height"], clip["width"])
                record = track_record(yid, clip, rows, size, COCO_CATEGORIES)
                records.append(record)
                table.append(
                    {"clip_id": clip["clip_id"], "track_id": int(track_id), "fn": record["fn"]}
                )
            segments.append(records)
            by_clip.append((clip, records))
            progress.append(segment_id(yid, clip["start_time"], clip["end_time"]))
        base = self.folder / yid[:2]
        meta, done = base / f"{yid}{META_SUFFIX}", base / f"{yid}{PROGRESS_SUFFIX}"
        write_meta(meta, segments)
        write_text_atomic(done, "\n".join(progress) + "\n")
        outputs = [str(p.relative_to(self.layout.root)) for p in (meta, done)]
        fields: dict[str, Any] = {"n_records": len(table)}
        if self.flow is not None:
            written, skipped = [], []
            for clip, records in by_clip:
                w, s = self._clip_metrics(clip, records)
                written += w
                skipped += s
            outputs += [str(p.relative_to(self.layout.root)) for p in written]
            fields["n_metric_files"] = len(written)
            fields["metrics_skipped"] = "; ".join(skipped)
        return ItemResult.ok(outputs, fields, table)

    def _clip_metrics(
        self, clip: dict[str, Any], records: list[dict[str, Any]]
    ) -> tuple[list[Path], list[str]]:
        """Motion and embedding files of a clip's records; (files written, skip reasons)."""
        planned, skipped = [], []
        for record in records:
            frames = track_frames(record, clip)
            if frames is None:
                skipped.append(f"{record['fn']}: no frame of the clip in the track's span")
            else:
                planned.append(frames)
        written: list[Path] = []
        root = self.layout.trackverse_dir
        try:
            for track in collect_crops(self.layout.root / clip["path"], planned):
                motion = motion_stats(track.motion_crops(), self.flow)
                crops, weights = track.key_crops()
                if not len(motion) or not crops:
                    skipped.append(f"{track.fn}: fewer than 2 frames at 16 fps")
                    continue
                rgb = [cv2.cvtColor(c, cv2.COLOR_BGR2RGB) for c in crops]
                embedding = weighted_embedding(self.embedder.embed(rgb), weights)
                for metric, array, save in (
                    (MOTION, motion, save_motion),
                    (EMBEDDINGS, embedding, save_npy),
                ):
                    path = metric_path(root, metric, self.domain, track.fn)
                    save(path, array)
                    written.append(path)
                q90 = float(motion.reshape(-1, 7).mean(0)[-2])
                log.info("%s: motion q90 %.2f px, %d-d embedding", track.fn, q90, len(embedding))
        except DecodeError as exc:
            skipped.append(f"{clip['clip_id']}: {exc}")
        for reason in skipped:
            log.warning("no visual metrics: %s", reason)
        return written, skipped


def keep_track(rows: pd.DataFrame, fps: float, area: float, settings: dict[str, Any]) -> bool:
    """TrackVerse's track filters: length (last - first timestamp) and mean box area share."""
    detected = rows[~rows["interpolated"]]
    if len(detected) < 2:
        return False
    span = (detected["frame"].iloc[-1] - detected["frame"].iloc[0]) / fps
    box_area = ((detected.x2 - detected.x1) * (detected.y2 - detected.y1)).mean() / area
    return span >= settings["min_track_seconds"] and box_area >= settings["min_track_area"]
