"""Pickles and pickled npz files, read safely and written for old and new numpy alike.

Several formats store Python objects: VideoPose3D's npz files hold dicts in 0-d object arrays,
the Detectron npz holds ragged per-frame lists, and the Kinetics files are Python 2 pickles of
numpy arrays. Unpickling runs whatever callables a file names, so files from elsewhere are read
with :class:`RestrictedUnpickler`, which rebuilds numpy arrays and plain containers and refuses
everything else before it is called.

Writing: numpy 2 pickles arrays as ``numpy._core.multiarray._reconstruct``, a module numpy < 1.26
does not have, so a file written here would not load in the old environments VideoPose3D is
usually run in. :func:`save_npz` therefore writes numpy globals under their ``numpy.core`` names,
which every numpy (1.x and 2.x) can import.
"""

from __future__ import annotations

import codecs
import collections
import os
import pickle
import struct
import zipfile
import zlib
from collections.abc import Mapping
from typing import IO, Any

import numpy as np

from vidmine.formats import FormatError
from vidmine.io import write_npz, write_plain_array

try:
    from numpy._core.multiarray import _reconstruct, scalar
except ImportError:  # numpy < 2: vidmine pins numpy >= 2, kept so the module imports anywhere
    from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]

# Exceptions that reading a broken or truncated file raises; they become one-line FormatErrors.
_READ_ERRORS = (
    EOFError,
    pickle.UnpicklingError,
    ValueError,
    TypeError,
    AttributeError,
    IndexError,
    KeyError,
    struct.error,
    UnicodeDecodeError,
    zipfile.BadZipFile,
    OSError,
)


