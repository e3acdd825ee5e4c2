"""Embedding backends for TrackVerse's ``tracks_embeddings/`` (what MinRed measures distances in).

* ``pixels`` (the offline default): a tiny image of the track, no model and no download. Each
  keyframe crop is shrunk to 16 x 16 RGB (OpenCV area averaging) and scaled to [0, 1]; the
  768 values are the frame's feature. It measures how alike two tracks *look* (colour layout of
  the crop), which is what redundancy is about, but it is not a semantic feature: tracks of
  different objects in the same colours come out close. Torralba et al.'s "80 million tiny
  images" used 32 x 32 images as descriptors the same way.
* ``torchvision``: what TrackVerse used, a torchvision ResNet with ``fc = Identity`` (2048-d for
  ResNet-50) on 224 x 224 crops with ImageNet normalisation; weights ``IMAGENET1K_V1`` (what
  ``resnet50(pretrained=True)`` loads) from torchvision's official URL through
  ``vidmine.weights`` (cache, SHA-256), another weights name, a path or URL, or ``none``
  (random weights: tests only, the features mean nothing).

Backends take RGB uint8 crops (any size) and return (N, D) float32 features.
"""

from __future__ import annotations

from typing import Any, Protocol
from urllib.parse import urlparse

import cv2
import numpy as np

from vidmine.weights import WeightsError, load_state_dict, resolve_weights, sha256_from_file_name

TINY_SIDE = 16
RESNET_SIDE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NO_WEIGHTS = (None, "", "none")


class EmbeddingBackend(Protocol):
    name: str

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        """(N,) RGB uint8 crops -> (N, D) float32 features."""
        ...


class TinyImageBackend:
    """The track's own pixels at 16 x 16: the offline default (see the module docstring)."""

    name = "pixels-16x16"

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        tiny = [cv2.resize(c, (TINY_SIDE, TINY_SIDE), interpolation=cv2.INTER_AREA) for c in crops]
        return (np.stack(tiny).reshape(len(crops), -1) / 255.0).astype(np.float32)


def torchvision_weights_source(model: str, weights: str | None) -> str | None:
    """A torchvision weights name (``IMAGENET1K_V1``, ``DEFAULT``, ...) of ``model`` as its
    official URL; paths and URLs unchanged; None for random weights."""
    if weights in NO_WEIGHTS or str(weights).lower() == "none":
        return None
    from torchvision.models import get_model_weights

    from vidmine.weights import torchvision_weights_url

    return torchvision_weights_url(get_model_weights(model), weights)


class TorchvisionBackend:
    """A torchvision classifier without its last layer (TrackVerse: ResNet-50, fc = Identity)."""

    def __init__(
        self,
        model: str = "resnet50",
        weights: str | None = "IMAGENET1K_V1",
        sha256: str | None = None,
        device: str | None = None,
        batch_size: int = 32,
    ):
        import torch
        from torchvision.models import get_model

        self.torch = torch
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.batch_size = int(batch_size)
        self.net = get_model(model, weights=None)
        source = torchvision_weights_source(model, weights)
        self.name = f"torchvision-{model}-{'random' if source is None else weights}"
        if source is not None:
            if sha256 is None and urlparse(source).scheme in ("http", "https"):
                sha256 = sha256_from_file_name(source)
            path = resolve_weights(source, sha256)
            try:
                self.net.load_state_dict(load_state_dict(path))
            except RuntimeError as exc:
                raise WeightsError(f"{path}: not a torchvision {model} state dict: {exc}") from exc
        if not hasattr(self.net, "fc"):
            raise ValueError(f"torchvision model {model!r} has no fc layer (use a ResNet)")
        self.net.fc = torch.nn.Identity()
        self.net.eval().to(self.device)
        self.mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)

    def _prepare(self, crops: list[np.ndarray]):
        from torchvision.transforms.v2 import functional as F

        torch = self.torch
        # T.Resize((224, 224)) on PIL images (bilinear, antialiased), ToTensor, Normalize
        images = [
            F.resize(torch.from_numpy(np.ascontiguousarray(c)).permute(2, 0, 1), [RESNET_SIDE] * 2)
            for c in crops
        ]
        batch = torch.stack(images).to(self.device).float().div_(255)
        return (batch - self.mean) / self.std

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        torch = self.torch
        out = []
        with torch.inference_mode():
            for start in range(0, len(crops), self.batch_size):
                batch = self._prepare(crops[start : start + self.batch_size])
                out.append(self.net(batch).float().cpu().numpy())
        return np.concatenate(out).astype(np.float32)


def make_embedding_backend(settings: dict[str, Any]) -> EmbeddingBackend:
    """The configured backend (section ``trackverse.embeddings``)."""
    backend = settings.get("backend", "pixels")
    if backend == "pixels":
        return TinyImageBackend()
    if backend == "torchvision":
        options = settings.get("torchvision", {})
        return TorchvisionBackend(
            options.get("model", "resnet50"),
            options.get("weights", "IMAGENET1K_V1"),
            options.get("sha256"),
            options.get("device"),
            options.get("batch_size", 32),
        )
    raise ValueError(f"unknown trackverse embeddings backend {backend!r} (pixels, torchvision)")
