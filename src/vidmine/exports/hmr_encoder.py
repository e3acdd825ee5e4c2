"""HMR's image encoder in torch: TF-slim's ``resnet_v2_50``, the network whose 2048-d features
HMMR stores as ``image/phis`` (docs/formats/hmmr.md).

HMMR's ``src/datasets/resnet_extractor.py::FeatureExtractor`` runs ``src/models.py::
encoder_resnet``: ``tensorflow.contrib.slim``'s ``resnet_v2.resnet_v2_50(num_classes=None,
is_training=False, scope='resnet_v2_50')`` in ``resnet_arg_scope`` (batch norm with scale,
epsilon 1e-5) on 224 x 224 RGB crops scaled to [-1, 1]; the output is the global average pool
after the final ``postnorm`` batch norm + ReLU, squeezed to (N, 2048). The weights are those of
HMR's checkpoint ``hmr_noS5.ckpt-642561`` (shipped in HMMR's ``hmmr_models.tar.gz``).

Hand-written, because neither torchvision nor timm has this network: torchvision has no
pre-activation ResNet, and timm's ``ResNetV2`` strides the FIRST unit of each stage, while
TF-slim strides the LAST unit of each block, where an identity-depth unit's shortcut is a
1 x 1 max-pool subsample of the un-normalised input. TensorFlow's padding is reproduced:
``conv2d_same`` pads explicitly (symmetric for odd kernels), stride-1 'SAME' convolutions are
symmetric for 3 x 3, and the 3 x 3 / 2 'SAME' max pool pads at the end only (with -inf).

Weight names map one to one (``tf_name``), TF's HWIO kernels transposed to OIHW.
"""

from __future__ import annotations

import logging
import math
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vidmine.formats import FormatError
from vidmine.formats.tf_checkpoint import TFCheckpoint
from vidmine.io import atomic_path
from vidmine.weights import WeightsError, cache_dir, load_state_dict, resolve_weights

log = logging.getLogger(__name__)

# (base depth, units, stride of the last unit) of TF-slim's resnet_v2_50 blocks 1-4.
RESNET_V2_50_BLOCKS: tuple[tuple[int, int, int], ...] = (
    (64, 3, 2),
    (128, 4, 2),
    (256, 6, 2),
    (512, 3, 1),
)
BN_EPSILON = 1e-5  # TF-slim resnet_arg_scope's batch_norm_epsilon
INPUT_SIZE = 224  # FeatureExtractor(img_size=224)
FEATURE_DIM = 2048
SCOPE = "resnet_v2_50"
# torch layer of a unit -> TF-slim variable scope below ``<block>/<unit>/bottleneck_v2``
_UNIT_LAYERS = {
    "preact": "preact",
    "shortcut": "shortcut",
    "conv1": "conv1",
    "bn1": "conv1/BatchNorm",
    "conv2": "conv2",
    "bn2": "conv2/BatchNorm",
    "conv3": "conv3",
}
_CONV_PARAMS = {"weight": "weights", "bias": "biases"}
_BN_PARAMS = {
    "weight": "gamma",
    "bias": "beta",
    "running_mean": "moving_mean",
    "running_var": "moving_variance",
}


def _batch_norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPSILON)


