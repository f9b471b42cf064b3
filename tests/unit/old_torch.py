"""Checkpoint files as PyTorch 0.2-0.4 wrote them, written byte by byte without an old PyTorch.

The legacy format (torch/serialization.py before the zip archive): five parts back to back,
each a protocol-2 pickle except the last: the magic number, the protocol version (1001), system
info, the object, the sorted list of storage keys; then each storage as a little-endian int64
element count and its raw bytes. The object refers to each storage by a persistent id
``('storage', <storage class>, key, location, size, view_metadata)``, and each tensor is a reduce
to ``torch._utils._rebuild_tensor(storage, offset, size, stride)`` (0.2, 0.3) or
``_rebuild_tensor_v2(..., requires_grad, backward_hooks)`` (0.4). CSAIL trained on GPUs with
Python 2: storages are ``torch.cuda.FloatStorage`` at ``cuda:0`` and every str is a Python 2
byte string (SHORT_BINSTRING), which Python 3 reads back as str.
"""

from __future__ import annotations

import pickle
import struct
from collections import OrderedDict
from pathlib import Path
from typing import ClassVar

import torch

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
SYSTEM = {"protocol_version": PROTOCOL_VERSION, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 8}}


class _Storage:
    def __init__(self, key: str, data: torch.Tensor):
        self.key, self.data = key, data


class _OldTensor:
    """Pickles as old PyTorch's tensors did: a reduce to a _rebuild_tensor function over a storage."""

    def __init__(self, storage: _Storage, tensor: torch.Tensor, version: str):
        self.storage, self.tensor, self.version = storage, tensor, version

    def __reduce__(self) -> tuple:
        args = (self.storage, 0, tuple(self.tensor.shape), self.tensor.stride())
        if self.version == "0.4":
            return torch._utils._rebuild_tensor_v2, (*args, False, OrderedDict())
        return torch._utils._rebuild_tensor, args


class _Python2Pickler(pickle._Pickler):
    """Python 2's pickler as far as a checkpoint shows: str as byte strings, storages by persistent id."""

    dispatch: ClassVar[dict] = dict(pickle._Pickler.dispatch)

    def save_byte_string(self, text: str) -> None:
        data = text.encode("latin-1")
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(text)

    dispatch[str] = save_byte_string

    def persistent_id(self, obj: object) -> tuple | None:
        if isinstance(obj, _Storage):
            return ("storage", torch.cuda.FloatStorage, obj.key, "cuda:0", obj.data.numel(), None)
        return None


def write_legacy_checkpoint(path: Path, obj: dict, version: str = "0.2") -> None:
    """Write obj (dicts, numbers, str and float32 tensors) as PyTorch `version` ('0.2' or '0.4') on Python 2 did."""
    storages: list[_Storage] = []

    def convert(value: object) -> object:
        if isinstance(value, torch.Tensor):
            storage = _Storage(str(94000000 + len(storages)), value.detach().float().contiguous())
            storages.append(storage)
            return _OldTensor(storage, storage.data, version)
        if isinstance(value, dict):
            return type(value)((k, convert(v)) for k, v in value.items())
        return value

    converted = convert(obj)
    with open(path, "wb") as handle:
        for part in (MAGIC_NUMBER, PROTOCOL_VERSION, SYSTEM, converted, [s.key for s in storages]):
            _Python2Pickler(handle, protocol=2).dump(part)
        for storage in storages:
            handle.write(struct.pack("<q", storage.data.numel()))
            handle.write(storage.data.numpy().astype("<f4").tobytes())
