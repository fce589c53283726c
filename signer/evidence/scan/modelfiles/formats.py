"""Data-only formats that are safe once they parse completely and their sizes agree:
safetensors (header only: tensor data is never read) and numpy `.npy` (object arrays are
pickles and are judged as such)."""

from __future__ import annotations

import ast
import json
import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

from signer.evidence.scan.modelfiles.bounds import MAX_SIZE_DIGITS, brief, checked_product, is_size
from signer.evidence.scan.modelfiles.picklefile import judge_pickle
from signer.evidence.scan.modelfiles.source import Blob, Source
from signer.evidence.scan.modelfiles.verdict import Verdict

MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024  # the limit of the safetensors library itself
SAFETENSORS_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32, "I64": 64, "U64": 64, "F64": 64, "C64": 64, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}
NPY_MAGIC = b"\x93NUMPY"
NPY_MAX_HEADER = 10_000  # numpy.lib.format refuses longer headers by default
_NPY_SCALAR = re.compile(r"[<>|=]?([biufcmMOSUV])(\d{0,9})(\[\w+\])?")  # numpy item sizes are C ints
NPY_MAX_SIZE = 2**63 - 1  # npy_intp: numpy refuses a larger dimension or element count


class _Refused(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise _Refused("a key appears twice (JSON readers disagree on which one counts)")
    return dict(pairs)


def _no_constant(name: str) -> Any:
    raise _Refused(f"{name} is not JSON")


def _bounded_int(text: str) -> int:
    """json's int parser, refusing digit strings no size can have before converting them (a
    4000-digit integer costs quadratic time, and more than 4300 digits raise)."""
    if len(text.lstrip("-")) > MAX_SIZE_DIGITS:
        raise _Refused(f"an integer of {len(text)} digits, larger than any size")
    return int(text)


def judge_safetensors(blob: Blob, size: int) -> Verdict:
    """Header JSON and offsets as the safetensors library validates them: every tensor's
    byte span matches its dtype and shape, and the spans tile the data exactly."""
    with blob.open() as src:
        prefix = src.read(8)
        if len(prefix) < 8:
            return Verdict.unsafe("safetensors", f"file of {size} bytes is shorter than the safetensors header")
        length = int.from_bytes(prefix, "little")
        if length > min(MAX_SAFETENSORS_HEADER, size - 8):
            return Verdict.unsafe("safetensors", f"header length {length} is impossible for a file of {size} bytes")
        raw = src.read(length)
    try:
        if not raw.startswith(b"{"):
            raise _Refused("the header does not start with '{'")
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constant, parse_int=_bounded_int)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        return Verdict.unsafe("safetensors", f"header is not valid JSON: {exc}")
    if not isinstance(header, dict):
        return Verdict.unsafe("safetensors", "header is not a JSON object")
    issue = _safetensors_layout(header, size - 8 - length)
    if issue:
        return Verdict.unsafe("safetensors", issue)
    return Verdict("safetensors", True, extra={"tensors": sum(1 for k in header if k != "__metadata__")})


def _safetensors_layout(header: dict[str, Any], data_len: int) -> str | None:
    spans: list[tuple[int, int, str]] = []
    for name, info in header.items():
        if name == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                return "__metadata__ must map strings to strings"
            continue
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            return f"tensor {brief(name)} must have exactly dtype, shape and data_offsets"
        dtype, count, offsets = info["dtype"], checked_product(info["shape"]), info["data_offsets"]
        if dtype not in SAFETENSORS_BITS:
            return f"tensor {brief(name)} has unknown dtype {brief(dtype)}"
        if count is None:
            return f"tensor {brief(name)} has an invalid shape {brief(info['shape'])} (dimensions and their product must fit in 64 bits)"
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(is_size(o) for o in offsets) and offsets[0] <= offsets[1]):
            return f"tensor {brief(name)} has invalid data_offsets {brief(offsets)}"
        bits = count * SAFETENSORS_BITS[dtype]
        if bits % 8 or offsets[1] - offsets[0] != bits // 8:
            needs = f"{bits // 8} bytes" if bits % 8 == 0 else f"{bits} bits (not a whole number of bytes)"
            return (f"tensor {brief(name)} ({dtype}, shape {brief(info['shape'])}) needs {needs} "
                    f"but its data_offsets {offsets} span {offsets[1] - offsets[0]}")
        spans.append((offsets[0], offsets[1], name))
    end = 0
    for start, stop, name in sorted(spans):
        if start != end:
            return f"tensor {brief(name)} starts at data byte {start}, expected {end} (tensor data must be contiguous, without gaps or overlaps)"
        end = stop
    if end != data_len:
        return f"the header describes {end} bytes of tensor data but the file holds {data_len}"
    return None