def _same_max_pool(x: torch.Tensor, kernel: int = 3, stride: int = 2) -> torch.Tensor:
    """TensorFlow's 'SAME' max pool: ceil(size / stride) outputs, the padding (ignored by the
    max) split with the larger half at the end."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):  # F.pad order: last dimension first
        total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.max_pool2d(F.pad(x, pads, value=float("-inf")), kernel, stride)


class BottleneckV2(nn.Module):
    """TF-slim ``resnet_v2.bottleneck``: preact BN+ReLU; shortcut = subsample of the input
    (same depth) or a 1x1 conv with bias of the preactivation; 1x1 conv+BN+ReLU, 3x3 conv
    (stride here)+BN+ReLU, 1x1 conv with bias; sum."""

    def __init__(self, depth_in: int, depth: int, bottleneck: int, stride: int):
        super().__init__()
        self.stride = stride
        self.preact = _batch_norm(depth_in)
        self.shortcut = nn.Conv2d(depth_in, depth, 1, stride) if depth != depth_in else None
        self.conv1 = nn.Conv2d(depth_in, bottleneck, 1, bias=False)
        self.bn1 = _batch_norm(bottleneck)
        # conv2d_same: stride 1 is 'SAME' (pad 1 each side for 3x3), stride 2 pads (1, 1)
        self.conv2 = nn.Conv2d(bottleneck, bottleneck, 3, stride, padding=1, bias=False)
        self.bn2 = _batch_norm(bottleneck)
        self.conv3 = nn.Conv2d(bottleneck, depth, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        preact = F.relu(self.preact(x))
        if self.shortcut is not None:
            shortcut = self.shortcut(preact)
        else:  # resnet_utils.subsample: a 1x1 max pool with this stride
            shortcut = x[:, :, :: self.stride, :: self.stride] if self.stride > 1 else x
        residual = F.relu(self.bn1(self.conv1(preact)))
        residual = F.relu(self.bn2(self.conv2(residual)))
        return shortcut + self.conv3(residual)


class ResNetV2(nn.Module):
    """TF-slim ``resnet_v2`` with the root block, ``num_classes=None``, global pool: (N, 3, H, W)
    in [-1, 1] -> (N, 4 * last base depth). ``blocks`` as :data:`RESNET_V2_50_BLOCKS`."""

    def __init__(self, blocks: tuple[tuple[int, int, int], ...] = RESNET_V2_50_BLOCKS):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, padding=3)  # conv2d_same 7x7/2: pad (3, 3), bias
        depth_in = 64
        self.block_names = []
        for index, (base, units, stride) in enumerate(blocks, start=1):
            layers = nn.ModuleDict()
            for unit in range(1, units + 1):
                unit_stride = stride if unit == units else 1  # the LAST unit strides
                layers[f"unit_{unit}"] = BottleneckV2(depth_in, 4 * base, base, unit_stride)
                depth_in = 4 * base
            self.add_module(f"block{index}", layers)
            self.block_names.append(f"block{index}")
        self.postnorm = _batch_norm(depth_in)
        self.out_dim = depth_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _same_max_pool(self.conv1(x))
        for name in self.block_names:
            for unit in getattr(self, name).values():
                x = unit(x)
        return F.relu(self.postnorm(x)).mean(dim=(2, 3))


def tf_name(torch_key: str, scope: str = SCOPE) -> str:
    """The TF-slim variable of a :class:`ResNetV2` state-dict key, e.g.
    ``block2.unit_4.bn1.running_var`` -> ``resnet_v2_50/block2/unit_4/bottleneck_v2/conv1/
    BatchNorm/moving_variance``; ``conv1.weight`` -> ``resnet_v2_50/conv1/weights``."""
    *path, param = torch_key.split(".")
    if path in (["conv1"],):
        return f"{scope}/conv1/{_CONV_PARAMS[param]}"
    if path == ["postnorm"]:
        return f"{scope}/postnorm/{_BN_PARAMS[param]}"
    if len(path) == 3 and path[0].startswith("block") and path[2] in _UNIT_LAYERS:
        block, unit, layer = path
        names = _BN_PARAMS if layer in ("preact", "bn1", "bn2") else _CONV_PARAMS
        return f"{scope}/{block}/{unit}/bottleneck_v2/{_UNIT_LAYERS[layer]}/{names[param]}"
    raise KeyError(torch_key)


def state_dict_from_tf(checkpoint: TFCheckpoint, model: ResNetV2) -> dict[str, torch.Tensor]:
    """The model's state dict read from a TF-slim checkpoint by variable name (kernels HWIO ->
    OIHW); every tensor the model has must be there with its shape."""
    state = {}
    for key, target in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            state[key] = target  # TF keeps no counter; unused in eval mode
            continue
        value = checkpoint.read(tf_name(key))
        if value.ndim == 4:
            value = value.transpose(3, 2, 0, 1)
        if tuple(value.shape) != tuple(target.shape):
            raise FormatError(
                f"{checkpoint.index_path}: {tf_name(key)} has shape {value.shape}, "
                f"expected {tuple(target.shape)} (not a resnet_v2_50 encoder?)"
            )
        state[key] = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
    return state


def _extract_checkpoint(archive: Path, name: str, into: Path) -> Path:
    """Copy checkpoint ``name``'s index and data files out of a tar archive (matched by base
    name, regular files only; nothing else is extracted) into ``into``; return the prefix."""
    wanted = (f"{name}.index", f"{name}.data-")
    found = []
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                base = Path(member.name).name
                if not member.isreg() or not base.startswith(wanted):
                    continue
                source = tar.extractfile(member)
                if source is None:
                    continue
                with source, open(into / base, "wb") as out:
                    while block := source.read(1 << 20):
                        out.write(block)
                found.append(base)
    except (tarfile.TarError, OSError, EOFError) as err:
        raise WeightsError(f"{archive}: cannot read the archive: {err}") from None
    if f"{name}.index" not in found or not any(f.startswith(wanted[1]) for f in found):
        raise WeightsError(f"{archive}: no checkpoint {name} (.index and .data-*) inside")
    return into / name


def converted_path(archive: Path, checkpoint: str) -> Path:
    """Where the torch state dict converted from ``checkpoint`` in ``archive`` is cached: the
    weights cache, named by the archive's name and size and the checkpoint."""
    size = archive.stat().st_size
    return cache_dir() / f"{archive.name}-{size}.{checkpoint}.{SCOPE}.pt"


