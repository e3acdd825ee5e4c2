"""Detection takes the private clips the filter kept (the blur runs beside it: BlazePose finds
people through their faces)."""

from __future__ import annotations

from typing import Any

from vidmine.upstream import Upstream


def select_items(upstream: Upstream) -> list[dict[str, Any]]:
    return upstream.clips(passed="filter")
