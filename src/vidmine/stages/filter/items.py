"""The filter scores every clip the scene cut wrote."""

from __future__ import annotations

from typing import Any

from vidmine.upstream import Upstream


def select_items(upstream: Upstream) -> list[dict[str, Any]]:
    return upstream.clips()
