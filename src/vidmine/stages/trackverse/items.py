"""TrackVerse records are per video: each video with the clips detection finished, each clip
with its track-row file."""

from __future__ import annotations

from typing import Any

from vidmine.upstream import Upstream


def select_items(upstream: Upstream) -> list[dict[str, Any]]:
    tracks = upstream.ok_by_id("detect")["tracks"]
    videos: dict[str, list[dict[str, Any]]] = {}
    for clip in upstream.clips():
        if clip["id"] in tracks.index:
            clip_tracks = {**clip, "tracks": tracks[clip["id"]]}
            videos.setdefault(clip["video_id"], []).append(clip_tracks)
    return [{"id": video, "clips": clips} for video, clips in sorted(videos.items())]
