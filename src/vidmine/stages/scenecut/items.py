"""The scene cut takes every probed video with its probe facts and the source's own clip
windows (``spans``, HD-VILA style) from the manifest."""

from __future__ import annotations

from typing import Any

from vidmine.upstream import STATUS_ONLY, Upstream, records


def select_items(upstream: Upstream) -> list[dict[str, Any]]:
    probed = upstream.ok("probe")
    spans = upstream.manifest().set_index("video_id")["spans"]
    items = records(probed.drop(columns=list(STATUS_ONLY)))
    for item in items:
        span = spans.get(item["id"])
        item["spans"] = [list(s) for s in span] if span is not None else None
    return items
