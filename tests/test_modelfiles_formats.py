"""Data formats are safe only when they parse completely and their sizes agree (safetensors,
GGUF, ONNX, .npy), and only when their bytes are not also a pickle; archives and their members
(nested, encrypted, corrupt, too deep, too large) are judged all the way down."""

from __future__ import annotations

import gzip
import io
import json
import struct
import tarfile
import zipfile
from pathlib import Path

import pytest

from signer.evidence.scan.modelfiles import classify_file, scan_model_files
import signer.evidence.scan.modelfiles as modelfiles
from test_modelfiles_support import EVIL, state_dict, torch_zip, zip_of


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# -- safetensors -------------------------------------------------------------------------------------


def safetensors(tensors: dict[str, tuple[str, list[int], list[int]]], data: bytes, *, metadata: dict | None = None, raw_header: bytes | None = None) -> bytes:
    header = {name: {"dtype": dtype, "shape": shape, "data_offsets": offsets} for name, (dtype, shape, offsets) in tensors.items()}
    if metadata is not None:
        header["__metadata__"] = metadata
    text = raw_header if raw_header is not None else json.dumps(header).encode()
    text += b" " * (-len(text) % 8)  # the writer pads the header to 8 bytes
    return struct.pack("<Q", len(text)) + text + data


GOOD = {"a": ("F32", [2, 2], [0, 16]), "b": ("BF16", [3], [16, 22]), "c": ("BOOL", [0], [22, 22]), "d": ("F4", [4], [22, 24])}


def test_safetensors_that_tile_their_data_are_safe(tmp_path):
    entry = classify_file(write(tmp_path, "model.safetensors", safetensors(GOOD, bytes(24), metadata={"format": "pt"})))
    assert entry == {"format": "safetensors", "safe": True, "tensors": 4}


@pytest.mark.parametrize("tensors, data, metadata, problem", [
    ({"a": ("F32", [2], [0, 8]), "b": ("F32", [1], [12, 16])}, bytes(16), None, "starts at data byte 12, expected 8"),
    ({"a": ("F32", [2], [0, 8]), "b": ("F32", [2], [4, 12])}, bytes(12), None, "starts at data byte 4, expected 8"),
    ({"a": ("F32", [3], [0, 8])}, bytes(8), None, "needs 12 bytes but its data_offsets [0, 8] span 8"),
    ({"a": ("F32", [2], [0, 8])}, bytes(9), None, "describes 8 bytes of tensor data but the file holds 9"),
    ({"a": ("F32", [2], [0, 8])}, bytes(7), None, "describes 8 bytes of tensor data but the file holds 7"),
    ({"a": ("Q4", [2], [0, 8])}, bytes(8), None, "unknown dtype 'Q4'"),
    ({"a": ("F32", [-2], [0, 8])}, bytes(8), None, "invalid shape"),
    ({"a": ("F32", [2], [0, 8])}, bytes(8), {"n": 1}, "__metadata__ must map strings to strings"),
], ids=["gap", "overlap", "shape-vs-offsets", "data-too-long", "data-too-short", "dtype", "shape", "metadata"])
def test_safetensors_whose_sizes_disagree_are_unsafe(tmp_path, tensors, data, metadata, problem):
    entry = classify_file(write(tmp_path, "model.safetensors", safetensors(tensors, data, metadata=metadata)))
    assert entry["safe"] is False and problem in entry["issue"] and "re-export it" in entry["issue"]


@pytest.mark.parametrize("header, problem", [
    (b'{"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, "a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}', "appears twice"),
    (b'{"a": NaN}', "NaN is not JSON"),
    (b"[1, 2]", "does not start with '{'"),
    (b"\xff\xfe", "not valid JSON"),
], ids=["duplicate-keys", "nan", "not-an-object", "not-utf8"])
def test_safetensors_headers_parsers_disagree_on_are_unsafe(tmp_path, header, problem):
    entry = classify_file(write(tmp_path, "model.safetensors", safetensors({}, b"\0", raw_header=header)))
    assert entry["safe"] is False and problem in entry["issue"]


