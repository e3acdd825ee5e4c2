"""The weights the configured detect backend loads (for ``vidmine fetch-weights``).

``hog_blazepose`` and ``mediapipe`` load only models that ship inside opencv and mediapipe.
"""

from __future__ import annotations

from typing import Any

from vidmine.errors import BackendUnavailable
from vidmine.weights import WeightSource, sha256_from_file_name


def torchvision_sources(options: dict[str, Any]) -> list[WeightSource]:
    from vidmine.stages.detect.backends.torchvision import NO_WEIGHTS, OBJECT_MODELS, PERSON_MODELS

    sources = []
    for role, models, model_key in (
        ("person", PERSON_MODELS, "person_model"),
        ("object", OBJECT_MODELS, "object_model"),
    ):
        model = options.get(model_key, next(iter(models)))
        weights = options.get(f"{role}_weights", "official")
        if not model or weights in NO_WEIGHTS:
            continue
        official = weights == "official"
        source = models[model] if official else weights
        digest = options.get(f"{role}_sha256") or (
            sha256_from_file_name(source) if official else None
        )
        sources.append(WeightSource(f"detect torchvision {model}", source, digest))
    return sources


def detectron2_sources(options: dict[str, Any]) -> list[WeightSource]:
    from vidmine.stages.detect.backends.detectron2 import KEYPOINT_CONFIG

    sources = []
    for role, config in (
        ("keypoint", options.get("keypoint_config", KEYPOINT_CONFIG)),
        ("object", options.get("object_config")),
    ):
        if not config:
            continue
        weights = options.get(f"{role}_weights")
        if not weights:
            try:
                from detectron2 import model_zoo
            except ImportError as exc:
                raise BackendUnavailable(
                    f"detect backend 'detectron2': the model zoo URL of {config} needs "
                    "detectron2 installed (or set detect.detectron2."
                    f"{role}_weights to its URL or path)"
                ) from exc
            weights = model_zoo.get_checkpoint_url(config)
        sources.append(WeightSource(f"detect detectron2 {config}", weights))
    return sources


def weight_sources(settings: dict[str, Any]) -> list[WeightSource]:
    backend = settings.get("backend")
    if backend == "torchvision":
        return torchvision_sources(settings.get("torchvision", {}))
    if backend == "detectron2":
        return detectron2_sources(settings.get("detectron2", {}))
    return []
