"""TrackVerse's aesthetic filter as a backend: CLIP image embedding -> a linear aesthetic head.

As in TrackVerse (docs/formats/trackverse.md, "Segments and filters"): OpenCLIP ``ViT-L-14`` with
OpenAI's weights embeds each sampled frame, the embedding is L2-normalised, a ``Linear(768, 1)``
head in LAION's aesthetic predictor layout (TrackVerse's
``assets/aesthetic_predictor_vit_l14_linear.pth``) scores it, and a clip whose mean score over the
frames is below 4.0 is rejected.

The CLIP weights are OpenAI's own file (a TorchScript archive, or a plain state dict in the same
key layout) read by open_clip's OpenAI loader, and frames go through open_clip's transform for
that model, so a score here is the score open_clip gives TrackVerse.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from vidmine.weights import WeightsError, load_state_dict, resolve_weights

OPENAI_VIT_L14_URL = (
    "https://openaipublic.azureedge.net/clip/models/"
    "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt"
)
_OPENAI_PATH = re.compile(r"^/clip/models/(?P<sha256>[0-9a-f]{64})/[^/]+\.pt$")


def openai_sha256(source: str) -> str | None:
    """The SHA-256 that OpenAI's CLIP URLs carry (``.../clip/models/<sha256>/<name>.pt``), as
    OpenAI's own ``clip`` package checks its downloads; None for any other source."""
    parsed = urlparse(source)
    if parsed.scheme not in ("http", "https"):
        return None
    match = _OPENAI_PATH.match(parsed.path)
    return match["sha256"] if match else None


def clip_checksum(settings: dict[str, Any]) -> str | None:
    """The configured ``clip_sha256``, else the one in an OpenAI URL: the default official file
    is always verified, without the user copying its digest into the config."""
    return settings.get("clip_sha256") or openai_sha256(settings["clip_weights"])


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def import_open_clip():
    """open_clip, or ``BackendUnavailable`` in one line saying how to install it."""
    from vidmine.errors import BackendUnavailable

    try:
        import open_clip
    except ImportError as exc:
        raise BackendUnavailable(
            f"filter.aesthetic backend 'clip_linear' needs torch and open_clip_torch "
            f"(pip install 'vidmine[torch]'): {exc}"
        ) from exc
    return open_clip


def load_clip_visual(path: Path, model_name: str, expected: dict[str, int]):
    """The image tower of the OpenAI CLIP checkpoint at ``path``, in fp32 on the CPU, checked
    against ``expected`` (``expected_vit_facts`` of ``model_name``) so that a wrong file fails
    here and not as odd scores."""
    open_clip = import_open_clip()
    try:
        with warnings.catch_warnings():  # OpenAI ships TorchScript; torch now calls jit deprecated
            warnings.filterwarnings("ignore", message=r".*torch\.jit.* is deprecated")
            model = open_clip.load_openai_model(str(path), precision="fp32", device="cpu")
    except Exception as exc:  # jit, unpickling or key errors alike: the file is not a CLIP model
        raise WeightsError(f"{path}: not an OpenAI CLIP checkpoint ({_first_line(exc)})") from exc
    found = vit_facts(model.visual)
    if found != expected:
        raise WeightsError(f"{path}: CLIP image tower {found} is not {model_name} {expected}")
    return model.visual


def vit_facts(visual) -> dict[str, int] | str:
    """Shape facts of a loaded image tower: embedding size, width, depth, patch, input size."""
    from open_clip.transformer import VisionTransformer

    if not isinstance(visual, VisionTransformer):
        return f"({type(visual).__name__}, not a ViT)"
    return {
        "embed_dim": int(visual.output_dim),
        "width": int(visual.conv1.out_channels),
        "layers": len(visual.transformer.resblocks),
        "patch_size": int(visual.patch_size[0]),
        "image_size": int(visual.image_size[0]),
    }


def expected_vit_facts(open_clip, model_name: str) -> dict[str, int]:
    """The same facts from open_clip's built-in config of ``model_name``."""
    config = open_clip.get_model_config(model_name)
    if config is None or "patch_size" not in config["vision_cfg"]:
        raise ValueError(f"filter.aesthetic.model: {model_name!r} is not an open_clip ViT model")
    vision = config["vision_cfg"]
    size = vision["image_size"]
    return {
        "embed_dim": int(config["embed_dim"]),
        "width": int(vision["width"]),
        "layers": int(vision["layers"]),
        "patch_size": int(vision["patch_size"]),
        "image_size": int(size[0] if isinstance(size, list | tuple) else size),
    }


