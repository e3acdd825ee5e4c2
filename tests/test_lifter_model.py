"""Lifter networks: exact parameter counts, interchangeable weights, original checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from runpy_checkpoints import original_state_dict, run_py_checkpoint, save_like_run_py

from vidmine.lifter.checkpoint import infer_architecture, load_lifter
from vidmine.lifter.evaluate import predict
from vidmine.lifter.model import (
    FastDropout,
    TemporalModel,
    TemporalModelOptimized1f,
    build_pair,
    count_parameters,
    fuse_for_inference,
    receptive_field_of,
)
from vidmine.lifter.skeleton import H36M


@pytest.mark.parametrize(
    ("widths", "params", "rf"),
    [
        ((3, 3, 3), 8_555_571, 27),
        ((3, 3, 3, 3), 12_753_971, 81),
        ((3, 3, 3, 3, 3), 16_952_371, 243),
    ],
)
def test_parameter_counts_match_videopose3d(widths, params, rf):
    train_model, eval_model = build_pair(17, 2, 17, widths, channels=1024)
    assert count_parameters(train_model) == params
    assert count_parameters(eval_model) == params
    assert eval_model.receptive_field() == rf == receptive_field_of(widths)


def test_trajectory_model_parameter_count():
    model = TemporalModel(17, 2, 1, (3, 3, 3, 3, 3), channels=1024)
    assert count_parameters(model) == 16_903_171


def test_even_filter_width_is_rejected():
    with pytest.raises(ValueError, match="odd"):
        TemporalModel(17, 2, 17, (3, 2, 3))


def _randomise_bn(model: torch.nn.Module) -> None:
    """Non-trivial BN statistics so that weight sharing is actually exercised."""
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=gen))


@pytest.mark.parametrize("causal", [False, True])
def test_strided_and_dilated_models_agree(causal):
    torch.manual_seed(0)
    strided, full = build_pair(17, 2, 17, (3, 3, 3), causal=causal, channels=32)
    _randomise_bn(strided)
    full.load_state_dict(strided.state_dict())
    strided.eval()
    full.eval()
    x = torch.randn(2, 40, 17, 2)
    with torch.no_grad():
        y_full = full(x)
        y_win = torch.cat([strided(x[:, i : i + 27]) for i in range(40 - 26)], dim=1)
    assert y_full.shape == (2, 14, 17, 3)
    torch.testing.assert_close(y_win, y_full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("widths", [(3, 3, 3), (3, 5, 3), (3, 3, 3, 3, 3)])
def test_matrix_product_forward_equals_the_original_convolutions(widths, causal):
    """The training model's forward (reshape + GEMM) computes the original's Conv1d
    function: same outputs, batch statistics and gradients, in training and eval mode."""
    torch.manual_seed(0)
    model = TemporalModelOptimized1f(17, 2, 17, widths, causal=causal, channels=32, dropout=0)
    _randomise_bn(model)
    x = torch.randn(6, model.receptive_field(), 17, 2)
    initial = {k: v.clone() for k, v in model.state_dict().items()}

    def train_step(forward):
        model.load_state_dict(initial)
        model.zero_grad()
        out = forward(x)
        (out**2).mean().backward()
        stats = [v.clone() for k, v in model.state_dict().items() if "running" in k]
        return out.detach(), [p.grad.clone() for p in model.parameters()], stats

    model.train()
    gemm, conv = train_step(model), train_step(model.conv_forward)
    assert gemm[0].shape == (6, 1, 17, 3)
    torch.testing.assert_close(gemm[0], conv[0], rtol=1e-4, atol=1e-5)
    for a, b in zip(gemm[1] + gemm[2], conv[1] + conv[2], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-6)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.conv_forward(x), rtol=1e-4, atol=1e-5)


def test_fast_dropout_is_dropout():
    """Keeps 1 - p of the elements, scaled so the mean is unchanged; seeded; identity in eval."""
    x = torch.ones(500, 1000, requires_grad=True)
    drop = FastDropout(0.25).train()
    torch.manual_seed(0)
    y = drop(x)
    assert abs(float((y > 0).float().mean()) - 0.75) < 0.003
    assert abs(float(y.detach().mean()) - 1.0) < 0.005
    torch.testing.assert_close(torch.unique(y.detach()), torch.tensor([0.0, 4 / 3]))
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # gradient flows through the kept elements only
    torch.manual_seed(0)
    assert torch.equal(drop(x), y)
    other = drop(x)
    assert not torch.equal(other, y)  # a fresh mask per call
    rows = (drop(x[:1].expand(2000, 1000)) > 0).float().mean(0)
    assert 0.70 < float(rows.min()) and float(rows.max()) < 0.80  # every position is random
    assert torch.equal(drop.eval()(x), x)
    assert torch.equal(FastDropout(0.0).train()(x), x)
    assert not FastDropout(1.0).train()(x).any()


@pytest.mark.parametrize("causal", [False, True])
def test_causal_prediction_ignores_future_frames(causal):
    torch.manual_seed(0)
    model = TemporalModel(17, 2, 17, (3, 3, 3), causal=causal, channels=16).eval()
    assert model.total_causal_shift() == (13 if causal else 0)
    x = np.random.default_rng(0).normal(size=(40, 17, 2)).astype(np.float32)
    x2 = x.copy()
    x2[30] += 1.0
    changed = np.abs(predict(model, x2, H36M, tta=False) - predict(model, x, H36M, tta=False))
    changed = changed.max(axis=(1, 2)) > 0
    first = int(np.argmax(changed))
    assert first == (30 if causal else 30 - 13)  # causal: only frame 30 and later move
    assert changed[first:].all() if causal else changed[first : 30 + 14].all()


def test_fused_model_matches_unfused():
    torch.manual_seed(0)
    model = TemporalModel(17, 2, 17, (3, 3, 3), channels=32)
    _randomise_bn(model)
    model.eval()
    x = torch.randn(2, 60, 17, 2)
    with torch.no_grad():
        torch.testing.assert_close(fuse_for_inference(model)(x), model(x), rtol=1e-4, atol=1e-4)


def test_original_checkpoint_layout_loads(tmp_path):
    widths = [3, 3, 3, 3, 3]
    state = original_state_dict(widths)
    assert sum(v.numel() for k, v in state.items() if "running" not in k and "num_b" not in k) == (
        16_952_371
    )
    # as run.py writes it: torch.save of its dict, the RandomState object itself included
    path = save_like_run_py(
        run_py_checkpoint(state), tmp_path / "pretrained_h36m_detectron_coco.bin", "1.16"
    )
    lifter = load_lifter(path, input_layout="coco")
    assert infer_architecture(state)["filter_widths"] == widths
    assert lifter.model.receptive_field() == 243
    assert lifter.input_layout == "coco"
    for key, value in lifter.model.state_dict().items():
        torch.testing.assert_close(value, state[key])
    with torch.no_grad():
        y = lifter.model(torch.zeros(1, 243, 17, 2))
    assert y.shape == (1, 1, 17, 3) and torch.isfinite(y).all()
    # the strided training model accepts the very same weights
    TemporalModelOptimized1f(17, 2, 17, widths).load_state_dict(state)


def test_dataparallel_prefix_is_stripped(tmp_path):
    state = original_state_dict([3, 3], channels=8)
    path = tmp_path / "dp.bin"
    torch.save({"model_pos": {f"module.{k}": v for k, v in state.items()}}, path)
    assert load_lifter(path).model.filter_widths == [3, 3]
