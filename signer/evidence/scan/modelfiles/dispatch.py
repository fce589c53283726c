"""Which judge a file gets. Content first, as loaders sniff it (torch.load, joblib.load and
numpy.load all look at the first bytes), then the name:

1. containers and compression by their magic (zip, tar, gzip/bz2/xz/lzma/zlib, joblib's old
   ZF header): members and decompressed content are judged in turn;
2. data formats by magic or name: numpy .npy, GGUF, safetensors, ONNX; Keras/HDF5 by name
   (Lambda layers are code, not analysed);
3. a name that says pickle (`.pkl`, `.bin`, `.pt`...), or a PROTO opcode at the start: the
   strict pickle verdict;
4. any other file is reported only when a loader unpickling it would import something.

A data format is safe only if it parses completely and its bytes, read from the first one as
pickles, reach no global off the allow-list: a GGUF or safetensors file that is also a pickle
(a polyglot named `pytorch_model.bin`) is unsafe.
"""

from __future__ import annotations

import tarfile
from dataclasses import replace
from pathlib import PurePosixPath

from signer.evidence.scan.modelfiles.archives import COMPRESSED_SUFFIXES, Context, is_model_name, judge_compressed, judge_tar, judge_zip
from signer.evidence.scan.modelfiles.formats import NPY_MAGIC, judge_npy, judge_safetensors
from signer.evidence.scan.modelfiles.gguf import GGUF_MAGIC, judge_gguf
from signer.evidence.scan.modelfiles.onnx import judge_onnx
from signer.evidence.scan.modelfiles.picklefile import import_issues, judge_pickle, reachable, reachable_and_error
from signer.evidence.scan.modelfiles.pickles import Import
from signer.evidence.scan.modelfiles.source import Blob
from signer.evidence.scan.modelfiles.verdict import Verdict

PICKLE_EXTENSIONS = {".pkl", ".pickle", ".joblib", ".sav", ".dat", ".data", ".bin", ".pt", ".pth", ".ckpt", ".npy", ".npz"}
KERAS_EXTENSIONS = {".h5", ".keras", ".hdf5"}
_LZ4 = b"\x04\x22\x4d\x18"


def _codec(head: bytes) -> str | None:
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh"):
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"\x5d\x00"):  # lzma "alone", as joblib writes it
        return "lzma"
    if len(head) >= 2 and head[0] == 0x78 and (head[0] << 8 | head[1]) % 31 == 0:
        return "zlib"
    if head.startswith(b"ZF") and len(head) >= 21 and all(chr(c) in "0123456789abcdefx " for c in head[2:21]):
        return "joblib-zf"
    return None


def _is_tar(head: bytes) -> bool:
    if len(head) < 512:
        return False
    try:
        tarfile.TarInfo.frombuf(head[:512], "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def _looks_safetensors(head: bytes) -> bool:
    return len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 1 << 32


def _role_suffix(name: str) -> str:
    """The suffix that says what a file is: `model.pkl.gz` and `ckpt.pth.tar` are a pickle and
    a checkpoint (whatever their content turns out to be)."""
    suffixes = [s.lower() for s in PurePosixPath(name).suffixes]
    while len(suffixes) > 1 and (suffixes[-1] in COMPRESSED_SUFFIXES or suffixes[-1] == ".tar"):
        suffixes.pop()
    return suffixes[-1] if suffixes else ""


def _size(blob: Blob) -> int:
    with blob.open() as src:
        return src.length()


def judge(blob: Blob, name: str, ctx: Context) -> Verdict | None:
    """The verdict on one file, or None when it is not a model file (text, code, images)."""
    suffix = _role_suffix(name)
    ctx = replace(ctx, model_role=ctx.model_role or is_model_name(name))
    with blob.open() as src:
        head = src.peek(512)
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _with_polyglot_check(judge_zip(blob, ctx, judge), blob)
    if _is_tar(head):
        return _with_polyglot_check(judge_tar(blob, ctx, judge), blob)
    codec = _codec(head)
    if codec is not None:
        return _with_polyglot_check(judge_compressed(blob, name, codec, ctx, judge), blob)
    if head.startswith(_LZ4) and ctx.model_role:
        return Verdict.unsafe("lz4", "LZ4-compressed (joblib can write it): this check cannot decompress it; store it uncompressed or with gzip")
    data = _data_format(blob, head, suffix)
    if data is not None:
        return _with_polyglot_check(data, blob)
    if suffix in PICKLE_EXTENSIONS or (len(head) >= 2 and head[0] == 0x80 and head[1] <= 5):
        return judge_pickle(blob)  # named like a pickle, or starts like one (Hugging Face cache blobs have no names)
    imports, unreadable = reachable_and_error(blob)
    if any(_looks_like_import(i) for i in imports):
        return judge_pickle(blob)  # a pickle under another name: weights.model, ckpt.pth.tar
    if unreadable:  # bytes another reader would load were kept back: "not a model file" is not known
        return Verdict.unsafe("unknown", f"cannot be read completely ({unreadable}), so whether a loader could run it cannot be judged")
    return None


def _data_format(blob: Blob, head: bytes, suffix: str) -> Verdict | None:
    if head.startswith(NPY_MAGIC):
        return judge_npy(blob, _size(blob))
    if head.startswith(GGUF_MAGIC):
        return judge_gguf(blob, _size(blob))
    if suffix == ".safetensors" or _looks_safetensors(head):
        return judge_safetensors(blob, _size(blob))
    if suffix == ".gguf":
        return Verdict.unsafe("gguf", "no GGUF magic: the file is not what its name says")
    if suffix == ".onnx":
        return judge_onnx(blob, _size(blob))
    if suffix in KERAS_EXTENSIONS:
        return Verdict.unsafe("keras", "Keras/HDF5 files can hold Lambda layers (code) and are not analysed")
    return None


def _with_polyglot_check(verdict: Verdict | None, blob: Blob) -> Verdict | None:
    """A file judged as data (or as a container) is unsafe when its first bytes also read as
    pickles that import something off the allow-list: torch.load or pickle.load would run it."""
    hostile = [i for i in reachable(blob) if not i.known or _plausible(i)]
    named, issues = import_issues(hostile, reading="its bytes also read as a pickle that ")
    if not issues:
        return verdict
    if verdict is None:
        verdict = Verdict("pickle", True)
    verdict.imports.extend(named)
    for issue in issues:
        verdict.fail(issue)
    return verdict


def _plausible(item: Import) -> bool:
    """A module an import system could resolve: not empty, no control characters. (Importing it
    is what runs code; the name looked up in it afterwards does not matter.)"""
    module = item.module or ""
    return bool(module) and not any(ord(c) < 0x20 or ord(c) == 0x7F for c in module)


def _looks_like_import(item: Import) -> bool:
    """In a file whose name does not say pickle: a global that names a real Python path (text
    that merely starts like an opcode, `class Model:`, does not) or one computed at load time."""
    if not item.known:
        return True
    return all(part.isidentifier() for text in (item.module or "", item.name or "") for part in text.split("."))