def test_a_valid_safetensors_file_that_is_also_a_pickle_is_unsafe(tmp_path):
    """The header length's low byte is BINBYTES: the pickle jumps into the header, where a
    JSON string holds a second BINBYTES ("B~~~~") whose length jumps 2 GiB into the tensor
    data, where os.system waits. A valid safetensors file; torch.load would run it."""
    k = 64
    length = 0x42 + 256 * k  # bytes: 'B', then k as the BINBYTES length
    landing = 5 + k  # where the first jump lands: inside the header text
    jump = int.from_bytes(b"~~~~", "little")
    evil_at = landing + 5 + jump
    size = evil_at + len(EVIL) + 3
    prefix = b'{"__metadata__":{"pad":"'
    filler = b"x" * (landing - 8 - len(prefix))
    data_len = size - 8 - length
    tail = b'B~~~~"},"w":{"dtype":"U8","shape":[%d],"data_offsets":[0,%d]}}' % (data_len, data_len)
    header = prefix + filler + tail
    header += b" " * (length - len(header))
    path = tmp_path / "model.safetensors"
    with path.open("wb") as handle:  # sparse: 2 GiB on paper, a few KiB on disk
        handle.write(struct.pack("<Q", length) + header)
        handle.seek(evil_at)
        handle.write(EVIL)
        handle.truncate(size)
    entry = classify_file(path)
    assert entry["format"] == "safetensors" and entry["safe"] is False and entry["dangerousImports"] == ["os.system"]
    assert "its bytes also read as a pickle that imports os.system" in entry["issue"]
    assert "header" not in entry["issue"]  # the safetensors part itself is valid


# -- GGUF ----------------------------------------------------------------------------------------------


def gguf_string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def gguf(tensors: list[tuple[str, list[int], int, int]], data: bytes, *, version: int = 3, alignment: int | None = None, extra: bytes = b"") -> bytes:
    """tensors: (name, shape, ggml type, offset)."""
    kvs = [gguf_string("general.architecture") + struct.pack("<I", 8) + gguf_string("llama"),
           gguf_string("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 3) + b"".join(gguf_string(t) for t in ("<s>", "a", "b")),
           gguf_string("llama.rope.scale") + struct.pack("<I", 6) + struct.pack("<f", 1.0)]
    if alignment is not None:
        kvs.append(gguf_string("general.alignment") + struct.pack("<II", 4, alignment))
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs)) + b"".join(kvs)
    for name, shape, kind, offset in tensors:
        out += gguf_string(name) + struct.pack("<I", len(shape)) + b"".join(struct.pack("<Q", n) for n in shape) + struct.pack("<IQ", kind, offset)
    align = alignment or 32
    out += b"\0" * (-len(out) % align)
    return out + data + extra


GGUF_TENSORS = [("tok_embd.weight", [4, 2], 0, 0), ("blk.0.attn_q.weight", [32, 2], 2, 32)]  # F32 4x2 (32 bytes), Q4_0 2 blocks (36)


def test_a_complete_gguf_file_is_safe(tmp_path):
    data = bytes(32) + bytes(36) + bytes(28)  # the last tensor padded to the alignment
    assert classify_file(write(tmp_path, "model.gguf", gguf(GGUF_TENSORS, data))) == {"format": "gguf", "safe": True, "tensors": 2}
    aligned = gguf([("t", [8], 0, 0)], bytes(32), alignment=64)
    assert classify_file(write(tmp_path, "aligned.gguf", aligned))["safe"] is True


@pytest.mark.parametrize("build, problem", [
    (lambda: gguf(GGUF_TENSORS, bytes(40)), "needs 36 bytes at data offset 32, but the file holds only 40 bytes of tensor data"),
    (lambda: gguf(GGUF_TENSORS, bytes(96))[:200], "the file ends at byte 200 inside tensor 'tok_embd.weight'"),
    (lambda: gguf([("t", [4], 99, 0)], bytes(16)), "unknown ggml type 99"),
    (lambda: gguf([("t", [4], 0, 8)], bytes(32)), "data offset 8 is not aligned to 32"),
    (lambda: gguf([("t", [31], 2, 0)], bytes(32)), "first dimension 31 is not a multiple of its block size 32"),
    (lambda: gguf([("t", [4], 0, 0), ("t", [4], 0, 32)], bytes(64)), "tensor 't' is listed twice"),
    (lambda: gguf([("t", [4], 0, 0)], bytes(32), alignment=3), "general.alignment must be a UINT32 power of two"),
    (lambda: gguf([("t", [4], 0, 0)], bytes(32), version=1), "GGUF version 1 is not one this check reads"),
    (lambda: gguf([("t", [4], 0, 0)], bytes(32), extra=EVIL), "after the last tensor are not part of the GGUF file"),
], ids=["tensor-past-end", "truncated", "type", "misaligned", "block", "duplicate", "alignment", "version", "trailing"])
def test_gguf_files_that_do_not_parse_completely_are_unsafe(tmp_path, build, problem):
    entry = classify_file(write(tmp_path, "model.gguf", build()))
    assert entry["safe"] is False and problem in entry["issue"], entry


