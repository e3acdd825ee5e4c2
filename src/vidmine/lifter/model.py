"""VideoPose3D temporal convolution model (docs/formats/videopose3d.md, "Model"), written for
vidmine.

Two modules share one parameter layout, so weights move freely between them:

* :class:`TemporalModel` runs dilated convolutions over a whole (padded) sequence and
  predicts every frame at once; it is used for evaluation and lifting.
* :class:`TemporalModelOptimized1f` replaces the dilations by strides and predicts a single
  frame from exactly one receptive field; it is what training uses, since it skips all the
  intermediate activations a one-frame target does not need.

Module names (``expand_conv``, ``expand_bn``, ``layers_conv.N``, ``layers_bn.N``,
``shrink``) match the original ``model_pos`` state dict so published checkpoints load.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional


def _check_widths(filter_widths: Sequence[int]) -> list[int]:
    widths = [int(w) for w in filter_widths]
    if not widths or any(w < 1 or w % 2 == 0 for w in widths):
        raise ValueError(f"filter widths must be odd and positive, got {list(filter_widths)}")
    return widths


def receptive_field_of(filter_widths: Sequence[int]) -> int:
    """Frames one output sees: the product of the widths (3,3,3 -> 27)."""
    rf = 1
    for w in _check_widths(filter_widths):
        rf *= w
    return rf


class FastDropout(nn.Dropout):
    """``nn.Dropout`` with a cheaper random mask on CPU.

    PyTorch's CPU dropout draws one Bernoulli sample per element through a double-precision
    uniform; in this model that was 37 % of a bf16 training step (docs/lifter.md). Here the
    mask comes from 16-bit random integers, four per 64-bit draw of torch's own generator
    (so seeding and resuming work as before), compared with a threshold: the same
    keep-or-drop per element, with ``p`` rounded to 1/65536 and the kept values scaled by the
    realised keep probability, so expectations stay exact. It is 3x faster here. On other
    devices (CUDA has a fused kernel) and in eval mode it is ``nn.Dropout``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or x.device.type != "cpu":
            return super().forward(x)
        dropped = round(self.p * 65536)
        if dropped >= 65536:
            return torch.zeros_like(x)
        n = x.numel()
        draws = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-(2**63), 2**63 - 1)
        uniform16 = draws.view(torch.int16)[:n].view(x.shape)  # uniform in [-32768, 32767]
        noise = (uniform16 >= dropped - 32768).to(x.dtype).mul_(65536 / (65536 - dropped))
        return x * noise


