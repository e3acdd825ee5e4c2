"""Report item of crops and flow: for a few tracks, previous crop, crop, mask and flow as a
colour wheel, side by side (released pixels: crops are cut from released clips)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from vidmine.formats.track_crops import load_track_crops
from vidmine.formats.track_flow import load_flow
from vidmine.reporting import tile


def flow_to_color(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """RGB uint8 picture of a flow: hue = direction, brightness = speed (saturating at
    ``max_magnitude``, default the largest speed in the image), for looking at results."""
    flow = np.nan_to_num(np.asarray(flow, np.float32))
    magnitude, angle = cv2.cartToPolar(flow[..., 0], flow[..., 1], angleInDegrees=True)
    top = float(magnitude.max()) if max_magnitude is None else float(max_magnitude)
    hsv = np.empty((*flow.shape[:2], 3), np.uint8)
    hsv[..., 0] = (angle / 2).astype(np.uint8)  # OpenCV's 8-bit hue is 0..179
    hsv[..., 1] = 255
    hsv[..., 2] = np.clip(magnitude * (255 / top if top > 0 else 0), 0, 255).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def colour_wheel(size: int = 128) -> np.ndarray:
    """The legend of :func:`flow_to_color`, RGB: each pixel coloured as a flow pointing from
    the centre to it (image axes: x right, y down), full speed at the rim, black outside."""
    axis = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    x, y = np.meshgrid(axis, axis)
    flow = np.stack([x, y], axis=-1)
    wheel = flow_to_color(flow, max_magnitude=1.0)
    wheel[np.hypot(x, y) > 1.0] = 0
    return wheel


def _wheel_legend() -> tuple[np.ndarray, str]:
    wheel = colour_wheel()[..., ::-1].copy()  # BGR like the strips
    centre = wheel.shape[0] // 2
    for text, (dx, dy) in (
        ("right", (30, 4)),
        ("down", (-14, 58)),
        ("left", (-60, 4)),
        ("up", (-8, -50)),
    ):
        cv2.putText(
            wheel,
            text,
            (centre + dx, centre + dy),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.35,
            (255, 255, 255),
            1,
        )
    return wheel, "flow colours: hue = direction, brightness = speed"


def crop_flow_examples(crops: pd.DataFrame, root: Path, out: str | Path, count: int = 4) -> None:
    """For a few tracks: previous crop, crop, mask and flow (colour wheel), side by side."""
    images = []
    chosen = crops.dropna(subset=["path"]) if "path" in crops else crops.iloc[:0]
    if "flow_path" in chosen:
        chosen = chosen.dropna(subset=["flow_path"])
    for row in chosen.sort_values("n_crops", ascending=False).head(count).itertuples():
        track = load_track_crops(root / row.path)
        flow, _ = load_flow(root / row.flow_path)
        i = len(track) // 2
        mask = np.zeros_like(track.crops[i])
        if track.masks is not None:
            mask[track.masks[i]] = 255
        colour = flow_to_color(flow[i])[..., ::-1]  # RGB -> BGR like the crops
        strip = np.concatenate([track.prev_crops[i], track.crops[i], mask, colour], axis=1)
        label = f"{row.clip_id} t{int(row.track_id)} frame {int(track.frames[i])}"
        images.append((strip, label + ": prev, crop, mask, flow"))
    if images:  # the colour wheel that reads the flow panels
        images.append(_wheel_legend())
    tile(images, "Person crops and optical flow (released pixels)", out)
