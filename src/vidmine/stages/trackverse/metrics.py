"""TrackVerse's visual metrics of a track (visual_metrics.py, docs/formats/trackverse.md,
"TrackVerse's visual metrics"): the motion file (flow-magnitude quantiles) and the embedding file
that curate_db.py's max-motion, min-motion and MinRed curation read.

Motion, as ``compute_optical_flow`` defines it: the track clip at 16 fps in batches of 32 frames;
in each batch (an odd last frame dropped, fewer than 2 frames: stop) consecutive frames form pairs
and every 2nd pair is kept; frames are resized so the short side is 360 (the long side floored
to a multiple of 8); the flow magnitude of all pixels of all kept pairs of the batch gives the
quantiles (0, .1, .25, .5, .75, .9, 1): 7 float32 per batch, one 1-D array for the track. The flow
is the configured backend of ``vidmine.optical_flow``: OpenCV DIS by default (offline, on a
CPU), or torchvision ``raft_large`` with ``C_T_SKHT_V2`` weights and 12 updates, what TrackVerse
ran (``raft_large(pretrained=True)``).

Embeddings: a backend of :mod:`vidmine.stages.trackverse.backends` on the track clip's keyframes,
averaged with TrackVerse's weighting (``clips.TrackFrames.key_weights``), float32.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from vidmine.formats.trackverse import MOTION_QUANTILES

FLOW_BATCH_FRAMES = 32  # batch_size 16 * skip_rate 2
FLOW_PAIR_STEP = 2  # frames.view(t // 2, 2, ...)[::skip_rate]
FLOW_SHORT_SIDE = 360


def flow_size(height: int, width: int) -> tuple[int, int]:
    """(height, width) TrackVerse resizes a frame to before RAFT."""
    if height < width:
        return FLOW_SHORT_SIDE, int(width / height * FLOW_SHORT_SIDE) // 8 * 8
    return int(height / width * FLOW_SHORT_SIDE) // 8 * 8, FLOW_SHORT_SIDE


def motion_stats(frames: list[np.ndarray], flow_backend: Any) -> np.ndarray:
    """(7 * batches,) float32 quantiles of the flow magnitude, one 7-block per batch of 32
    frames (see the module docstring); empty when fewer than 2 frames."""
    stats = []
    for start in range(0, len(frames), FLOW_BATCH_FRAMES):
        batch = frames[start : start + FLOW_BATCH_FRAMES]
        if len(batch) % 2:
            batch = batch[:-1]
        if len(batch) < 2:
            break
        pairs = list(zip(batch[0::2], batch[1::2], strict=True))[::FLOW_PAIR_STEP]
        height, width = flow_size(*batch[0].shape[:2])
        prev = np.stack([cv2.resize(a, (width, height)) for a, _ in pairs])
        nxt = np.stack([cv2.resize(b, (width, height)) for _, b in pairs])
        magnitude = np.linalg.norm(flow_backend.compute(prev, nxt), axis=-1)
        stats.append(np.quantile(magnitude, MOTION_QUANTILES).astype(np.float32))
    return np.concatenate(stats) if stats else np.zeros(0, np.float32)


def weighted_embedding(features: np.ndarray, weights: list[float]) -> np.ndarray:
    """The mean of per-frame features with TrackVerse's keyframe weights, float32."""
    weights_ = np.asarray(weights, np.float64)
    mean = (np.asarray(features, np.float64) * weights_[:, None]).sum(0) / weights_.sum()
    return mean.astype(np.float32)
