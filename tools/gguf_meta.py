"""Read a GGUF file's metadata and tensor table without touching its tensor data.

gguf's own `GGUFReader` builds a numpy view for every element of every metadata array: on Gemma 3's
262,144-token vocabulary that is ~1M memmap slices, 10–80 s. qkv needs only scalars, the vocabulary's
length and the tensor shapes, so this reader walks the header with `struct` (well under a second) and
keeps arrays of strings as their length. Format: github.com/ggml-org/ggml/blob/master/docs/gguf.md."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from qkv.tools.errors import BadInput

# GGUF value types -> struct format (little-endian); 8 = string, 9 = array.
_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_MAX_STRING = 1 << 26  # a metadata string longer than 64 MiB means a corrupt file, not a real key


@dataclass(frozen=True)
class GGUFTensor:
    name: str
    shape: tuple[int, ...]
    ggml_type: int

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass
class GGUFHeader:
    """Metadata key → value (arrays of strings are kept as their length, `ArrayLen`) and the tensor table."""

    version: int
    fields: dict[str, Any] = field(default_factory=dict)
    tensors: list[GGUFTensor] = field(default_factory=list)

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)


class ArrayLen(int):
    """The length of a metadata array whose items were skipped (e.g. the 262k vocabulary strings)."""


class _Reader:
    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh

    def take(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        raw = self.fh.read(size)
        if len(raw) != size:
            raise EOFError("truncated GGUF header")
        return struct.unpack(fmt, raw)[0]

    def string(self) -> str:
        n = self.take("<Q")
        if n > _MAX_STRING:
            raise ValueError(f"string length {n} is implausible")
        raw = self.fh.read(n)
        if len(raw) != n:
            raise EOFError("truncated GGUF string")
        return raw.decode("utf-8", errors="replace")

    def skip_strings(self, count: int) -> None:
        for _ in range(count):
            n = self.take("<Q")
            if n > _MAX_STRING:
                raise ValueError(f"string length {n} is implausible")
            self.fh.seek(n, 1)

    def value(self, vtype: int, *, keep_arrays: bool) -> Any:
        if vtype in _SCALAR:
            return self.take(_SCALAR[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            itype, count = self.take("<I"), self.take("<Q")
            if itype == _STRING and not keep_arrays:
                self.skip_strings(count)
                return ArrayLen(count)
            if itype in _SCALAR and not keep_arrays:
                self.fh.seek(struct.calcsize(_SCALAR[itype]) * count, 1)
                return ArrayLen(count)
            return [self.value(itype, keep_arrays=keep_arrays) for _ in range(count)]
        raise ValueError(f"unknown GGUF value type {vtype}")


def read_gguf_header(path: Path, *, keep_arrays: bool = False) -> GGUFHeader:
    """Parse the header of a GGUF v2/v3 file; BadInput for anything that is not one."""
    try:
        with open(path, "rb") as fh:
            r = _Reader(fh)
            if fh.read(4) != b"GGUF":
                raise ValueError("missing the GGUF magic bytes")
            version = r.take("<I")
            if version not in (2, 3):
                raise ValueError(f"GGUF version {version} is not supported")
            n_tensors, n_kv = r.take("<Q"), r.take("<Q")
            header = GGUFHeader(version=version)
            for _ in range(n_kv):
                key = r.string()
                header.fields[key] = r.value(r.take("<I"), keep_arrays=keep_arrays)
            for _ in range(n_tensors):
                name = r.string()
                dims = tuple(r.take("<Q") for _ in range(r.take("<I")))
                ggml_type = r.take("<I")
                r.take("<Q")  # data offset: not needed
                header.tensors.append(GGUFTensor(name=name, shape=dims, ggml_type=ggml_type))
            return header
    except (OSError, ValueError, EOFError, struct.error) as exc:
        raise BadInput(f"{path} is not a readable GGUF file ({type(exc).__name__}: {exc})",
                       expected="a GGUF v2/v3 model file") from None