def linear_head_tensors(state: Any, path: Path) -> tuple[Any, Any]:
    """``weight`` (1, D) and ``bias`` (1,) of a single linear head, at the top level or under
    one prefix (``state_dict``, ``"linear."``, ...). An MLP head (LAION's improved predictor)
    has several weights and is refused rather than half-read."""
    import torch

    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: aesthetic head is not a state dict")
    weights = [k for k in state if k == "weight" or k.endswith(".weight")]
    if len(weights) != 1:
        raise WeightsError(
            f"{path}: expected one Linear(D, 1) head (a weight and a bias), "
            f"found {len(weights)} weight tensors {sorted(weights)[:4]}"
        )
    weight, bias = state[weights[0]], state.get(weights[0][: -len("weight")] + "bias")
    if not (torch.is_tensor(weight) and weight.ndim == 2 and weight.shape[0] == 1):
        raise WeightsError(f"{path}: head weight {weights[0]} is not of shape (1, D)")
    if not (torch.is_tensor(bias) and bias.shape == (1,)):
        raise WeightsError(f"{path}: head has no bias of shape (1,) next to {weights[0]}")
    return weight, bias


def load_linear_head(path: Path, embed_dim: int):
    """``Linear(embed_dim, 1)`` from a LAION-style state dict (weights only, no pickled code)."""
    import torch

    try:
        state = load_state_dict(path)
    except Exception as exc:  # unpickling refused, not a torch file, ...: the same user error
        raise WeightsError(f"{path}: cannot read aesthetic head ({_first_line(exc)})") from exc
    weight, bias = linear_head_tensors(state, path)
    if weight.shape[1] != embed_dim:
        raise WeightsError(
            f"{path}: head takes {weight.shape[1]}-d embeddings, the CLIP model gives {embed_dim}"
        )
    head = torch.nn.Linear(embed_dim, 1)
    head.load_state_dict({"weight": weight.float(), "bias": bias.float()})
    return head


class ClipAestheticScorer:
    """Mean aesthetic score of a clip's sampled frames (BGR uint8), TrackVerse's way."""

    def __init__(self, settings: dict[str, Any]):
        if not settings.get("head_weights"):
            raise ValueError(
                "filter.aesthetic.head_weights is required for the clip_linear backend"
            )
        # checked before a 900 MB download
        expected = expected_vit_facts(import_open_clip(), settings["model"])
        import torch  # after open_clip, which says in one line when torch is missing

        clip_path = resolve_weights(settings["clip_weights"], clip_checksum(settings))
        head_path = resolve_weights(settings["head_weights"], settings.get("head_sha256"))
        visual = load_clip_visual(clip_path, settings["model"], expected)
        head = load_linear_head(head_path, int(visual.output_dim))
        self.preprocess = clip_transform(visual, settings["model"])
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.visual = visual.eval().to(self.device)
        self.head = head.eval().to(self.device)
        self.batch_size = settings.get("batch_size", 16)

    def frame_scores(self, frames: list[np.ndarray]) -> np.ndarray:
        """One score per frame: head(embedding / |embedding|)."""
        import torch
        import torch.nn.functional as F

        out = []
        with torch.inference_mode():
            for start in range(0, len(frames), self.batch_size):
                batch = self.batch(frames[start : start + self.batch_size]).to(self.device)
                embedding = F.normalize(self.visual(batch).float(), dim=-1)
                out.append(self.head(embedding)[:, 0].cpu())
        return torch.cat(out).numpy()

    def batch(self, frames: list[np.ndarray]):
        """BGR frames through open_clip's own transform (it takes RGB PIL images)."""
        import torch
        from PIL import Image

        images = [Image.fromarray(np.ascontiguousarray(f[..., ::-1])) for f in frames]
        return torch.stack([self.preprocess(image) for image in images])

    def __call__(self, frames: list[np.ndarray]) -> float:
        return float(self.frame_scores(frames).mean())


def clip_transform(visual, model_name: str):
    """open_clip's evaluation transform for ``model_name`` with OpenAI's weights (for ViT-L-14:
    bicubic resize of the short side to 224, centre crop, OpenAI mean and std)."""
    open_clip = import_open_clip()
    pretrained = open_clip.get_pretrained_cfg(model_name, "openai")
    return open_clip.image_transform(
        visual.image_size,
        is_train=False,
        mean=getattr(visual, "image_mean", None) or pretrained.get("mean"),
        std=getattr(visual, "image_std", None) or pretrained.get("std"),
        resize_mode=pretrained.get("resize_mode"),
        interpolation=pretrained.get("interpolation"),
    )
