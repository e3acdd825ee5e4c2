"""Optical flow between a crop and the same window one frame earlier, and VPD's flow PNGs.

Shared by two stages (below them, so neither imports the other): the flow stage's per-track
flow and the trackverse stage's motion metric.

VPD (docs/formats/vpd.md, "Flow PNGs") feeds its student network the forward flow
``prev crop -> crop`` (t - 1 to t, in crop pixels) next to the RGB crop. It computed that flow with
RAFT on a GPU; vidmine keeps RAFT as a backend but defaults to OpenCV's DIS, which needs no weights,
runs offline on a CPU and is what the filter stage already uses for its motion score.

Backends share one batched interface (``FlowBackend.compute``: (N, H, W, 3) uint8 BGR pairs in,
(N, H, W, 2) float32 ``dx, dy`` out) and are built by name with ``make_flow_backend``:

* ``dis``: OpenCV DIS on grayscale, preset ``ultrafast``, ``fast`` or ``medium`` (default, as
  in the filter stage);
* ``farneback``: OpenCV Farneback, for comparison;
* ``raft``: torchvision's ``raft_large`` / ``raft_small``. ``weights`` is a torchvision weights
  name (default ``C_T_V1``: the port of the original RAFT's chairs+things checkpoint, which is
  the ``raft-things.pth`` VPD used), a path, an http(s) URL, or ``None``/``"none"`` for untrained
  weights (tests and benchmarks only). Files go through ``vidmine.weights.resolve_weights``: one
  cache and a SHA-256 check (torchvision file names carry the digest's first 8 hex digits, used
  when no ``sha256`` is given). Inputs are padded (edge pixels) to a multiple of 8 and to at
  least the 128 pixels torchvision's correlation pyramid needs, and the flow is cropped back.
  20 refinement iterations, as VPD.

Storage: flow is kept as float16 in its own compressed npz per track
(:mod:`vidmine.formats.track_flow`), separate from the crops npz because crops and flow are made
by different steps; VPD's 8-bit PNG (:func:`vidmine.formats.vpd.encode_flow_png`) is an export
format, lossy at 41/255 px per step and clipped at 20 px.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlparse

import cv2
import numpy as np

if TYPE_CHECKING:
    from vidmine.formats.track_crops import TrackCrops

DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


class FlowBackend(Protocol):
    """Forward optical flow ``prev -> next`` for a batch of image pairs."""

    name: str

    def compute(self, prev: np.ndarray, next: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 BGR pairs -> (N, H, W, 2) float32 (dx, dy) in pixels."""
        ...