@dataclass
class OffsetBlob:
    """The rest of a blob from `offset` on (the pickle inside an object-dtype .npy)."""

    inner: Blob
    offset: int
    label: str

    @contextmanager
    def open(self) -> Iterator[Source]:
        with self.inner.open() as src:
            src.skip(self.offset)
            yield src

    def raw(self) -> Any:
        raise NotImplementedError("an offset view is walked as a pickle, or spooled")

    @contextmanager
    def spool(self) -> Iterator[Any]:
        """A seekable file positioned at `offset` (picklescan's second reading of the pickle)."""
        with self.inner.spool() as handle:
            handle.seek(self.offset)
            yield handle


def _npy_dtype(descr: Any, depth: int = 0) -> tuple[int, bool] | None:
    """(itemsize, holds objects) of a .npy header `descr`, or None if we cannot size it."""
    if depth > 16:
        return None
    if isinstance(descr, str):
        match = _NPY_SCALAR.fullmatch(descr)
        if match is None:
            return None
        kind, digits = match.group(1), match.group(2)
        if kind == "O":
            return 8, True
        if not digits:
            return None
        return (4 if kind == "U" else 1) * int(digits), False
    if isinstance(descr, list):  # structured: [(name, descr[, shape]), ...]
        size, objects = 0, False
        for field in descr:
            if not isinstance(field, tuple) or len(field) not in (2, 3) or not isinstance(field[0], (str, tuple)):
                return None
            inner = _npy_dtype(field[1], depth + 1)
            shape = field[2] if len(field) == 3 else ()
            count = checked_product(shape if isinstance(shape, tuple) else (shape,), NPY_MAX_SIZE)
            if inner is None or count is None:
                return None
            size += inner[0] * count
            objects = objects or inner[1]
        return size, objects
    return None


def judge_npy(blob: Blob, size: int) -> Verdict:
    """A .npy file: header as numpy parses it (a Python literal), data exactly as long as the
    shape and dtype say. An object array is a pickle after the header, judged as one."""
    with blob.open() as src:
        if src.read(6) != NPY_MAGIC:
            return Verdict.unsafe("npy", "no numpy magic")
        version = src.read(2)
        if len(version) < 2 or version[0] not in (1, 2, 3):
            return Verdict.unsafe("npy", f"numpy format version {tuple(version)} is not one numpy writes")
        length = int.from_bytes(src.read(2 if version[0] == 1 else 4), "little")
        if length > NPY_MAX_HEADER:
            return Verdict.unsafe("npy", f"header of {length} bytes is longer than numpy reads")
        raw = src.read(length)
        start = src.pos
    try:
        header = ast.literal_eval(raw.decode("utf-8" if version[0] == 3 else "latin1"))
    except (ValueError, SyntaxError, RecursionError, MemoryError, TypeError) as exc:
        return Verdict.unsafe("npy", f"header is not a Python literal: {exc}")
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"} or not isinstance(header["fortran_order"], bool):
        return Verdict.unsafe("npy", "header must have exactly descr, fortran_order and shape")
    dtype, count = _npy_dtype(header["descr"]), checked_product(header["shape"], NPY_MAX_SIZE) if isinstance(header["shape"], tuple) else None
    if dtype is None or count is None or count * dtype[0] > NPY_MAX_SIZE:
        return Verdict.unsafe("npy", f"dtype {brief(header['descr'])} or shape {brief(header['shape'])} is not one this check can size "
                                     f"(or larger than numpy allows)")
    if dtype[1]:
        inner = judge_pickle(OffsetBlob(blob, start, blob.label))
        inner.format = "npy (object array: pickle)"
        return inner
    if size - start != count * dtype[0]:
        return Verdict.unsafe("npy", f"header says shape {brief(header['shape'])} of {brief(header['descr'])} = {count * dtype[0]} bytes of data, "
                                     f"the file holds {size - start}")
    return Verdict("npy", True)