class _TemporalBase(nn.Module):
    """Shared layout and forward pass; subclasses choose dilated or strided convolutions."""

    def __init__(
        self,
        num_joints_in: int,
        in_features: int,
        num_joints_out: int,
        filter_widths: Sequence[int],
        causal: bool = False,
        dropout: float = 0.25,
        channels: int = 1024,
        dense: bool = False,
    ) -> None:
        super().__init__()
        widths = self.filter_widths = _check_widths(filter_widths)
        self.num_joints_in, self.in_features = num_joints_in, in_features
        self.num_joints_out, self.channels, self.causal = num_joints_out, channels, causal
        self.drop = FastDropout(dropout)
        self.relu = nn.ReLU(inplace=True)
        self.pad = [widths[0] // 2]
        self.causal_shift = [widths[0] // 2 if causal else 0]
        self.expand_conv = self._first_conv(num_joints_in * in_features, channels, widths[0])
        self.expand_bn = nn.BatchNorm1d(channels, momentum=0.1)
        convs: list[nn.Module] = []
        dilation = widths[0]
        for width in widths[1:]:
            self.pad.append((width - 1) * dilation // 2)
            self.causal_shift.append(self._block_shift(width, dilation) if causal else 0)
            convs.append(self._block_conv(channels, width, dilation, dense))
            convs.append(nn.Conv1d(channels, channels, 1, bias=False))
            dilation *= width
        self.layers_conv = nn.ModuleList(convs)
        self.layers_bn = nn.ModuleList(nn.BatchNorm1d(channels, momentum=0.1) for _ in convs)
        self.shrink = nn.Conv1d(channels, num_joints_out * 3, 1)

    def set_bn_momentum(self, momentum: float) -> None:
        """Set every BN momentum; training decays it from 0.1 to 0.001."""
        for module in self.modules():
            if isinstance(module, nn.BatchNorm1d):
                module.momentum = momentum

    def receptive_field(self) -> int:
        return 1 + 2 * sum(self.pad)

    def total_causal_shift(self) -> int:
        """Asymmetric padding offset: (RF - 1) / 2 when causal, else 0."""
        return sum(self.pad) if self.causal else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, J_in, F) -> (B, T - RF + 1, J_out, 3)."""
        self._check_input(x)
        batch = x.shape[0]
        x = x.reshape(batch, x.shape[1], -1).transpose(1, 2)
        x = self.drop(self.relu(self.expand_bn(self.expand_conv(x))))
        for i in range(len(self.pad) - 1):
            res = self._residual(x, i + 1)
            x = self.drop(self.relu(self.layers_bn[2 * i](self.layers_conv[2 * i](x))))
            x = res + self.drop(
                self.relu(self.layers_bn[2 * i + 1](self.layers_conv[2 * i + 1](x)))
            )
        x = self.shrink(x)
        return x.transpose(1, 2).reshape(batch, -1, self.num_joints_out, 3)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[-2:] != (self.num_joints_in, self.in_features):
            raise ValueError(
                f"expected (B, T, {self.num_joints_in}, {self.in_features}), got {tuple(x.shape)}"
            )

    # The four places where the dilated and the strided model differ.
    def _first_conv(self, c_in: int, c_out: int, width: int) -> nn.Conv1d:
        raise NotImplementedError

    def _block_conv(self, channels: int, width: int, dilation: int, dense: bool) -> nn.Conv1d:
        raise NotImplementedError

    def _block_shift(self, width: int, dilation: int) -> int:
        raise NotImplementedError

    def _residual(self, x: torch.Tensor, layer: int) -> torch.Tensor:
        raise NotImplementedError


class TemporalModel(_TemporalBase):
    """Full-sequence model with dilated convolutions (evaluation / inference).

    ``TemporalModel(num_joints_in, in_features, num_joints_out, filter_widths, causal=False,
    dropout=0.25, channels=1024, dense=False)``, the original's signature.
    """

    def _first_conv(self, c_in: int, c_out: int, width: int) -> nn.Conv1d:
        return nn.Conv1d(c_in, c_out, width, bias=False)

    def _block_conv(self, channels: int, width: int, dilation: int, dense: bool) -> nn.Conv1d:
        if dense:  # the original's --dense: one wide undilated kernel with the same reach
            return nn.Conv1d(channels, channels, (width - 1) * dilation + 1, bias=False)
        return nn.Conv1d(channels, channels, width, dilation=dilation, bias=False)

    def _block_shift(self, width: int, dilation: int) -> int:
        return (width // 2) * dilation

    def _residual(self, x: torch.Tensor, layer: int) -> torch.Tensor:
        pad, shift = self.pad[layer], self.causal_shift[layer]
        return x[:, :, pad + shift : x.shape[2] - pad + shift]


class TemporalModelOptimized1f(_TemporalBase):
    """Single-output-frame training model: strided instead of dilated convolutions.

    Same signature as :class:`TemporalModel` (``dense`` is not supported). Input length
    must equal the receptive field; for a batch of one-frame targets it does the same
    arithmetic as :class:`TemporalModel` minus the activations nobody reads.
    """

    def _first_conv(self, c_in: int, c_out: int, width: int) -> nn.Conv1d:
        return nn.Conv1d(c_in, c_out, width, stride=width, bias=False)

    def _block_conv(self, channels: int, width: int, dilation: int, dense: bool) -> nn.Conv1d:
        if dense:
            raise ValueError("the strided training model has no dense variant")
        return nn.Conv1d(channels, channels, width, stride=width, bias=False)

    def _block_shift(self, width: int, dilation: int) -> int:
        return width // 2

    def _residual(self, x: torch.Tensor, layer: int) -> torch.Tensor:
        width = self.filter_widths[layer]
        return x[:, :, self.causal_shift[layer] + width // 2 :: width]

    def conv_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The original's arithmetic: Conv1d on (B, C, T). Kept as the reference that
        :meth:`forward` is tested against and as the baseline of ``benchmarks/lifter.py``."""
        return super().forward(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, RF, J_in, F) -> (B, 1, J_out, 3), as :meth:`conv_forward`, as matrix products.

        A convolution whose stride equals its width reads disjoint windows, so on (B, T, C)
        activations it is a free reshape to (B, T / w, w * C) and one product with the weight
        viewed as (C_out, w * C). Written out here because that product runs through the BLAS
        GEMM, which on CPUs with native bf16 (AVX512-BF16, AMX) is about 4x faster under
        autocast than fp32, while PyTorch's bf16 Conv1d path gains nothing on these shapes
        (measured in docs/lifter.md). The parameters stay Conv1d's, so checkpoints and the
        dilated evaluation model are unchanged.
        """
        self._check_input(x)
        batch = x.shape[0]
        x = x.reshape(batch, x.shape[1], -1)
        x = self.drop(self.relu(_bn_time_major(self.expand_bn, _strided(x, self.expand_conv))))
        for i in range(len(self.pad) - 1):
            width = self.filter_widths[i + 1]
            res = x[:, self.causal_shift[i + 1] + width // 2 :: width]
            conv, bn = self.layers_conv[2 * i], self.layers_bn[2 * i]
            x = self.drop(self.relu(_bn_time_major(bn, _strided(x, conv))))
            conv, bn = self.layers_conv[2 * i + 1], self.layers_bn[2 * i + 1]
            x = res + self.drop(
                self.relu(_bn_time_major(bn, functional.linear(x, conv.weight[..., 0])))
            )
        x = functional.linear(x, self.shrink.weight[..., 0], self.shrink.bias)
        return x.reshape(batch, -1, self.num_joints_out, 3)


def _strided(x: torch.Tensor, conv: nn.Conv1d) -> torch.Tensor:
    """Conv1d with stride == width on (B, T, C) activations, as one matrix product."""
    width = conv.kernel_size[0]
    weight = conv.weight.permute(0, 2, 1).reshape(conv.out_channels, -1)  # (out, w * C)
    return functional.linear(x.reshape(x.shape[0], x.shape[1] // width, -1), weight)


def _bn_time_major(bn: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm1d over (B, T, C): the same statistics (over B and T) as on (B, C, T)."""
    batch, frames, channels = x.shape
    return bn(x.reshape(batch * frames, channels)).reshape(batch, frames, channels)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameter count (what the original prints as 'Trainable parameter count')."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build_pair(
    num_joints_in: int = 17,
    in_features: int = 2,
    num_joints_out: int = 17,
    filter_widths: Sequence[int] = (3, 3, 3),
    causal: bool = False,
    dropout: float = 0.25,
    channels: int = 1024,
) -> tuple[TemporalModelOptimized1f, TemporalModel]:
    """(training model, evaluation model) with identical parameter layouts."""
    args = (num_joints_in, in_features, num_joints_out, filter_widths)
    kwargs = dict(causal=causal, dropout=dropout, channels=channels)
    return TemporalModelOptimized1f(*args, **kwargs), TemporalModel(*args, **kwargs)


@torch.no_grad()
def fuse_for_inference(model: TemporalModel) -> TemporalModel:
    """Return an eval-only copy with every BatchNorm folded into the conv before it.

    Inference then runs one conv + ReLU per layer instead of conv + BN + ReLU, which saves
    a full pass over every activation on CPU. The copy's state dict no longer has BN keys,
    so it is never saved; checkpoints always hold the unfused model.
    """
    fused = copy.deepcopy(model).eval()
    pairs = [(fused.expand_conv, fused.expand_bn)]
    pairs += list(zip(fused.layers_conv, fused.layers_bn, strict=True))
    for conv, bn in pairs:
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        conv.weight.mul_(scale[:, None, None])
        conv.bias = nn.Parameter(bn.bias - bn.running_mean * scale, requires_grad=False)
    fused.expand_bn = nn.Identity()
    fused.layers_bn = nn.ModuleList(nn.Identity() for _ in fused.layers_bn)
    return fused
