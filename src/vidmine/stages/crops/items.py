"""Crops take the clips that have tracks and whose blurred version passed the audit: the
tracks from detection, the pixels from the released clip."""

from __future__ import annotations

from typing import Any

from vidmine.upstream import Upstream


def select_items(upstream: Upstream) -> list[dict[str, Any]]:
    tracks = upstream.ok_by_id("detect")["tracks"]
    released = upstream.ok_by_id("audit")["released"]
    return [
        {"id": clip, "tracks": tracks[clip], "released": released[clip]}
        for clip in tracks.index
        if clip in released.index
    ]
