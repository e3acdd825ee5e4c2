"""Checkpoints: atomic writes, VideoPose3D-compatible layout, architecture recovery.

vidmine writes the top-level keys VideoPose3D's ``run.py`` reads (:func:`run_py_entries`)
so its files open in ``run.py --evaluate`` and ``--resume``, and adds a ``vidmine`` entry
with the architecture, input layout and training history (plus its own optimizer state in
resume files). Published VideoPose3D checkpoints lack that entry; their architecture is
read back from the weight shapes. docs/formats/videopose3d-checkpoints.md has the details.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vidmine.formats import FormatError
from vidmine.lifter.model import TemporalModel
from vidmine.lifter.random_state_globals import random_state_globals
from vidmine.weights import refused_pickle_reason

# 2: the optimizer state moved from run.py's key to vidmine_optimizer (see run_py_entries);
# model_traj is left out when there is no trajectory model.
FORMAT_VERSION = 2


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save to a temp file in the same directory, fsync, then os.replace.

    A job killed mid-write leaves the previous file intact, never a truncated one, so a
    resume file is always loadable and a Snakemake output only appears when complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def run_py_entries(
    epoch: int, lr: float, model_pos: dict, model_traj: dict | None = None
) -> dict[str, Any]:
    """The top-level keys of run.py's checkpoint dict, filled so that run.py accepts them.

    run.py opens checkpoints with a plain ``torch.load(f, map_location=...)``, which on
    torch >= 2.6 is weights-only: a ``np.random.RandomState`` in the file stops it. So:

    * ``optimizer`` and ``random_state`` are None. ``--resume`` restores the two together,
      and only when ``optimizer`` is not None (then ``random_state`` must be a RandomState
      for its batch shuffling); with None it starts a fresh Adam at ``epoch`` and ``lr``,
      saying so. vidmine's own optimizer state goes under ``vidmine_optimizer``.
    * ``model_traj`` is present only with a trajectory model: ``--evaluate`` loads
      ``checkpoint['model_traj']`` whenever the key exists, and would fail on a None.
    """
    entries: dict[str, Any] = {
        "epoch": int(epoch),
        "lr": float(lr),
        "random_state": None,
        "optimizer": None,
        "model_pos": model_pos,
        "random_state_semi": None,
    }
    if model_traj is not None:
        entries["model_traj"] = model_traj
    return entries


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint on CPU with torch's weights-only unpickler, refusing pickled code.

    Original VideoPose3D files hold the ``np.random.RandomState`` object run.py shuffled with
    (``random_state``); the few numpy globals such a pickle names are allow-listed, through
    checking stand-ins (:mod:`vidmine.lifter.random_state_globals`), never an unrestricted
    unpickler. Any other global stops the load with a one-line error naming the file.
    """
    if not Path(path).is_file():
        raise FormatError(f"{path}: no such checkpoint file")
    try:
        with torch.serialization.safe_globals(random_state_globals()):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise FormatError(f"{path}: refused: {refused_pickle_reason(exc)}") from None
    except (RuntimeError, EOFError, ValueError, OSError) as exc:  # cut short, or not torch's
        text = str(exc).strip()
        reason = text.splitlines()[0] if text else "the file is empty or cut short"
        raise FormatError(f"{path}: not a readable torch checkpoint: {reason}") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model_pos"), dict):
        raise FormatError(f"{path}: not a VideoPose3D/vidmine checkpoint (no model_pos dict)")
    return ckpt


def strip_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop a DataParallel ``module.`` prefix if every key carries one."""
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module.") :]: v for k, v in state.items()}
    return dict(state)


def infer_architecture(state: dict[str, torch.Tensor], in_features: int | None = None) -> dict:
    """Architecture of a ``model_pos`` state dict, from its weight shapes alone."""
    state = strip_prefix(state)
    expand = state["expand_conv.weight"]
    channels, flat_in, width0 = expand.shape
    widths = [int(width0)]
    i = 0
    while f"layers_conv.{2 * i}.weight" in state:
        widths.append(int(state[f"layers_conv.{2 * i}.weight"].shape[2]))
        i += 1
    if in_features is None:
        in_features = flat_in // 17 if flat_in % 17 == 0 else (2 if flat_in % 2 == 0 else 3)
    return {
        "num_joints_in": int(flat_in // in_features),
        "in_features": int(in_features),
        "num_joints_out": int(state["shrink.weight"].shape[0] // 3),
        "filter_widths": widths,
        "channels": int(channels),
    }


@dataclass
class LoadedLifter:
    """An evaluation-ready model plus what is needed to feed it."""

    model: TemporalModel
    traj_model: TemporalModel | None
    input_layout: str
    meta: dict = field(default_factory=dict)


def build_from_state(
    state: dict[str, torch.Tensor], arch: dict, causal: bool = False
) -> TemporalModel:
    """A TemporalModel with ``arch`` loaded from ``state`` (strict: all keys must match)."""
    model = TemporalModel(**arch, causal=causal, dropout=0.0)
    model.load_state_dict(strip_prefix(state), strict=True)
    return model.eval()


def load_lifter(
    path: Path, input_layout: str | None = None, causal: bool | None = None
) -> LoadedLifter:
    """Open a vidmine or an original VideoPose3D checkpoint for evaluation/lifting.

    Original checkpoints say nothing about their 2D layout: pass ``input_layout``
    ('coco' for ``pretrained_h36m_detectron_coco.bin``, 'h36m' for the CPN models).
    """
    ckpt = load_checkpoint(path)
    meta = ckpt.get("vidmine") or {}
    arch = meta.get("arch") or infer_architecture(ckpt["model_pos"])
    is_causal = bool(meta.get("causal", False)) if causal is None else causal
    model = build_from_state(ckpt["model_pos"], arch, is_causal)
    traj = None
    if ckpt.get("model_traj") is not None:
        traj = build_from_state(ckpt["model_traj"], {**arch, "num_joints_out": 1}, is_causal)
    layout = input_layout or meta.get("input_layout") or "h36m"
    return LoadedLifter(model, traj, layout, meta)
