"""Download takes every manifest row of its shard."""

from __future__ import annotations

from typing import Any

from vidmine.upstream import Upstream, records


def select_items(upstream: Upstream) -> list[dict[str, Any]]:
    rows = upstream.manifest().rename(columns={"video_id": "id"})
    return records(rows[["id", "url", "start", "end"]])
