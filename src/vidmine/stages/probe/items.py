"""Probe takes every video the download stage finished."""

from __future__ import annotations

from typing import Any

from vidmine.upstream import Upstream, records


def select_items(upstream: Upstream) -> list[dict[str, Any]]:
    return [{"id": row["id"], "video": row["video"]} for row in records(upstream.ok("download"))]