def test_gguf_counts_that_no_file_can_hold_are_unsafe(tmp_path):
    entry = classify_file(write(tmp_path, "model.gguf", b"GGUF" + struct.pack("<IQQ", 3, 10**12, 0)))
    assert entry["safe"] is False and "GGUF header claims 1000000000000 tensors and 0 metadata entries, more than a file of 24 bytes can hold" in entry["issue"]


# -- ONNX ----------------------------------------------------------------------------------------------


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number: int, value: int | bytes) -> bytes:
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    return varint(number << 3 | 2) + varint(len(value)) + value


def onnx_model(location: str | None = None, *, ir_version: bool = True) -> bytes:
    tensor = field(1, 2) + field(2, 1) + field(8, b"w") + field(9, bytes(8))  # dims, data_type FLOAT, name, raw_data
    external = field(1, 2) + field(2, 1) + field(8, b"big") + field(13, field(1, b"location") + field(2, location.encode())) + field(14, 1) if location else b""
    node = field(1, b"x") + field(2, b"y") + field(4, b"Add") + field(5, field(1, b"value") + field(5, tensor) + field(20, 4))
    graph = field(1, node) + field(2, b"g") + field(5, tensor) + (field(5, external) if external else b"")
    return (field(1, 8) if ir_version else b"") + field(2, b"pytorch") + field(7, graph) + field(8, field(1, b"") + field(2, 17))


def test_a_complete_onnx_model_is_safe(tmp_path):
    assert classify_file(write(tmp_path, "model.onnx", onnx_model())) == {"format": "onnx", "safe": True}
    assert classify_file(write(tmp_path, "ext.onnx", onnx_model("model.onnx_data")))["safe"] is True


@pytest.mark.parametrize("location", ["../../etc/passwd", "/etc/shadow", "weights/../../x", "C:\\secret", "..\\up"])
def test_onnx_external_data_must_stay_in_the_model_directory(tmp_path, location):
    entry = classify_file(write(tmp_path, "model.onnx", onnx_model(location)))
    assert entry["safe"] is False and "points outside the model directory" in entry["issue"]


@pytest.mark.parametrize("data, problem", [
    (onnx_model()[:-3], "past the end of its message"),
    (onnx_model() + b"\x0b", "protobuf group"),
    (onnx_model(ir_version=False), "no ir_version"),
    (b"\x08" + b"\xff" * 11, "varint longer than 10 bytes"),
], ids=["truncated", "group", "no-ir-version", "varint"])
def test_onnx_files_that_do_not_parse_are_unsafe(tmp_path, data, problem):
    entry = classify_file(write(tmp_path, "model.onnx", data))
    assert entry["safe"] is False and problem in entry["issue"] and "not what its name says" in entry["issue"]


# -- numpy headers ------------------------------------------------------------------------------------


