"""GGUF (llama.cpp) files, parsed completely: header, every metadata entry, every tensor info,
and each tensor's bytes checked to lie inside the file. Tensor data itself is never read."""

from __future__ import annotations

from signer.evidence.scan.modelfiles.source import Blob, Source
from signer.evidence.scan.modelfiles.verdict import Verdict

GGUF_MAGIC = b"GGUF"
_SCALAR_SIZE = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY, _UINT32 = 8, 9, 4
# ggml_type -> (block size, bytes per block), from gguf-py's GGML_QUANT_SIZES
GGML_TYPES = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34), 9: (32, 36), 10: (256, 84),
    11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 15: (256, 292), 16: (256, 66), 17: (256, 74),
    18: (256, 98), 19: (256, 50), 20: (32, 18), 21: (256, 110), 22: (256, 82), 23: (256, 136), 24: (1, 1), 25: (1, 2),
    26: (1, 4), 27: (1, 8), 28: (1, 8), 29: (256, 56), 30: (1, 2), 34: (256, 54), 35: (256, 66), 39: (32, 17),
}
MAX_DIMS = 4  # GGML_MAX_DIMS
_MIN_KV, _MIN_TENSOR = 8 + 4 + 1, 8 + 4 + 8 + 4 + 8  # smallest metadata entry and tensor info, in bytes


class GGUFError(ValueError):
    pass


class _Reader:
    def __init__(self, src: Source, size: int) -> None:
        self.src, self.size = src, size

    def take(self, count: int, what: str) -> bytes:
        at = self.src.pos
        data = self.src.read(count)
        if len(data) < count:
            raise GGUFError(f"the file ends at byte {self.size} inside {what} (which starts at byte {at})")
        return data

    def uint(self, count: int, what: str) -> int:
        return int.from_bytes(self.take(count, what), "little")

    def skip(self, count: int, what: str) -> None:
        if count > self.size - self.src.pos or self.src.skip(count) < count:
            raise GGUFError(f"{what} claims {count} bytes at byte {self.src.pos} but the file is {self.size} bytes")

    def string(self, what: str, keep: bool = True) -> str:
        length = self.uint(8, what)
        if length > self.size - self.src.pos:
            raise GGUFError(f"{what} claims a string of {length} bytes at byte {self.src.pos} but the file is {self.size} bytes")
        if not keep or length > 1 << 16:
            self.skip(length, what)
            return ""
        try:
            return self.take(length, what).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise GGUFError(f"{what} is not UTF-8") from exc

    def value(self, kind: int, what: str, depth: int = 0) -> int | None:
        """Reads one metadata value; returns it when it is a UINT32 (for general.alignment)."""
        if kind in _SCALAR_SIZE:
            data = self.take(_SCALAR_SIZE[kind], what)
            return int.from_bytes(data, "little") if kind == _UINT32 else None
        if kind == _STRING:
            self.string(what, keep=False)
            return None
        if kind == _ARRAY and depth < 4:
            item, count = self.uint(4, what), self.uint(8, what)
            if item in _SCALAR_SIZE:
                self.skip(count * _SCALAR_SIZE[item], what)
                return None
            if count > (self.size - self.src.pos) // 8:
                raise GGUFError(f"{what} claims {count} array items, more than the file can hold")
            for _ in range(count):
                self.value(item, what, depth + 1)
            return None
        raise GGUFError(f"{what} has unknown value type {kind}")


def judge_gguf(blob: Blob, size: int) -> Verdict:
    try:
        with blob.open() as src:
            tensors = _parse(_Reader(src, size))
    except GGUFError as exc:
        return Verdict.unsafe("gguf", str(exc))
    return Verdict("gguf", True, extra={"tensors": tensors})


def _parse(reader: _Reader) -> int:
    if reader.take(4, "the magic") != GGUF_MAGIC:
        raise GGUFError("no GGUF magic")
    version = reader.uint(4, "the version")
    if version not in (2, 3):
        raise GGUFError(f"GGUF version {version} is not one this check reads (2 or 3)")
    tensor_count, kv_count = reader.uint(8, "the tensor count"), reader.uint(8, "the metadata count")
    if tensor_count * _MIN_TENSOR + kv_count * _MIN_KV > reader.size - 24:
        raise GGUFError(f"GGUF header claims {tensor_count} tensors and {kv_count} metadata entries, more than a file of {reader.size} bytes can hold")
    alignment = 32
    for index in range(kv_count):
        key = reader.string(f"metadata entry {index}")
        kind = reader.uint(4, f"metadata entry {key!r}")
        value = reader.value(kind, f"metadata entry {key!r}")
        if key == "general.alignment":
            if kind != _UINT32 or not value or value & (value - 1):
                raise GGUFError("general.alignment must be a UINT32 power of two")
            alignment = value
    infos: list[tuple[str, int, int]] = []
    names: set[str] = set()
    for index in range(tensor_count):
        name = reader.string(f"tensor info {index}")
        if name in names:
            raise GGUFError(f"tensor {name!r} is listed twice")
        names.add(name)
        dims = reader.uint(4, f"tensor {name!r}")
        if not 1 <= dims <= MAX_DIMS:
            raise GGUFError(f"tensor {name!r} has {dims} dimensions (1 to {MAX_DIMS} allowed)")
        shape = [reader.uint(8, f"tensor {name!r}") for _ in range(dims)]
        kind, offset = reader.uint(4, f"tensor {name!r}"), reader.uint(8, f"tensor {name!r}")
        if kind not in GGML_TYPES:
            raise GGUFError(f"tensor {name!r} has unknown ggml type {kind}")
        block, block_bytes = GGML_TYPES[kind]
        if shape[0] % block:
            raise GGUFError(f"tensor {name!r}: first dimension {shape[0]} is not a multiple of its block size {block}")
        count = 1
        for n in shape:
            count *= n
        if offset % alignment:
            raise GGUFError(f"tensor {name!r} data offset {offset} is not aligned to {alignment}")
        infos.append((name, offset, count // block * block_bytes))
    start = -(-reader.src.pos // alignment) * alignment
    data_len = reader.size - start
    if not infos and reader.size > start:
        raise GGUFError(f"{reader.size - reader.src.pos} bytes follow the header of a GGUF file without tensors")
    end = 0
    for name, offset, nbytes in sorted(infos, key=lambda i: i[1]):
        if offset < end:
            raise GGUFError(f"tensor {name!r} at data offset {offset} overlaps the tensor before it")
        end = offset + nbytes
        if end > data_len:
            raise GGUFError(f"tensor {name!r} needs {nbytes} bytes at data offset {offset}, but the file holds only {max(data_len, 0)} bytes of tensor data")
    if data_len - end >= alignment:
        raise GGUFError(f"{data_len - end} bytes after the last tensor are not part of the GGUF file")
    return len(infos)
