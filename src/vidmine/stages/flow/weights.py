"""The weights the configured flow backend loads (for ``vidmine fetch-weights``); DIS and
Farneback are OpenCV code and load none."""

from __future__ import annotations

from typing import Any

from vidmine.weights import WeightSource, sha256_from_file_name


def weight_sources(settings: dict[str, Any]) -> list[WeightSource]:
    if settings.get("backend") != "raft":
        return []
    from vidmine.optical_flow import raft_weights_source

    options = settings.get("raft", {})
    model = str(options.get("model", "large")).removeprefix("raft_")
    source = raft_weights_source(model, options.get("weights", "C_T_V1"))
    if source is None:
        return []
    digest = options.get("sha256") or sha256_from_file_name(source)
    return [WeightSource(f"flow raft-{model}", source, digest)]