def npy(header: str, data: bytes) -> bytes:
    text = header.encode()
    text += b" " * (-(len(text) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + data


@pytest.mark.parametrize("header, problem", [
    ("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), 'x': 1}", "exactly descr, fortran_order and shape"),
    ("{'descr': 'weird', 'fortran_order': False, 'shape': (2,)}", "is not one this check can size"),
    ("__import__('os').system('id')", "not a Python literal"),
], ids=["extra-key", "dtype", "code"])
def test_npy_headers_are_literals_numpy_understands(tmp_path, header, problem):
    entry = classify_file(write(tmp_path, "x.npy", npy(header, bytes(16))))
    assert entry["safe"] is False and problem in entry["issue"]


# -- archives -----------------------------------------------------------------------------------------


def tar_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_nested_archives_are_judged_to_the_bottom(tmp_path):
    inner = torch_zip(None, {}, data_pkl=EVIL)
    entry = classify_file(write(tmp_path, "bundle.zip", zip_of({"models/pytorch_model.bin": inner})))
    assert entry["safe"] is False and entry["dangerousImports"] == ["os.system"]
    assert "models/pytorch_model.bin: archive/data.pkl: imports os.system" in entry["issue"]
    tarred = classify_file(write(tmp_path, "model.tar.gz", gzip.compress(tar_of({"m/evil.pkl": EVIL, "m/README": b"hi"}))))
    assert tarred["safe"] is False and tarred["format"] == "tar+gzip" and "m/evil.pkl: imports os.system" in tarred["issue"]
    tar_in_zip = classify_file(write(tmp_path, "models.zip", zip_of({"x.tar": tar_of({"w.pkl": EVIL})})))
    assert tar_in_zip["dangerousImports"] == ["os.system"]


def test_archives_nested_too_deep_are_unsafe(tmp_path):
    data = EVIL
    for level in range(5):
        data = zip_of({f"level{level}.pkl" if level == 0 else f"level{level}.zip": data})
    entry = classify_file(write(tmp_path, "deep.zip", data))
    assert entry["safe"] is False and "nested more than 3 archives deep" in entry["issue"]


def test_encrypted_corrupt_and_ambiguous_zips_are_unsafe(tmp_path):
    data = bytearray(zip_of({"model.pkl": b"\x80\x02}q\x00."}, zipfile.ZIP_STORED))
    data[6] |= 0x01  # the local header's "encrypted" flag ...
    data[data.rindex(b"PK\x01\x02") + 8] |= 0x01  # ... and the central directory's
    assert "model.pkl: encrypted" in classify_file(write(tmp_path, "enc.zip", bytes(data)))["issue"]
    crc = bytearray(zip_of({"model.pkl": b"\x80\x02}q\x00." + b"N0" * 40 + b"."}, zipfile.ZIP_STORED))
    crc[crc.index(b"N0N0") + 10] = ord("K")  # still a pickle, but not the bytes the CRC covers
    assert "corrupt" in classify_file(write(tmp_path, "crc.zip", bytes(crc)))["issue"]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        with pytest.warns(UserWarning, match="Duplicate name"):
            archive.writestr("archive/data.pkl", EVIL)
    entry = classify_file(write(tmp_path, "dup.pt", buffer.getvalue()))
    assert entry["safe"] is False and "appear twice" in entry["issue"]
    broken = classify_file(write(tmp_path, "broken.pt", b"PK\x03\x04" + b"\0" * 60))
    assert broken["safe"] is False and "corrupt zip archive" in broken["issue"]


def test_decompression_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(modelfiles, "MAX_EXPANDED_BYTES", 1 << 20)
    bomb = gzip.compress(b"\x80\x02](" + b"N" * (4 << 20) + b"e.")
    entry = classify_file(write(tmp_path, "model.pkl.gz", bomb))
    assert entry["safe"] is False and "expands to more than 1048576 bytes" in entry["issue"]


def test_archives_of_documents_are_not_model_files(tmp_path):
    assert classify_file(write(tmp_path, "docs.zip", zip_of({"a.txt": b"hello", "b.md": b"# hi"}))) is None
    assert classify_file(write(tmp_path, "src.tar", tar_of({"serve.py": b"print(1)\n"}))) is None


def test_a_scan_reports_every_model_file_once(tmp_path):
    sd, storages = state_dict(2)
    write(tmp_path, "model/pytorch_model.bin", torch_zip(sd, storages))
    write(tmp_path, "model/model.safetensors", safetensors(GOOD, bytes(24)))
    write(tmp_path, "model/evil.pkl", EVIL)
    write(tmp_path, "src/serve.py", b"import torch\n")
    report = scan_model_files(tmp_path)
    assert report.scanner == modelfiles.SCANNER and report.unsafe == 1
    assert [(f["path"], f["safe"]) for f in report.files] == [("model/evil.pkl", False), ("model/model.safetensors", True), ("model/pytorch_model.bin", True)]
