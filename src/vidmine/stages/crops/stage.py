"""Crops stage: VPD-style square crops around every person track, from the released clip.

Pixels come from the blurred, audited clip (``clips/``), never the private one; the track
tables come from detection, which ran on the private clip (same frames, same geometry). Each
clip is decoded once for all its tracks; each track's crops, previous-frame crops and masks
go to one npz (``crops/{shard}/{clip}/t{track:03d}.npz``): one file per track, never one PNG
per frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vidmine.formats.track_crops import save_track_crops
from vidmine.frames import DecodeError
from vidmine.runner import ItemResult, ShardStage
from vidmine.stages.crops.geometry import extract_clip_crops
from vidmine.tracks import read_tracks


class CropsStage(ShardStage):
    name = "crops"

    def item_folder(self) -> Path:
        return self.layout.crops(self.shard)

    def process(self, item: dict[str, Any]) -> ItemResult:
        tracks = read_tracks(self.layout.root / item["tracks"])
        tracks = tracks[tracks.class_name.isin(self.settings["classes"])]
        if tracks.empty:
            return ItemResult.ok([], {"n_tracks": 0, "n_crops": 0})
        s = self.settings
        try:
            crops = extract_clip_crops(
                self.layout.root / item["released"],
                tracks,
                size=s["size"],
                pad=s["pad"],
                smooth=s["smooth"],
                min_track_frames=s["min_track_frames"],
                with_masks=s["masks"],
            )
        except DecodeError as exc:
            return ItemResult.failed(f"{item['id']}: {exc}")
        outputs, rows = [], []
        for track_id, track in sorted(crops.items()):
            path = self.folder / item["id"] / f"t{track_id:03d}.npz"
            if len(track):
                save_track_crops(path, track)
                outputs.append(str(path.relative_to(self.layout.root)))
            rows.append(
                {
                    "clip_id": item["id"],
                    "track_id": int(track_id),
                    "n_crops": len(track),
                    "n_skipped": len(track.skipped),
                    "has_mask": bool(track.masks is not None),
                    "reason": track.reason or "",
                    "path": outputs[-1] if len(track) else None,
                }
            )
        fields = {"n_tracks": len(outputs), "n_crops": sum(r["n_crops"] for r in rows)}
        return ItemResult.ok(outputs, fields, rows)