def _latin1_encode(text: Any, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` restricted to the one use pickles make of it.

    Python 3 writes ``bytes`` (an array's raw data) with protocol <= 2 as
    ``_codecs.encode(str, 'latin1')``; no other codec or argument type is let through.
    """
    if not isinstance(text, str) or codecs.lookup(encoding).name != "iso8859-1":
        raise pickle.UnpicklingError(
            f"_codecs.encode is only allowed as latin1 on str ({encoding})"
        )
    return text.encode("latin1")


_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.multiarray", "scalar"): scalar,
    ("numpy._core.multiarray", "scalar"): scalar,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
    # Plain containers that pickles name as globals instead of building them with opcodes.
    # Python 2 names the builtins module ``__builtin__``; the mapping that fix_imports applies
    # lives in the default find_class, which this class replaces, so both spellings are listed.
    ("builtins", "set"): set,
    ("__builtin__", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("__builtin__", "frozenset"): frozenset,
    ("builtins", "list"): list,
    ("__builtin__", "list"): list,
    ("builtins", "dict"): dict,
    ("__builtin__", "dict"): dict,
    ("builtins", "tuple"): tuple,
    ("__builtin__", "tuple"): tuple,
    ("collections", "OrderedDict"): collections.OrderedDict,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only numpy array reconstruction and plain containers.

    ``find_class`` is the only way a pickle reaches a callable (GLOBAL, STACK_GLOBAL, INST and
    OBJ all go through it), so refusing there stops a malicious file before anything runs.
    """

    def __init__(self, file: IO[bytes], source: str | os.PathLike, **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise FormatError(
                f"{self._source}: refused to unpickle {module}.{name} "
                "(only numpy arrays and plain containers are allowed)"
            ) from None


def one_line(err: BaseException) -> str:
    """An exception as ``Type: message`` on one line (for FormatError messages)."""
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def load_pickle(path: str | os.PathLike) -> Any:
    """Unpickle a file restrictedly; Python 2 pickles need ``latin1`` for their str data."""
    try:
        with open(path, "rb") as fh:
            return RestrictedUnpickler(fh, source=path, encoding="latin1").load()
    except FormatError:
        raise
    except _READ_ERRORS as err:
        raise FormatError(f"{path}: not a readable pickle ({one_line(err)})") from None


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array of an npz file; object arrays are unpickled with :class:`RestrictedUnpickler`.

    This is ``np.load(path, allow_pickle=True, encoding='latin1')`` (what VideoPose3D does)
    without the arbitrary code execution that ``allow_pickle`` permits.
    """
    out: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for member in zf.namelist():
                if not member.endswith(".npy"):
                    continue
                key = member[: -len(".npy")]
                with zf.open(member) as fp:
                    version = np.lib.format.read_magic(fp)
                    if version == (1, 0):
                        _, _, dtype = np.lib.format.read_array_header_1_0(fp)
                    elif version == (2, 0):
                        _, _, dtype = np.lib.format.read_array_header_2_0(fp)
                    else:
                        raise FormatError(f"{path}: member {member} has npy version {version}")
                    if dtype.hasobject:
                        arr = RestrictedUnpickler(fp, source=path, encoding="latin1").load()
                        if not isinstance(arr, np.ndarray):
                            raise FormatError(f"{path}: member {member} is not an array")
                        out[key] = arr
                        continue
                with zf.open(member) as fp:
                    out[key] = np.lib.format.read_array(fp, allow_pickle=False)
    except FormatError:
        raise
    except _READ_ERRORS as err:
        raise FormatError(f"{path}: not a readable npz file ({one_line(err)})") from None
    return out


def npz_item(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], key: str) -> Any:
    """The object stored in a 0-d object array (VideoPose3D's ``npz[key].item()``)."""
    if key not in arrays:
        raise FormatError(f"{path}: missing key {key!r} (has {sorted(arrays)})")
    arr = arrays[key]
    if arr.shape != () or arr.dtype != object:
        raise FormatError(f"{path}: {key!r} is {arr.dtype}{arr.shape}, expected a pickled object")
    return arr.item()


class _LegacyNumpyPickler(pickle._Pickler):  # type: ignore[name-defined]
    """The pure-Python pickler, naming numpy 2's ``numpy._core.*`` globals ``numpy.core.*``.

    numpy 1.x imports ``numpy.core.multiarray`` natively and numpy 2 keeps it as an alias of
    ``numpy._core.multiarray`` (same objects), so such a pickle loads under both.
    """

    def save_global(self, obj: Any, name: str | None = None) -> None:
        module = getattr(obj, "__module__", None) or ""
        if module == "numpy._core" or module.startswith("numpy._core."):
            qualname = name or obj.__qualname__
            legacy = "numpy.core" + module[len("numpy._core") :]
            self.write(pickle.GLOBAL + f"{legacy}\n{qualname}\n".encode("ascii"))
            self.memoize(obj)
            return
        super().save_global(obj, name)


def save_pickle(path: str | os.PathLike, value: Any) -> None:
    """Pickle ``value`` atomically with protocol 3 and numpy-1-compatible global names, so the
    file loads in the numpy 1.x environments other projects' readers run in."""
    from vidmine.io import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        _LegacyNumpyPickler(handle, protocol=3).dump(value)


def _as_object_array(value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    arr = np.empty((), dtype=object)
    arr[()] = value  # a dict or list stays one element (np.array(list) would unpack it)
    return arr


def save_npz(path: str | os.PathLike, arrays: Mapping[str, Any], compress: bool = True) -> None:
    """Write an npz (like ``np.savez_compressed``) atomically, at exactly ``path``.

    Values that are not arrays are stored as 0-d object arrays, as ``np.savez`` does with a
    dict. Object arrays are pickled with protocol 3 (numpy's own choice for ``.npy``) and
    numpy-1-compatible global names; plain arrays are written without pickling.
    """
    level = zlib.Z_DEFAULT_COMPRESSION if compress else None
    write_npz(path, arrays, level, _write_legacy_array)


def _write_legacy_array(handle: IO[bytes], value: Any) -> None:
    arr = _as_object_array(value)
    if not arr.dtype.hasobject:
        write_plain_array(handle, arr)
        return
    if not arr.flags.c_contiguous:
        arr = arr.copy(order="C")
    header = {"descr": "|O", "fortran_order": False, "shape": arr.shape}
    np.lib.format.write_array_header_1_0(handle, header)
    _LegacyNumpyPickler(handle, protocol=3).dump(arr)
