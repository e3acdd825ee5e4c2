"""The weights the configured visual-metric backends load (for ``vidmine fetch-weights``): RAFT
for motion, a torchvision ResNet for embeddings; DIS, Farneback and the tiny-image embedding
load none."""

from __future__ import annotations

from typing import Any

from vidmine.weights import WeightSource, sha256_from_file_name


def weight_sources(settings: dict[str, Any]) -> list[WeightSource]:
    if not settings.get("visual_metrics", False):
        return []
    sources = []
    motion = settings.get("motion", {})
    if motion.get("backend") == "raft":
        from vidmine.optical_flow import raft_weights_source

        options = motion.get("raft", {})
        model = str(options.get("model", "large")).removeprefix("raft_")
        source = raft_weights_source(model, options.get("weights", "C_T_SKHT_V2"))
        if source is not None:
            digest = options.get("sha256") or sha256_from_file_name(source)
            sources.append(WeightSource(f"trackverse motion raft-{model}", source, digest))
    embeddings = settings.get("embeddings", {})
    if embeddings.get("backend") == "torchvision":
        from vidmine.stages.trackverse.backends import torchvision_weights_source

        options = embeddings.get("torchvision", {})
        model = options.get("model", "resnet50")
        source = torchvision_weights_source(model, options.get("weights", "IMAGENET1K_V1"))
        if source is not None:
            digest = options.get("sha256") or sha256_from_file_name(source)
            sources.append(WeightSource(f"trackverse embeddings {model}", source, digest))
    return sources
