"""Flow stage: optical flow between each person crop and its previous-frame crop.

``dis`` (OpenCV DIS, offline CPU default) or ``raft`` (torchvision RAFT, batched, GPU where
present). One float16 npz per track (``flow/{shard}/{clip}/t{track:03d}.npz``) beside the crops.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vidmine.formats.track_crops import load_track_crops
from vidmine.formats.track_flow import save_flow
from vidmine.layout import DatasetLayout
from vidmine.optical_flow import compute_track_flow, make_flow_backend
from vidmine.runner import ItemResult, ShardStage


class FlowStage(ShardStage):
    name = "flow"

    def __init__(self, layout: DatasetLayout, shard: str, settings: dict[str, Any]):
        super().__init__(layout, shard, settings)
        backend = settings["backend"]
        self.backend = make_flow_backend(backend, **settings.get(backend, {}))

    def item_folder(self) -> Path:
        return self.layout.flow(self.shard)

    def process(self, item: dict[str, Any]) -> ItemResult:
        outputs, rows = [], []
        for crop_file in item["crops"]:
            crops = load_track_crops(self.layout.root / crop_file)
            flow = compute_track_flow(self.backend, crops)
            path = self.folder / item["id"] / Path(crop_file).name
            save_flow(path, flow, crops.frames)
            outputs.append(str(path.relative_to(self.layout.root)))
            magnitude = np.linalg.norm(flow, axis=-1)
            rows.append(
                {
                    "clip_id": item["id"],
                    "track_id": int(crops.track_id),
                    "n_pairs": len(flow),
                    "backend": self.backend.name,
                    "mean_magnitude": float(magnitude.mean()) if len(flow) else 0.0,
                    "q90_magnitude": float(np.quantile(magnitude, 0.9)) if len(flow) else 0.0,
                    "path": outputs[-1],
                }
            )
        return ItemResult.ok(outputs, {"n_tracks": len(rows)}, rows)
