"""Evaluation: whole-sequence prediction with flip averaging, metrics, report files."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from vidmine.formats import FormatError
from vidmine.lifter.data import PoseSequence
from vidmine.lifter.generators import flip_3d, unchunked_input
from vidmine.lifter.metrics import ErrorAccumulator
from vidmine.lifter.model import TemporalModel, fuse_for_inference
from vidmine.lifter.skeleton import Layout


def inference_model(model: TemporalModel) -> TemporalModel:
    """The model evaluation and lifting run: every BatchNorm folded into its conv.

    The folded copy computes what ``model.eval()`` computes (tests/test_lifter_model.py
    checks both paths on the same input) in one conv + ReLU per layer, the path
    ``benchmarks/lifter.py`` times. Folding reads the model's current weights, so a caller
    that keeps training (the per-epoch evaluation) folds again each time; it is a copy of a
    few megabytes, negligible against a pass over the test set.
    """
    if isinstance(model.expand_bn, torch.nn.Identity):
        return model.eval()  # already folded
    return fuse_for_inference(model)


@torch.no_grad()
def _forward(
    model: TemporalModel, pos2d: np.ndarray, layout: Layout, tta: bool, device
) -> np.ndarray:
    """The model over the edge-padded sequence: (1 or 2 with the mirrored copy, T, J, 3)."""
    model.eval()
    pad = (model.receptive_field() - 1) // 2
    x = unchunked_input(pos2d, layout, pad, model.total_causal_shift(), tta).to(device)
    return model(x).float().cpu().numpy()


def predict_pair(
    model: TemporalModel,
    pos2d: np.ndarray,
    layout: Layout,
    device: torch.device | str = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """The prediction of ``pos2d`` and of its mirror image mirrored back, both (T, J_out, 3).

    Their mean is the original's flip-averaged evaluation; their distance says how much the
    model's answer depends on which side it sees the person from (``lift`` reports it).
    """
    y = _forward(model, pos2d, layout, True, device)
    if y.shape[2] == 1:  # trajectory: mirror x only, there is nothing to swap
        back = y[1].copy()
        back[..., 0] *= -1
    else:
        back = flip_3d(y[1])
    return y[0], back


def predict(
    model: TemporalModel,
    pos2d: np.ndarray,
    layout: Layout,
    tta: bool = True,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """(T, J_in, 2) normalised 2D -> (T, J_out, 3) camera-space prediction.

    The sequence is edge-padded so every frame gets an output. With ``tta`` the mirrored
    input is predicted too, mirrored back and averaged, as the original evaluates.
    """
    if not tta:
        return _forward(model, pos2d, layout, False, device)[0]
    direct, mirrored = predict_pair(model, pos2d, layout, device)
    return (direct + mirrored) / 2


def check_layout(model_layout: str, data_layout: str, what: str) -> None:
    """Refuse 2D whose joint order is not the model's: both layouts have 17 joints, so a
    mismatch runs without an error and gives errors of half a metre."""
    if model_layout != data_layout:
        raise FormatError(
            f"{what}: the model takes {model_layout} 2D, the evaluation data are {data_layout} "
            "(set --model-layout or --input-layout to match)"
        )


def evaluate(
    model: TemporalModel,
    sequences: Sequence[PoseSequence],
    layout: Layout,
    tta: bool = True,
    device: torch.device | str = "cpu",
    model_layout: str | None = None,
) -> dict:
    """Per-action and overall MPJPE / P-MPJPE / N-MPJPE / MPJVE in millimetres.

    Targets are root-relative with a zero root, like the original protocol #1/#2; the
    mean over actions is reported as ``overall``. The model runs folded
    (:func:`inference_model`); ``model_layout``, when given, must be ``layout``'s name.
    """
    if model_layout is not None:
        check_layout(model_layout, layout.name, "evaluate")
    fast = inference_model(model)
    acc = ErrorAccumulator()
    for seq in sequences:
        if seq.pos3d is None:
            continue
        target = seq.pos3d.copy()
        target[:, 0] = 0
        acc.add(seq.action, predict(fast, seq.pos2d, layout, tta, device), target)
    return acc.summarize()


def write_metrics(metrics: dict, path: Path) -> None:
    """Metrics JSON, written via a temp file so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def plot_metrics(metrics: dict, history: list[dict], path: Path) -> None:
    """Two panels for the report: error per action, and the training curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_a, ax_h) = plt.subplots(1, 2, figsize=(11, 4))
    actions = list(metrics["per_action"])
    x = np.arange(len(actions))
    for k, (name, label) in enumerate((("mpjpe", "MPJPE"), ("p_mpjpe", "P-MPJPE"))):
        vals = [metrics["per_action"][a][name] for a in actions]
        ax_a.bar(x + (k - 0.5) * 0.4, vals, width=0.4, label=label)
    ax_a.set_xticks(x, actions, rotation=45, ha="right")
    ax_a.set_ylabel("error (mm)")
    overall = metrics["overall"]
    ax_a.set_title(f"test: MPJPE {overall['mpjpe']:.1f} mm, P-MPJPE {overall['p_mpjpe']:.1f} mm")
    ax_a.legend()
    epochs = [h["epoch"] for h in history]
    if history:
        ax_h.plot(epochs, [h["train_mpjpe_mm"] for h in history], label="train loss (MPJPE)")
        tested = [(h["epoch"], h["test_mpjpe_mm"]) for h in history if h.get("test_mpjpe_mm")]
        if tested:
            ax_h.plot(*zip(*tested, strict=True), marker="o", label="test MPJPE")
        ax_h.legend()
    ax_h.set_xlabel("epoch")
    ax_h.set_ylabel("mm")
    ax_h.set_title("training")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
