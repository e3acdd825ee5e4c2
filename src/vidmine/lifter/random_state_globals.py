"""The globals a pickled ``np.random.RandomState`` names, for the restricted checkpoint loader.

VideoPose3D's ``run.py`` saves its shuffling generator itself (``'random_state':
train_generator.random_state()`` returns the ``RandomState`` object), so every checkpoint it
writes, the published ``pretrained_*.bin`` included, names numpy globals that torch's
weights-only unpickler refuses. Which globals depends on the numpy that wrote the file
(docs/formats/videopose3d-checkpoints.md lists them, read from real pickles):

* numpy <= 1.16: ``numpy.random.__RandomState_ctor()`` + the ``get_state()`` tuple;
* numpy 1.17-1.25: ``numpy.random._pickle.__randomstate_ctor('MT19937')`` + state dict;
* numpy 1.26: ``__randomstate_ctor('MT19937', numpy.random._pickle.__bit_generator_ctor)``;
* numpy >= 2.0: ``__randomstate_ctor(<MT19937>)``, the bit generator pickled as
  ``__bit_generator_ctor(numpy.random._mt19937.MT19937)`` + its state;

and the 624-word key array is a ``numpy.ndarray`` of ``uint32`` rebuilt through
``numpy.core.multiarray._reconstruct`` (numpy 1.x) or ``numpy._core.multiarray._reconstruct``
(numpy 2.x). Each constructor name is mapped to a function of ours that accepts only what a
``RandomState`` pickle passes (the MT19937 bit generator, a uint32 array) and refuses
anything else, so allowing these names lets no other callable or type through.
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import numpy._core.multiarray as _np_multiarray

# RandomState(seed) always runs on MT19937; no other bit generator can be in run.py's files.
_BIT_GENERATOR_NAME = "MT19937"
_KEY_DTYPE = np.dtype(np.uint32)


def bit_generator_from_pickle(bit_generator: Any = _BIT_GENERATOR_NAME) -> np.random.MT19937:
    """Stands in for ``numpy.random._pickle.__bit_generator_ctor``: an MT19937 to restore.

    numpy's own helper instantiates whatever class the file names; ours knows one.
    """
    if bit_generator not in (_BIT_GENERATOR_NAME, np.random.MT19937):
        raise pickle.UnpicklingError(
            f"a RandomState on bit generator {bit_generator!r} (only MT19937 is accepted)"
        )
    return np.random.MT19937(0)  # the file's state replaces this seed's


def random_state_from_pickle(
    bit_generator: Any = _BIT_GENERATOR_NAME, bit_generator_ctor: Any = bit_generator_from_pickle
) -> np.random.RandomState:
    """Stands in for ``numpy.random._pickle.__randomstate_ctor`` (numpy >= 1.17 files).

    numpy >= 2.0 passes the restored bit generator itself, 1.17-1.26 its name (1.26 with
    the constructor, which resolves to :func:`bit_generator_from_pickle` here).
    """
    if isinstance(bit_generator, np.random.MT19937):
        return np.random.RandomState(bit_generator)
    if bit_generator_ctor is not bit_generator_from_pickle:
        raise pickle.UnpicklingError(
            f"a RandomState built by {bit_generator_ctor!r} (only numpy's MT19937 constructor)"
        )
    return np.random.RandomState(bit_generator_from_pickle(bit_generator))


def legacy_random_state_from_pickle() -> np.random.RandomState:
    """Stands in for numpy <= 1.16's ``numpy.random.__RandomState_ctor``: a RandomState that
    the pickle's ``get_state()`` tuple then overwrites."""
    return np.random.RandomState(0)


def key_dtype_from_pickle(spec: Any, align: bool = False, copy: bool = True) -> np.dtype:
    """Stands in for ``numpy.dtype`` in a RandomState pickle: the key array's uint32 only.

    Refusing other dtypes keeps object arrays (lists of arbitrary pickled items) out.
    """
    dtype = np.dtype(spec) if isinstance(spec, str) else None
    if dtype != _KEY_DTYPE:
        raise pickle.UnpicklingError(
            f"a numpy array of dtype {spec!r} (only a RandomState's uint32 key is accepted)"
        )
    return np.dtype(spec, align, copy)


def random_state_globals() -> list:
    """``torch.serialization.safe_globals`` entries: (object, name the pickle uses) pairs.

    The classes are listed so that the unpickler may also restore their state (its BUILD
    step only sets state on allow-listed types).
    """
    reconstruct = _np_multiarray._reconstruct
    return [
        (random_state_from_pickle, "numpy.random._pickle.__randomstate_ctor"),
        (bit_generator_from_pickle, "numpy.random._pickle.__bit_generator_ctor"),
        (legacy_random_state_from_pickle, "numpy.random.__RandomState_ctor"),
        (np.random.MT19937, "numpy.random._mt19937.MT19937"),
        (np.random.RandomState, "numpy.random.mtrand.RandomState"),
        (reconstruct, "numpy.core.multiarray._reconstruct"),
        (reconstruct, "numpy._core.multiarray._reconstruct"),
        (np.ndarray, "numpy.ndarray"),
        (key_dtype_from_pickle, "numpy.dtype"),
        (type(_KEY_DTYPE), "numpy.dtypes.UInt32DType"),
    ]
