"""Flow takes every clip the crops stage finished, with its per-track crop files."""

from __future__ import annotations

from typing import Any

from vidmine.upstream import Upstream, records


def select_items(upstream: Upstream) -> list[dict[str, Any]]:
    return [{"id": row["id"], "crops": list(row["crops"])} for row in records(upstream.ok("crops"))]
