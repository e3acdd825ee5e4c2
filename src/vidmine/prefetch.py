"""Fill the weights cache ahead of submission: ``vidmine fetch-weights``.

Compute nodes are often offline. Every stage folder whose backends load weights lists them in
``stages/<stage>/weights.py`` (``weight_sources(settings)``, no model built); this module asks
each stage of each dataset, and the exports (:func:`export_weight_sources`), and resolves
every file through ``vidmine.weights`` (the same cache, the same checksums as the jobs), so the
jobs later find them without the network.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidmine.errors import BackendUnavailable
from vidmine.formats.videopose3d import LIFT_WITH_TRAINED, PUBLISHED_LIFTERS
from vidmine.registry import STAGES
from vidmine.weights import WeightsError, WeightSource, resolve_weights


@dataclass
class Fetched:
    dataset: str
    weight: WeightSource
    status: str  # "fetched", "cached", "local", or "error"
    detail: str  # the path, or the error in one line


def weight_sources(dataset_settings: dict[str, Any]) -> list[WeightSource]:
    """Every weights file the dataset's configured backends load, in pipeline order."""
    sources: list[WeightSource] = []
    for spec in STAGES:
        module = f"{spec.module}.weights"
        if importlib.util.find_spec(module) is None:
            continue
        listed = importlib.import_module(module).weight_sources(dataset_settings.get(spec.name, {}))
        sources += [s for s in listed if s not in sources]
    sources += [s for s in export_weight_sources(dataset_settings) if s not in sources]
    sources += [s for s in lifter_weight_sources(dataset_settings) if s not in sources]
    return sources


def lifter_weight_sources(dataset_settings: dict[str, Any]) -> list[WeightSource]:
    """The published lifter ``lifter.lift_model`` names, when the lifter is enabled."""
    lifter = dataset_settings.get("lifter") or {}
    spec = lifter.get("lift_model", LIFT_WITH_TRAINED)
    if not lifter.get("enabled") or spec not in PUBLISHED_LIFTERS:
        return []
    url = PUBLISHED_LIFTERS[spec][0]
    return [WeightSource(f"lifter {spec}", url, lifter.get("lift_model_sha256"))]


def export_weight_sources(dataset_settings: dict[str, Any]) -> list[WeightSource]:
    """The HMMR export's encoder weights (its model archive, or the file the config names
    instead) when ``hmmr.precomputed_phi`` asks for image/phis; nothing for a TF checkpoint
    prefix on disk, which is read where it is. Listed here, not in ``vidmine.exports``,
    because this layer may not import that one."""
    hmmr = dataset_settings.get("hmmr") or {}
    if not hmmr.get("precomputed_phi"):
        return []
    phis = hmmr.get("phis") or {}
    source = str(phis.get("weights") or "")
    if not source or ("://" not in source and Path(f"{source}.index").expanduser().is_file()):
        return []
    return [WeightSource("hmmr phis (HMR resnet_v2_50)", source, phis.get("sha256"))]


def fetch_weights(
    config: dict[str, Any], datasets: list[str] | None = None, cache: Path | None = None
) -> list[Fetched]:
    """Resolve every dataset's weights into the cache; one bad file does not stop the others."""
    unknown = sorted(set(datasets or ()) - set(config["datasets"]))
    if unknown:
        raise KeyError(f"no dataset {', '.join(unknown)} in the config")
    done: dict[WeightSource, Fetched] = {}
    results = []
    for name in datasets or list(config["datasets"]):
        try:
            sources = weight_sources(config["datasets"][name])
        except BackendUnavailable as exc:
            results.append(Fetched(name, WeightSource("?", "?"), "error", str(exc)))
            continue
        for source in sources:
            if source not in done:
                done[source] = _fetch_one(name, source, cache)
            results.append(Fetched(name, source, done[source].status, done[source].detail))
    return results


def _fetch_one(dataset: str, source: WeightSource, cache: Path | None) -> Fetched:
    if not source.is_url:
        status = "local"
    else:
        status = "cached" if source.cached_path(cache).exists() else "fetched"
    try:
        path = resolve_weights(source.source, source.sha256, cache)
    except WeightsError as exc:
        return Fetched(dataset, source, "error", str(exc))
    return Fetched(dataset, source, status, str(path))
