"""The weights the filter's configured backends load (for ``vidmine fetch-weights``)."""

from __future__ import annotations

from typing import Any

from vidmine.weights import WeightSource


def weight_sources(settings: dict[str, Any]) -> list[WeightSource]:
    """The cartoon classifier's and the aesthetic scorer's files, when those backends are on.
    The default heuristic cartoon scorer and ``aesthetic.backend: none`` load nothing."""
    sources = []
    cartoon = settings.get("cartoon", {})
    if cartoon.get("backend") == "resnet18" and cartoon.get("weights"):
        sources.append(
            WeightSource("filter cartoon classifier", cartoon["weights"], cartoon.get("sha256"))
        )
    aesthetic = settings.get("aesthetic", {})
    if aesthetic.get("backend", "none") != "none":
        from vidmine.stages.filter.backends.aesthetic import clip_checksum

        sources.append(
            WeightSource(
                "filter aesthetic CLIP", aesthetic["clip_weights"], clip_checksum(aesthetic)
            )
        )
        if aesthetic.get("head_weights"):
            sources.append(
                WeightSource(
                    "filter aesthetic head", aesthetic["head_weights"], aesthetic.get("head_sha256")
                )
            )
    return sources
