"""Read TensorFlow checkpoints (the V2 "tensor bundle" format) without TensorFlow.

HMMR's image features come from HMR's TensorFlow checkpoint (``hmr_noS5.ckpt-642561``). vidmine
does not depend on TensorFlow (a 500 MB wheel for one file read), and the format is small and
stable, so it is read here (``tensorflow/core/util/tensor_bundle/tensor_bundle.{h,cc,proto}``):

* ``<prefix>.index`` is a LevelDB-style sorted table (``tensorflow/core/lib/io/table*``):
  data blocks of prefix-compressed ``key -> value`` entries, an index block pointing at them
  and a 48-byte footer ending in the magic number; every block is followed by a type byte
  (0 = uncompressed, what the bundle writer uses) and a masked CRC-32C. No library reads one
  table file outside a LevelDB database, hence the small reader below.
* Key ``""`` holds a ``BundleHeaderProto`` (number of data shards, endianness); every other
  key is a variable name whose ``BundleEntryProto`` says its dtype, shape, data shard, byte
  offset, byte size and masked CRC-32C.
* ``<prefix>.data-<shard:05d>-of-<shards:05d>`` hold the raw little-endian tensor bytes.

The two protobuf messages are declared here (a descriptor built at import, the fields and
numbers of ``tensor_bundle.proto`` / ``tensor_shape.proto``) and decoded by the protobuf
library. Only numeric tensors are read: string tensors and partitioned (sliced) variables
are listed by name but refused when asked for, with a one-line reason.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import crc32c
import numpy as np

from vidmine.formats import FormatError

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
_MASK_DELTA = 0xA282EAD8
# tensorflow/core/framework/types.proto DataType -> numpy dtype (little-endian)
NUMPY_DTYPES: dict[int, str] = {
    1: "<f4",  # DT_FLOAT
    2: "<f8",  # DT_DOUBLE
    3: "<i4",  # DT_INT32
    4: "u1",  # DT_UINT8
    5: "<i2",  # DT_INT16
    6: "i1",  # DT_INT8
    9: "<i8",  # DT_INT64
    10: "?",  # DT_BOOL
    17: "<u2",  # DT_UINT16
    19: "<f2",  # DT_HALF
    22: "<u4",  # DT_UINT32
    23: "<u8",  # DT_UINT64
}
DT_STRING = 7


def _unmask(masked: int) -> int:
    rot = (masked - _MASK_DELTA) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


@cache
def _messages() -> tuple[Any, Any]:
    """(BundleHeaderProto, BundleEntryProto) classes, built from a descriptor declared here."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    f = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name="vidmine_tensor_bundle.proto", package="vb")

    def message(name: str, fields: list[tuple[str, int, int, int, str]]) -> Any:
        msg = proto.message_type.add(name=name)
        for field_name, number, kind, label, type_name in fields:
            field = msg.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                field.type_name = type_name
        return msg

    one, many = f.LABEL_OPTIONAL, f.LABEL_REPEATED
    dim = message("Dim", [("size", 1, f.TYPE_INT64, one, ""), ("name", 2, f.TYPE_STRING, one, "")])
    del dim
    message(
        "TensorShapeProto",
        [("dim", 2, f.TYPE_MESSAGE, many, ".vb.Dim"), ("unknown_rank", 3, f.TYPE_BOOL, one, "")],
    )
    message(
        "BundleHeaderProto",
        [
            ("num_shards", 1, f.TYPE_INT32, one, ""),
            ("endianness", 2, f.TYPE_INT32, one, ""),  # an enum on the wire: LITTLE = 0
            ("version", 3, f.TYPE_BYTES, one, ""),  # VersionDef, not needed
        ],
    )
    message(
        "BundleEntryProto",
        [
            ("dtype", 1, f.TYPE_INT32, one, ""),  # DataType enum
            ("shape", 2, f.TYPE_MESSAGE, one, ".vb.TensorShapeProto"),
            ("shard_id", 3, f.TYPE_INT32, one, ""),
            ("offset", 4, f.TYPE_INT64, one, ""),
            ("size", 5, f.TYPE_INT64, one, ""),
            ("crc32c", 6, f.TYPE_FIXED32, one, ""),
            ("slices", 7, f.TYPE_BYTES, many, ""),  # TensorSliceProto: only counted
        ],
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    get = message_factory.GetMessageClass
    return (
        get(pool.FindMessageTypeByName("vb.BundleHeaderProto")),
        get(pool.FindMessageTypeByName("vb.BundleEntryProto")),
    )


def _varint(data: bytes, pos: int, where: str) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data) or shift > 63:
            raise FormatError(f"{where}: truncated or overlong varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _block(data: bytes, handle: bytes, path: Path) -> bytes:
    """The contents of the block a handle (varint offset, varint size) points at, checked."""
    offset, pos = _varint(handle, 0, f"{path}: block handle")
    size, _ = _varint(handle, pos, f"{path}: block handle")
    end = offset + size
    if end + 5 > len(data):
        raise FormatError(f"{path}: block at {offset} (+{size}) runs past the end of the file")
    contents, kind = data[offset:end], data[end]
    (stored,) = struct.unpack("<I", data[end + 1 : end + 5])
    if crc32c.crc32c(data[offset : end + 1]) != _unmask(stored):
        raise FormatError(f"{path}: block at {offset}: checksum mismatch (corrupt index file)")
    if kind != 0:
        raise FormatError(f"{path}: block at {offset}: compressed (type {kind}), not supported")
    return contents


def _block_entries(block: bytes, path: Path) -> Iterable[tuple[bytes, bytes]]:
    """``(key, value)`` of a table block: entries up to the trailing restart-point array."""
    if len(block) < 4:
        raise FormatError(f"{path}: index block too short")
    (restarts,) = struct.unpack("<I", block[-4:])
    limit = len(block) - 4 * (restarts + 1)
    if limit < 0:
        raise FormatError(f"{path}: index block has a bad restart count {restarts}")
    pos, key = 0, b""
    where = f"{path}: index entry"
    while pos < limit:
        shared, pos = _varint(block, pos, where)
        unshared, pos = _varint(block, pos, where)
        length, pos = _varint(block, pos, where)
        if shared > len(key) or pos + unshared + length > limit:
            raise FormatError(f"{where} at byte {pos}: lengths run past the block")
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        yield key, block[pos : pos + length]
        pos += length


def _table_entries(path: Path) -> dict[bytes, bytes]:
    data = path.read_bytes()
    if len(data) < FOOTER_SIZE or struct.unpack("<Q", data[-8:])[0] != TABLE_MAGIC:
        raise FormatError(f"{path}: not a TensorFlow checkpoint index (no table magic number)")
    footer = data[-FOOTER_SIZE:-8]
    _, pos = _varint(footer, 0, f"{path}: footer")  # metaindex offset
    _, pos = _varint(footer, pos, f"{path}: footer")  # metaindex size (the bundle has none)
    index = _block(data, footer[pos:], path)
    entries: dict[bytes, bytes] = {}
    for _, handle in _block_entries(index, path):
        entries.update(_block_entries(_block(data, handle, path), path))
    return entries


class TFCheckpoint:
    """One checkpoint, ``prefix`` as TensorFlow names it (``.../hmr_noS5.ckpt-642561``):
    ``shapes`` lists every variable; ``read(name)`` returns one numeric tensor, its checksum
    verified."""

    def __init__(self, prefix: str | os.PathLike):
        self.prefix = Path(prefix)
        self.index_path = Path(f"{self.prefix}.index")
        if not self.index_path.is_file():
            raise FormatError(f"{self.index_path}: checkpoint index not found")
        header_cls, entry_cls = _messages()
        raw = _table_entries(self.index_path)
        if b"" not in raw:
            raise FormatError(f"{self.index_path}: no bundle header (not a V2 checkpoint?)")
        header = header_cls.FromString(raw.pop(b""))
        if header.endianness != 0:
            raise FormatError(f"{self.index_path}: big-endian checkpoints are not supported")
        self.num_shards = max(int(header.num_shards), 1)
        self.entries = {key.decode(): entry_cls.FromString(value) for key, value in raw.items()}

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: tuple(d.size for d in e.shape.dim) for name, e in self.entries.items()}

    def _data_path(self, shard: int) -> Path:
        return Path(f"{self.prefix}.data-{shard:05d}-of-{self.num_shards:05d}")

    def read(self, name: str) -> np.ndarray:
        entry = self.entries.get(name)
        if entry is None:
            raise FormatError(f"{self.index_path}: no variable {name!r}")
        if entry.slices:
            raise FormatError(f"{self.index_path}: {name} is partitioned, not supported")
        if entry.dtype not in NUMPY_DTYPES:
            kind = "a string tensor" if entry.dtype == DT_STRING else f"dtype {entry.dtype}"
            raise FormatError(f"{self.index_path}: {name} is {kind}, not supported")
        shape = tuple(d.size for d in entry.shape.dim)
        dtype = np.dtype(NUMPY_DTYPES[entry.dtype])
        if int(np.prod(shape, dtype=np.int64)) * dtype.itemsize != entry.size:
            raise FormatError(f"{self.index_path}: {name}: {entry.size} bytes for shape {shape}")
        path = self._data_path(entry.shard_id)
        try:
            with open(path, "rb") as handle:
                handle.seek(entry.offset)
                data = handle.read(entry.size)
        except OSError as err:
            raise FormatError(f"{path}: cannot read {name}: {err.strerror or err}") from None
        if len(data) != entry.size:
            raise FormatError(f"{path}: {name}: truncated ({len(data)}/{entry.size} bytes)")
        if crc32c.crc32c(data) != _unmask(entry.crc32c):
            raise FormatError(f"{path}: {name}: checksum mismatch (corrupt data file)")
        return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))
