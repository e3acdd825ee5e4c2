"""The audit takes every blurred clip, with its private original (for a re-blur)."""

from __future__ import annotations

from typing import Any

from vidmine.upstream import Upstream


def select_items(upstream: Upstream) -> list[dict[str, Any]]:
    blurred = upstream.ok_by_id("blur")["blurred"]
    return [
        {**clip, "blurred": blurred[clip["id"]]}
        for clip in upstream.clips()
        if clip["id"] in blurred.index
    ]
