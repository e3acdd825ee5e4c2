"""TrackVerse's cartoon classifier as a backend: torchvision ResNet-18 with a 2-way head.

As in TrackVerse (docs/formats/trackverse.md, "Segments and filters"): frames resized to 256,
centre-cropped to 224, ImageNet normalisation, logits averaged over the sampled frames, and a clip
is a cartoon when the mean raw class-0 logit is above 0 (not a comparison of the two classes).
vidmine reports ``cartoon_score = 1 + mean_logit0`` so that, as for the heuristic, a score >= 1
means cartoon.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vidmine.weights import load_state_dict, resolve_weights

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def build_model():
    import torch.nn as nn
    from torchvision.models import resnet18

    model = resnet18(weights=None)
    model.fc = nn.Linear(512, 2)
    return model


def preprocess(frames: list[np.ndarray]):
    """BGR uint8 frames -> normalised (N, 3, 224, 224) floats (Resize 256, CenterCrop 224)."""
    import cv2
    import torch

    batch = []
    for frame in frames:
        h, w = frame.shape[:2]
        scale = 256 / min(h, w)
        resized = cv2.resize(
            frame, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_LINEAR
        )
        top, left = (resized.shape[0] - 224) // 2, (resized.shape[1] - 224) // 2
        crop = resized[top : top + 224, left : left + 224, ::-1].astype(np.float32) / 255
        batch.append((crop - IMAGENET_MEAN) / IMAGENET_STD)
    return torch.from_numpy(np.stack(batch).transpose(0, 3, 1, 2).copy())


class ResNetCartoonScorer:
    def __init__(self, settings: dict[str, Any]):
        import torch

        if not settings.get("weights"):
            raise ValueError("filter.cartoon.weights is required for the resnet18 backend")
        path = resolve_weights(settings["weights"], settings.get("sha256"))
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = build_model()
        self.model.load_state_dict(load_state_dict(path))
        self.model.eval().to(self.device)
        self.batch_size = settings.get("batch_size", 16)

    def mean_logit0(self, frames: list[np.ndarray]) -> float:
        import torch

        logits = []
        with torch.inference_mode():
            for start in range(0, len(frames), self.batch_size):
                batch = preprocess(frames[start : start + self.batch_size]).to(self.device)
                logits.append(self.model(batch).float().cpu())
        return float(torch.cat(logits).mean(0)[0])

    def __call__(self, frames: list[np.ndarray], scores: dict[str, float]) -> float:
        return 1.0 + self.mean_logit0(frames)
