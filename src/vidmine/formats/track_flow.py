"""vidmine's per-track flow file: (T, H, W, 2) float16 flow and the clip frames of its rows in
one compressed npz (``flow/{shard}/{clip}/tNNN.npz``), beside the track's crops file.

The flow stage writes it; the VPD export and the report read it. Arrays only, no pickle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vidmine.io import write_npz

FLOW_FORMAT = "vidmine-flow/1"


def save_flow(path: str | Path, flow: np.ndarray, frames: np.ndarray | None = None) -> None:
    """(T, H, W, 2) flow as float16 in a compressed npz, written atomically; ``frames`` are the
    clip frames of the rows (a track's ``TrackCrops.frames``)."""
    flow = np.asarray(flow)
    frames = np.arange(len(flow)) if frames is None else np.asarray(frames)
    if len(frames) != len(flow):
        raise ValueError(f"{len(frames)} frames for {len(flow)} flows")
    arrays = {"format": np.array(FLOW_FORMAT), "flow": flow.astype(np.float16)}
    write_npz(path, {**arrays, "frames": frames.astype(np.int32)})


def load_flow(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(flow (T, H, W, 2) float32, frames (T,) int32) as ``save_flow`` wrote them."""
    with np.load(path, allow_pickle=False) as data:
        if "format" not in data or str(data["format"]) != FLOW_FORMAT:
            raise ValueError(f"{path}: not a vidmine flow file")
        return data["flow"].astype(np.float32), data["frames"]
