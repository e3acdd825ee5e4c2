"""The weights the configured exports load (for ``vidmine fetch-weights``): HMR's encoder for
the HMMR export's ``image/phis``, when ``hmmr.precomputed_phi`` asks for them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vidmine.weights import WeightSource


def weight_sources(dataset_settings: dict[str, Any]) -> list[WeightSource]:
    """The HMMR model archive (or the file the config names instead); nothing for a TF
    checkpoint prefix on disk, which is read where it is."""
    hmmr = dataset_settings.get("hmmr") or {}
    if not hmmr.get("precomputed_phi"):
        return []
    phis = hmmr.get("phis") or {}
    source = str(phis.get("weights") or "")
    if not source or ("://" not in source and Path(f"{source}.index").expanduser().is_file()):
        return []
    return [WeightSource("hmmr phis (HMR resnet_v2_50)", source, phis.get("sha256"))]
