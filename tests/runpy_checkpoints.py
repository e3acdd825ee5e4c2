"""Write checkpoints exactly the way VideoPose3D's ``run.py`` writes them, under any numpy.

run.py (training loop, "Save checkpoint if necessary") calls ``torch.save`` on a dict whose
``random_state`` is the ``np.random.RandomState`` object itself. What that pickle names
depends on the numpy of the machine that trained, and the published ``pretrained_*.bin``
files date from 2018-2019 (numpy 1.15/1.16), so the tests need files "written by" numpy
versions this venv does not have. :class:`NumpyPickler` reproduces each version's
``RandomState.__reduce__`` and its module names; ``tests/data/videopose3d/`` holds
``pickle.dumps(rs, protocol=2)`` of one RandomState (seed 1234, after ``permutation(50)``
and ``standard_normal()``) written by real numpy 1.23.5, 1.26.4 and 2.0.2, and a test
checks the emulation is byte-identical to them. numpy <= 1.16 cannot run on this Python;
its reduce (``(np.random.__RandomState_ctor, (), self.get_state())``, mtrand.pyx of 1.16.6)
is reproduced from the source.
"""

from __future__ import annotations

import pickle
import types
from pathlib import Path

import numpy as np
import numpy._core.multiarray as np_multiarray
import torch

DATA = Path(__file__).parent / "data" / "videopose3d"
# numpy versions whose pickles differ, each named after the newest release it stands for
NUMPY_FLAVOURS = ("1.16", "1.23", "1.26", "2.x")
REAL_PICKLES = {"1.23": "1.23.5", "1.26": "1.26.4", "2.x": "2.0.2"}


def fixture_random_state() -> np.random.RandomState:
    """The generator the committed real pickles hold."""
    rs = np.random.RandomState(1234)
    rs.permutation(50)
    rs.standard_normal()
    return rs


def _randomstate_ctor_legacy() -> None:
    """Placeholder pickled under numpy <= 1.16's name (never called: these tests only write)."""


def _randomstate_ctor() -> None:
    """Placeholder pickled as ``numpy.random._pickle.__randomstate_ctor``."""


def _bit_generator_ctor() -> None:
    """Placeholder pickled as ``numpy.random._pickle.__bit_generator_ctor``."""


_NAMES = {
    id(_randomstate_ctor_legacy): ("numpy.random", "__RandomState_ctor"),
    id(_randomstate_ctor): ("numpy.random._pickle", "__randomstate_ctor"),
    id(_bit_generator_ctor): ("numpy.random._pickle", "__bit_generator_ctor"),
}


class NumpyPickler(pickle._Pickler):
    """The pure-Python pickler, with RandomState and module names as ``numpy_flavour`` has
    them (the C pickler gives the same bytes; only its global naming cannot be steered)."""

    numpy_flavour = "2.x"

    def reducer_override(self, obj):
        if isinstance(obj, np.random.RandomState) and self.numpy_flavour != "2.x":
            return self._reduce_random_state(obj)
        return NotImplemented

    def _reduce_random_state(self, rs: np.random.RandomState) -> tuple:
        if self.numpy_flavour == "1.16":
            return (_randomstate_ctor_legacy, (), rs.get_state())
        state = rs.get_state(legacy=False)
        if self.numpy_flavour == "1.23":  # the name is the state's own string (one memo entry)
            return (_randomstate_ctor, (state["bit_generator"],), state)
        return (_randomstate_ctor, ("MT19937", _bit_generator_ctor), state)

    def save_global(self, obj, name=None):
        module_name = _NAMES.get(id(obj))
        if module_name is None and obj is np_multiarray._reconstruct:
            if self.numpy_flavour != "2.x":
                module_name = ("numpy.core.multiarray", "_reconstruct")
        if module_name is None:
            return super().save_global(obj, name)
        self.write(pickle.GLOBAL + f"{module_name[0]}\n{module_name[1]}\n".encode())
        self.memoize(obj)

    dispatch = {**pickle._Pickler.dispatch, types.FunctionType: save_global}


