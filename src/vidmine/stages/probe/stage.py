"""Probe stage: ffprobe (:mod:`vidmine.probing`) records what later stages need to know about
each download, and unusable files become failed rows with their reason."""

from __future__ import annotations

from typing import Any

from vidmine.probing import probe_video
from vidmine.runner import ItemResult, ShardStage


class ProbeStage(ShardStage):
    """Probe each downloaded video; unusable files become failed rows with their reason."""

    name = "probe"

    def process(self, item: dict[str, Any]) -> ItemResult:
        try:
            facts = probe_video(self.layout.root / item["video"], self.settings["vfr_tolerance"])
        except ValueError as exc:
            return ItemResult.failed(str(exc))
        if facts["n_frames"] < self.settings["min_frames"]:
            return ItemResult.failed(f"too few frames ({facts['n_frames']})", fields=facts)
        if facts["width"] <= 0 or facts["height"] <= 0 or facts["fps"] <= 0:
            return ItemResult.failed("video stream has no size or frame rate", fields=facts)
        return ItemResult.ok(fields={"video": item["video"], **facts})