def _check_pair(prev: np.ndarray, nxt: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """Both as (N, H, W, 3) uint8; the flag says whether a single pair was given."""
    prev, nxt = np.asarray(prev), np.asarray(nxt)
    single = prev.ndim == 3
    if single:
        prev, nxt = prev[None], nxt[None]
    if prev.shape != nxt.shape or prev.ndim != 4 or prev.shape[-1] != 3:
        raise ValueError(
            f"need two (N, H, W, 3) batches of one shape, got {prev.shape}, {nxt.shape}"
        )
    return prev, nxt, single


class _OpenCVBackend:
    """Pairs one at a time on grayscale images (OpenCV spreads each call over the cores)."""

    name = "opencv"

    def _pair(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def compute(self, prev: np.ndarray, next: np.ndarray) -> np.ndarray:
        prev, nxt, single = _check_pair(prev, next)
        out = np.empty((*prev.shape[:3], 2), np.float32)
        for i in range(len(prev)):
            a = cv2.cvtColor(np.ascontiguousarray(prev[i]), cv2.COLOR_BGR2GRAY)
            b = cv2.cvtColor(np.ascontiguousarray(nxt[i]), cv2.COLOR_BGR2GRAY)
            out[i] = self._pair(a, b)
        return out[0] if single else out


class DISBackend(_OpenCVBackend):
    """OpenCV's dense inverse search: the offline CPU default."""

    def __init__(self, preset: str = "medium"):
        if preset.lower() not in DIS_PRESETS:
            raise ValueError(f"unknown DIS preset {preset!r} ({', '.join(DIS_PRESETS)})")
        self.preset = preset.lower()
        self.name = f"dis-{self.preset}"
        self.dis = cv2.DISOpticalFlow_create(DIS_PRESETS[self.preset])

    def _pair(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return self.dis.calc(a, b, None)


class FarnebackBackend(_OpenCVBackend):
    """OpenCV's Farneback with the parameters of OpenCV's own dense-flow example."""

    name = "farneback"

    def __init__(
        self,
        pyr_scale: float = 0.5,
        levels: int = 3,
        winsize: int = 15,
        iterations: int = 3,
        poly_n: int = 5,
        poly_sigma: float = 1.2,
    ):
        self.params = (pyr_scale, levels, winsize, iterations, poly_n, poly_sigma, 0)

    def _pair(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return cv2.calcOpticalFlowFarneback(a, b, None, *self.params)


def raft_weights_source(model: str, weights: str | None) -> str | None:
    """A torchvision weights name (``C_T_V1``, ``DEFAULT``, ...) as its official URL; paths and
    URLs unchanged; None for untrained weights."""
    if weights is None or str(weights).lower() == "none":
        return None
    from torchvision.models.optical_flow import Raft_Large_Weights, Raft_Small_Weights

    from vidmine.weights import torchvision_weights_url

    enum = Raft_Large_Weights if model == "large" else Raft_Small_Weights
    return torchvision_weights_url(enum, weights)


class RAFTBackend:
    """torchvision RAFT, batched, on CUDA when available (optionally in float16 autocast)."""

    def __init__(
        self,
        model: str = "large",
        weights: str | None = "C_T_V1",
        sha256: str | None = None,
        device: str = "auto",
        half: bool = False,
        iters: int = 20,
        batch_size: int = 32,
    ):
        import torch
        from torchvision.models.optical_flow import raft_large, raft_small

        from vidmine.weights import (
            WeightsError,
            load_state_dict,
            resolve_weights,
            sha256_from_file_name,
        )

        model = model.lower().removeprefix("raft_")
        if model not in ("large", "small"):
            raise ValueError(f"unknown RAFT model {model!r} (large or small)")
        self.name = f"raft-{model}"
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.half = bool(half) and self.device.type == "cuda"  # CPU float16 is slower, not faster
        self.iters, self.batch_size = int(iters), int(batch_size)
        self.net = (raft_large if model == "large" else raft_small)(weights=None, progress=False)
        source = raft_weights_source(model, weights)
        self.weights_path = None
        if source is not None:
            if sha256 is None and urlparse(source).scheme in ("http", "https"):
                sha256 = sha256_from_file_name(source)
            self.weights_path = resolve_weights(source, sha256)
            state = load_state_dict(self.weights_path)
            state = {k.removeprefix("module."): v for k, v in state.items()}
            try:
                self.net.load_state_dict(state)
            except RuntimeError as exc:
                raise WeightsError(
                    f"{self.weights_path}: not a torchvision raft_{model} state dict "
                    f"(the original RAFT repository's checkpoints use other names): {exc}"
                ) from exc
        self.net.eval().to(self.device)
        # torchvision's correlation pyramid needs feature maps of 2 ** levels (1/8 scale)
        self.min_side = 8 * 2 ** getattr(self.net.corr_block, "num_levels", 4)

    def _prepare(self, images: np.ndarray, pad: tuple[int, int, int, int]):
        import torch
        import torch.nn.functional as F

        # BGR uint8 -> RGB in [-1, 1], torchvision's OpticalFlow preset (RAFT's 2 * x / 255 - 1)
        tensor = torch.from_numpy(np.ascontiguousarray(images[..., ::-1]))
        tensor = tensor.to(self.device).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
        return F.pad(tensor, pad, mode="replicate") if any(pad) else tensor

    def compute(self, prev: np.ndarray, next: np.ndarray) -> np.ndarray:
        import torch

        prev, nxt, single = _check_pair(prev, next)
        n, h, w = prev.shape[:3]
        least = self.min_side
        ph, pw = max(least, -(-h // 8) * 8) - h, max(least, -(-w // 8) * 8) - w
        pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)  # left, right, top, bottom
        out = np.empty((n, h, w, 2), np.float32)
        with torch.inference_mode():
            for start in range(0, n, self.batch_size):
                stop = min(start + self.batch_size, n)
                a = self._prepare(prev[start:stop], pad)
                b = self._prepare(nxt[start:stop], pad)
                with torch.autocast("cuda", dtype=torch.float16, enabled=self.half):
                    flow = self.net(a, b, num_flow_updates=self.iters)[-1]
                flow = flow[:, :, pad[2] : pad[2] + h, pad[0] : pad[0] + w]
                out[start:stop] = flow.float().permute(0, 2, 3, 1).cpu().numpy()
        return out[0] if single else out


def make_flow_backend(name: str = "dis", **settings: Any) -> FlowBackend:
    """A backend by name: ``dis`` (``preset``), ``farneback``, ``raft`` (``model``, ``weights``,
    ``sha256``, ``device``, ``half``, ``iters``, ``batch_size``); ``raft_small``/``raft_large``
    and ``dis_<preset>`` are accepted as shorthands."""
    key = name.lower().replace("-", "_")
    if key.startswith("dis_"):
        settings.setdefault("preset", key[4:])
        key = "dis"
    if key in ("raft_small", "raft_large"):
        settings.setdefault("model", key[5:])
        key = "raft"
    if key == "dis":
        return DISBackend(**settings)
    if key == "farneback":
        return FarnebackBackend(**settings)
    if key == "raft":
        return RAFTBackend(**settings)
    raise ValueError(f"unknown flow backend {name!r} (dis, farneback, raft)")


def compute_track_flow(backend: FlowBackend, crops: TrackCrops) -> np.ndarray:
    """Forward flow ``prev_crops -> crops`` of a track, (T, S, S, 2) float32 (VPD's direction:
    ``<frame>.prev.png`` is image 1, ``<frame>.png`` image 2). Batching is the backend's own
    (RAFT's ``batch_size``); the OpenCV backends take pairs one at a time anyway."""
    if not len(crops.frames):
        return np.zeros((0, crops.size, crops.size, 2), np.float32)
    return backend.compute(crops.prev_crops, crops.crops)