def load_encoder_state(
    source: str,
    sha256: str | None,
    checkpoint: str,
    blocks: tuple[tuple[int, int, int], ...] = RESNET_V2_50_BLOCKS,
) -> dict[str, Any]:
    """The encoder's torch state dict from ``source``: an http(s) URL or path of HMMR's model
    archive (``checkpoint`` is read out of it once and cached converted), a TF checkpoint
    prefix, or a converted ``.pt`` state dict (loaded weights-only). ``blocks``: the network's
    layout (tests use a thin one)."""
    local = Path(source).expanduser()
    if "://" not in source and Path(f"{local}.index").is_file():
        return state_dict_from_tf(TFCheckpoint(local), ResNetV2(blocks))
    path = resolve_weights(source, sha256)
    if path.suffix in (".pt", ".pth"):
        return load_state_dict(path)
    cached = converted_path(path, checkpoint)
    if not cached.is_file():
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="vidmine-hmr-") as tmp:
            prefix = _extract_checkpoint(path, checkpoint, Path(tmp))
            state = state_dict_from_tf(TFCheckpoint(prefix), ResNetV2(blocks))
        with atomic_path(cached) as tmp_path:
            torch.save(state, tmp_path)
        seconds = time.monotonic() - started
        log.info("%s: %s converted in %.1f s -> %s", path, checkpoint, seconds, cached)
    return load_state_dict(cached)


class HmrEncoder:
    """HMR's encoder on BGR uint8 crops: (N, 224, 224, 3) -> (N, 2048) float32 ``image/phis``.

    ``state`` None keeps torch's random initialisation (tests only). Crops are taken to RGB in
    [-1, 1] as HMMR's extractor sees them (``x / 255``, then ``rescale_image``: ``(x - 0.5) * 2``).
    """

    def __init__(
        self,
        state: dict[str, Any] | None,
        device: str = "auto",
        batch_size: int = 32,
        blocks: tuple[tuple[int, int, int], ...] = RESNET_V2_50_BLOCKS,
    ):
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.batch_size = max(int(batch_size), 1)
        self.net = ResNetV2(blocks)
        if state is not None:
            try:
                self.net.load_state_dict(state)
            except RuntimeError as err:
                first = str(err).splitlines()[0]
                raise WeightsError(f"not a resnet_v2_50 encoder state dict: {first}") from None
        self.net.eval().to(self.device, memory_format=torch.channels_last)
        self.out_dim = self.net.out_dim

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> HmrEncoder:
        """From the ``hmmr.phis`` config section (weights, sha256, checkpoint, device, batch)."""
        state = load_encoder_state(
            str(settings["weights"]), settings.get("sha256"), str(settings["checkpoint"])
        )
        return cls(state, settings.get("device", "auto"), settings.get("batch_size", 32))

    def __call__(self, crops_bgr: np.ndarray) -> np.ndarray:
        crops = np.asarray(crops_bgr)
        if crops.ndim != 4 or crops.shape[-1] != 3 or crops.dtype != np.uint8:
            raise ValueError(f"crops: {crops.shape} {crops.dtype}, expected (N, H, W, 3) uint8")
        out = np.empty((len(crops), self.out_dim), np.float32)
        with torch.inference_mode():
            for start in range(0, len(crops), self.batch_size):
                rgb = np.ascontiguousarray(crops[start : start + self.batch_size, ..., ::-1])
                x = torch.from_numpy(rgb).to(self.device).permute(0, 3, 1, 2).float()
                x = (x / 255.0 - 0.5) * 2.0
                x = x.contiguous(memory_format=torch.channels_last)
                out[start : start + len(rgb)] = self.net(x).float().cpu().numpy()
        return out
