"""No code from data: every reader of a user-supplied file, handed a file whose unpickling would
run a shell command, refuses it in one line naming the file, and the command never runs.

The payload is the classic one: an object whose ``__reduce__`` is ``os.system('touch MARKER')``,
stored where each format keeps Python objects (a 0-d object array in an npz, a pickle, a torch
checkpoint). Each reader is called as its user meets it: the importer, the lifter's data
loaders, the lifter checkpoint (also one written the way VideoPose3D's run.py writes it: its
RandomState is allowed, a payload beside it is not) and the weights loader, and the `vidmine`
commands on top.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from runpy_checkpoints import original_state_dict, run_py_checkpoint, save_like_run_py

from vidmine.formats import FormatError
from vidmine.formats.kinetics import read_kinetics_pkl
from vidmine.formats.videopose3d import (
    read_custom_2d,
    read_detectron_clip,
    read_h36m_2d,
    read_h36m_3d,
)
from vidmine.lifter.checkpoint import load_checkpoint
from vidmine.weights import WeightsError, load_state_dict

REPO = Path(__file__).resolve().parent.parent


class Payload:
    """Pickles into ``os.system('touch <marker>')``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def evil_npz(path: Path, marker: Path, key: str) -> Path:
    payload = np.empty((), dtype=object)
    payload[()] = {"data": Payload(marker)}
    np.savez(path, **{key: payload, "metadata": payload})
    return path


def evil_pickle(path: Path, marker: Path) -> Path:
    path.write_bytes(pickle.dumps({"poses": Payload(marker)}, protocol=2))
    return path


def evil_torch(path: Path, marker: Path) -> Path:
    torch.save({"model_pos": {"w": torch.zeros(1)}, "extra": Payload(marker)}, path)
    return path


def evil_run_py(path: Path, marker: Path, numpy_flavour: str) -> Path:
    """A checkpoint as VideoPose3D's run.py writes it (its RandomState object, whose numpy
    globals the loader allows) with the payload in the semi-supervised generator's slot."""
    ckpt = run_py_checkpoint(original_state_dict([3, 3], channels=8))
    ckpt["random_state_semi"] = Payload(marker)
    return save_like_run_py(ckpt, path, numpy_flavour)


READERS = {
    "custom 2D npz": (lambda p, m: evil_npz(p / "d.npz", m, "positions_2d"), read_custom_2d),
    "Detectron npz": (lambda p, m: evil_npz(p / "c.npz", m, "keypoints"), read_detectron_clip),
    "Human3.6M 3D npz": (lambda p, m: evil_npz(p / "h.npz", m, "positions_3d"), read_h36m_3d),
    "Human3.6M 2D npz": (lambda p, m: evil_npz(p / "h2.npz", m, "positions_2d"), read_h36m_2d),
    "Kinetics pickle": (
        lambda p, m: evil_pickle(p / "KV4jIAq3WJo_000010_000020.pkl", m),
        read_kinetics_pkl,
    ),
    "lifter checkpoint": (lambda p, m: evil_torch(p / "m.bin", m), load_checkpoint),
    "run.py checkpoint, numpy 1.16": (
        lambda p, m: evil_run_py(p / "epoch_80.bin", m, "1.16"),
        load_checkpoint,
    ),
    "run.py checkpoint, numpy 2": (
        lambda p, m: evil_run_py(p / "epoch_60.bin", m, "2.x"),
        load_checkpoint,
    ),
    "weights file": (lambda p, m: evil_torch(p / "w.pth", m), load_state_dict),
}


@pytest.mark.parametrize("kind", READERS)
def test_reader_refuses_a_file_that_would_run_code(kind, tmp_path):
    marker = tmp_path / "pwned"
    make, read = READERS[kind]
    path = make(tmp_path, marker)
    with pytest.raises((FormatError, WeightsError)) as err:
        read(path)
    assert not marker.exists(), f"{kind}: the payload ran"
    message = str(err.value)
    assert message.startswith(f"{path}: refused") and "\n" not in message, message
    assert "posix.system" in message


def run_vidmine(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vidmine", *args], capture_output=True, text=True, cwd=cwd
    )


def test_lifter_commands_refuse_a_checkpoint_that_would_run_code(tmp_path):
    """`vidmine lifter lift` on a crafted checkpoint: one line naming the file, no traceback."""
    marker = tmp_path / "pwned"
    model = evil_torch(tmp_path / "model.pt", marker)
    tracks = tmp_path / "tracks.npz"
    np.savez(tracks, positions_2d=np.zeros(3))
    done = run_vidmine(
        "lifter", "lift", "--model", str(model), "--input", str(tracks),
        "--out-dir", str(tmp_path / "out"), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode != 0 and not marker.exists()
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    expected = f"vidmine: {model}: refused: it would call posix.system"
    assert lines[-1] == expected + " (weights-only loading runs no pickled code)", lines[-3:]
