"""ONNX files without the onnx package: the protobuf wire format is walked completely (every
tag, length and varint inside the file), down through graphs, nodes, attributes, functions and
training info to every TensorProto, whose external data must stay inside the model directory
(onnxruntime reads `location` relative to the model; `../` or an absolute path reads any file).
Tensor bytes are skipped, never read."""

from __future__ import annotations

from pathlib import PurePosixPath

from signer.evidence.scan.modelfiles.source import Blob, Source
from signer.evidence.scan.modelfiles.verdict import Verdict

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
MAX_DEPTH = 64  # protobuf's own default recursion limit is 100
# message -> {field number: submessage}: the fields that can lead to a TensorProto
_CHILDREN: dict[str, dict[int, str]] = {
    "ModelProto": {7: "GraphProto", 20: "TrainingInfoProto", 25: "FunctionProto"},
    "GraphProto": {1: "NodeProto", 5: "TensorProto", 15: "SparseTensorProto"},
    "NodeProto": {5: "AttributeProto"},
    "AttributeProto": {5: "TensorProto", 6: "GraphProto", 10: "TensorProto", 11: "GraphProto", 22: "SparseTensorProto", 23: "SparseTensorProto"},
    "FunctionProto": {7: "NodeProto", 11: "AttributeProto"},
    "TrainingInfoProto": {1: "GraphProto", 2: "GraphProto"},
    "SparseTensorProto": {1: "TensorProto", 2: "TensorProto"},
    "TensorProto": {13: "StringStringEntryProto"},
    "StringStringEntryProto": {},
}

class ONNXError(ValueError):
    pass


class _Wire:
    def __init__(self, src: Source, size: int) -> None:
        self.src, self.size = src, size

    def varint(self, end: int) -> int:
        value, shift = 0, 0
        for _ in range(10):
            if self.src.pos >= end:
                raise ONNXError(f"a varint runs past its message at byte {self.src.pos}")
            byte = self.src.read(1)[0]
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7
        raise ONNXError(f"a varint longer than 10 bytes at byte {self.src.pos}")

    def skip(self, count: int, end: int) -> None:
        if self.src.pos + count > end or self.src.skip(count) < count:
            raise ONNXError(f"a field of {count} bytes at byte {self.src.pos} runs past its message")


def judge_onnx(blob: Blob, size: int) -> Verdict:
    try:
        with blob.open() as src:
            issues = _message(_Wire(src, size), "ModelProto", size, 0)
    except ONNXError as exc:
        return Verdict.unsafe("onnx", f"not a valid ONNX protobuf ({exc}): the file is not what its name says")
    if issues:
        return Verdict("onnx", False, issues)
    return Verdict("onnx", True)


def _message(wire: _Wire, kind: str, end: int, depth: int) -> list[str]:
    if depth > MAX_DEPTH:
        raise ONNXError(f"messages nested deeper than {MAX_DEPTH}")
    children, issues = _CHILDREN[kind], []
    fields: dict[int, bytes] = {}
    seen: set[int] = set()
    while wire.src.pos < end:
        at = wire.src.pos
        tag = wire.varint(end)
        number, kind_of_wire = tag >> 3, tag & 7
        if number == 0:
            raise ONNXError(f"field number 0 at byte {at}")
        seen.add(number)
        if kind_of_wire == _VARINT:
            wire.varint(end)
        elif kind_of_wire == _I64:
            wire.skip(8, end)
        elif kind_of_wire == _I32:
            wire.skip(4, end)
        elif kind_of_wire == _LEN:
            length = wire.varint(end)
            if wire.src.pos + length > end:
                raise ONNXError(f"field {number} at byte {at} claims {length} bytes, past the end of its message")
            if number in children:
                issues += _message(wire, children[number], wire.src.pos + length, depth + 1)
            elif kind == "StringStringEntryProto" and length <= 4096:
                fields[number] = wire.src.read(length)
            else:
                wire.skip(length, end)
        else:
            raise ONNXError(f"wire type {kind_of_wire} (a protobuf group) at byte {at}, which ONNX never writes")
    if kind == "ModelProto" and 1 not in seen:
        raise ONNXError("no ir_version")
    if kind == "StringStringEntryProto" and fields.get(1) == b"location":
        issues += _location_issue(fields.get(2, b""))
    return issues


def _location_issue(raw: bytes) -> list[str]:
    location = raw.decode("utf-8", "replace")
    path = PurePosixPath(location.replace("\\", "/"))
    if not location or "\x00" in location or path.is_absolute() or ".." in path.parts or (len(location) > 1 and location[1] == ":"):
        return [f"a tensor's external data location {location!r} points outside the model directory (onnxruntime would read that file)"]
    return []