def pickle_module(numpy_flavour: str) -> types.SimpleNamespace:
    """What ``torch.save(..., pickle_module=...)`` needs, pickling as ``numpy_flavour``."""
    assert numpy_flavour in NUMPY_FLAVOURS, numpy_flavour
    pickler = type(f"NumpyPickler_{numpy_flavour}", (NumpyPickler,), {})
    pickler.numpy_flavour = numpy_flavour

    def dump(obj, file, protocol=2):
        pickler(file, protocol=protocol).dump(obj)

    return types.SimpleNamespace(__name__="pickle", Pickler=pickler, dump=dump)


def dumps_as(obj, numpy_flavour: str) -> bytes:
    """``pickle.dumps(obj, protocol=2)`` as ``numpy_flavour`` would write it."""
    import io

    buffer = io.BytesIO()
    pickle_module(numpy_flavour).dump(obj, buffer)
    return buffer.getvalue()


def run_py_checkpoint(
    model_pos: dict,
    epoch: int = 80,
    lr: float = 1e-3 * 0.95**79,
    optimizer: dict | None = None,
    model_traj: dict | None = None,
) -> dict:
    """The dict run.py passes to torch.save (keys and value kinds as in its training loop).

    ``random_state`` is ``train_generator.random_state()``, i.e. the ChunkedGenerator's
    ``np.random.RandomState(1234)`` after shuffling; ``random_state_semi`` the semi
    generator's (seed 4321) when semi-supervised, else None.
    """
    random_state = np.random.RandomState(1234)
    for _ in range(epoch):
        random_state.permutation(64)  # one shuffle per epoch (ChunkedGenerator.next_pairs)
    semi = np.random.RandomState(4321) if model_traj is not None else None
    return {
        "epoch": epoch,
        "lr": lr,
        "random_state": random_state,
        "optimizer": optimizer if optimizer is not None else {"state": {}, "param_groups": []},
        "model_pos": model_pos,
        "model_traj": model_traj,
        "random_state_semi": semi,
    }


def save_like_run_py(
    ckpt: dict, path: Path, numpy_flavour: str = "2.x", legacy_format: bool = False
) -> Path:
    """``torch.save(ckpt, path)`` as run.py does, on a machine with ``numpy_flavour``.

    ``legacy_format``: the pre-1.6 torch file layout (run.py-era torch wrote only that one;
    current torch still can, with ``_use_new_zipfile_serialization=False``).
    """
    torch.save(
        ckpt,
        path,
        pickle_module=pickle_module(numpy_flavour),
        _use_new_zipfile_serialization=not legacy_format,
    )
    return path


def original_state_dict(
    widths, channels: int = 1024, joints_in: int = 17, feats: int = 2, joints_out: int = 17
) -> dict:
    """A ``model_pos`` state dict in the original key layout (common/model.py's
    TemporalModel: expand_conv, expand_bn, layers_conv.N, layers_bn.N, shrink), built from
    that layout rather than from our module, with random weights."""
    gen = torch.Generator().manual_seed(1)
    state = {
        "expand_conv.weight": torch.randn(channels, joints_in * feats, widths[0], generator=gen)
        * 0.05
    }

    def bn(prefix: str) -> None:
        state[f"{prefix}.weight"] = torch.rand(channels, generator=gen) + 0.5
        state[f"{prefix}.bias"] = torch.randn(channels, generator=gen) * 0.1
        state[f"{prefix}.running_mean"] = torch.randn(channels, generator=gen) * 0.1
        state[f"{prefix}.running_var"] = torch.rand(channels, generator=gen) + 0.5
        state[f"{prefix}.num_batches_tracked"] = torch.tensor(1000)

    bn("expand_bn")
    for i, width in enumerate(widths[1:]):
        scale = 1 / (channels * width) ** 0.5
        conv = torch.randn(channels, channels, width, generator=gen) * scale
        state[f"layers_conv.{2 * i}.weight"] = conv
        state[f"layers_conv.{2 * i + 1}.weight"] = (
            torch.randn(channels, channels, 1, generator=gen) * channels**-0.5
        )
        bn(f"layers_bn.{2 * i}")
        bn(f"layers_bn.{2 * i + 1}")
    state["shrink.weight"] = torch.randn(joints_out * 3, channels, 1, generator=gen) * 0.01
    state["shrink.bias"] = torch.zeros(joints_out * 3)
    return state
