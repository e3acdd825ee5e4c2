"""Checkpoints both ways between vidmine and VideoPose3D's run.py.

* run.py's own files (``torch.save`` of a dict holding the ``np.random.RandomState``
  object, written under numpy 1.16 ... 2.x, zip or legacy torch format) open in the
  restricted loader, generator state included.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from runpy_checkpoints import (
    DATA,
    NUMPY_FLAVOURS,
    REAL_PICKLES,
    dumps_as,
    fixture_random_state,
    original_state_dict,
    run_py_checkpoint,
    save_like_run_py,
)

from vidmine.formats import FormatError
from vidmine.lifter.checkpoint import load_checkpoint, load_lifter

SMALL_WIDTHS, SMALL_CHANNELS = [3, 3], 16


# ------------------------------------------------------------------ run.py files -> vidmine
@pytest.mark.parametrize("numpy_flavour", sorted(REAL_PICKLES))
def test_emulated_numpy_pickles_are_byte_identical_to_real_ones(numpy_flavour):
    """The fixture writer is exact: same bytes as the numpy version it stands for."""
    real = (DATA / f"randomstate-numpy-{REAL_PICKLES[numpy_flavour]}.pkl").read_bytes()
    assert dumps_as(fixture_random_state(), numpy_flavour) == real


@pytest.mark.parametrize("legacy_format", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("numpy_flavour", NUMPY_FLAVOURS)
def test_run_py_checkpoint_loads_with_its_random_state(tmp_path, numpy_flavour, legacy_format):
    state = original_state_dict(SMALL_WIDTHS, channels=SMALL_CHANNELS)
    written = run_py_checkpoint(state, epoch=30, model_traj=None)
    path = save_like_run_py(written, tmp_path / "epoch_30.bin", numpy_flavour, legacy_format)
    expected_globals = {
        "1.16": b"numpy.random\n__RandomState_ctor",
        "1.23": b"numpy.core.multiarray\n_reconstruct",
        "1.26": b"numpy.random._pickle\n__bit_generator_ctor",
        "2.x": b"numpy._core.multiarray\n_reconstruct",
    }[numpy_flavour]
    assert expected_globals in path.read_bytes()  # torch's zip stores data.pkl uncompressed

    ckpt = load_checkpoint(path)
    restored = ckpt["random_state"]
    assert isinstance(restored, np.random.RandomState)
    # run.py's ChunkedGenerator.next_pairs shuffles with self.random.permutation
    np.testing.assert_array_equal(restored.permutation(64), written["random_state"].permutation(64))
    assert ckpt["epoch"] == 30 and ckpt["random_state_semi"] is None
    lifter = load_lifter(path, input_layout="coco")
    for key, value in lifter.model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_semi_supervised_run_py_checkpoint_keeps_both_generators(tmp_path):
    state = original_state_dict(SMALL_WIDTHS, channels=SMALL_CHANNELS)
    traj = original_state_dict(SMALL_WIDTHS, channels=SMALL_CHANNELS, joints_out=1)
    written = run_py_checkpoint(state, epoch=5, model_traj=traj)
    ckpt = load_checkpoint(save_like_run_py(written, tmp_path / "epoch_5.bin", "1.16"))
    semi = ckpt["random_state_semi"]
    np.testing.assert_array_equal(semi.permutation(9), np.random.RandomState(4321).permutation(9))
    lifter = load_lifter(tmp_path / "epoch_5.bin")
    assert lifter.traj_model is not None and lifter.traj_model.num_joints_out == 1


@pytest.mark.parametrize(
    "smuggled, numpy_flavour, refusal",
    [
        (np.random.RandomState(np.random.PCG64(1)), "2.x", "numpy.random._pcg64.PCG64"),
        (np.random.RandomState(np.random.PCG64(1)), "1.23", "bit generator 'PCG64'"),
        (np.random.RandomState(np.random.MT19937(5)), "2.x", "SeedSequence"),
        (np.array([1, "a"], dtype=object), "2.x", "dtype 'O8'"),
        (np.zeros(3), "1.26", "dtype 'f8'"),
    ],
    ids=["PCG64", "PCG64-by-name", "seed-sequence", "object-array", "float-array"],
)
def test_only_what_a_run_py_random_state_needs_is_allowed(
    tmp_path, smuggled, numpy_flavour, refusal
):
    """The allow-list is the RandomState of run.py, not numpy in general."""
    ckpt = run_py_checkpoint(original_state_dict(SMALL_WIDTHS, channels=SMALL_CHANNELS))
    ckpt["random_state_semi"] = smuggled
    path = save_like_run_py(ckpt, tmp_path / "epoch_80.bin", numpy_flavour)
    with pytest.raises(FormatError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert message.startswith(f"{path}: refused: ") and "\n" not in message, message
    assert refusal in message


def test_unreadable_files_get_one_line(tmp_path):
    whole = save_like_run_py(
        run_py_checkpoint(original_state_dict(SMALL_WIDTHS, channels=SMALL_CHANNELS)),
        tmp_path / "whole.bin",
    )
    cut = tmp_path / "cut.bin"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    text = tmp_path / "notes.bin"
    text.write_bytes(b"not a checkpoint at all")
    cases = [
        (cut, "not a readable torch checkpoint"),
        (empty, "not a readable torch checkpoint: the file is empty or cut short"),
        (text, "refused: "),  # read as a legacy-format pickle: an opcode it does not take
        (tmp_path / "absent.bin", "no such checkpoint file"),
    ]
    for path, words in cases:
        with pytest.raises(FormatError) as err:
            load_checkpoint(path)
        message = str(err.value)
        assert message.startswith(f"{path}: {words}") and "\n" not in message, message
