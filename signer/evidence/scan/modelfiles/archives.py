"""Containers a loader opens for you: zip (PyTorch checkpoints, .npz), tar (torch's oldest
format, .nemo/.mar bundles) and compressed streams (joblib's zlib/gzip/bz2/xz/lzma, `.pkl.gz`).
Every member is judged like a file of its own, nested containers included, within a depth and
a byte budget; an archive that cannot be read completely (corrupt, encrypted, too deep, too
large) is unsafe when it holds model files."""

from __future__ import annotations

import collections
import itertools
import re
import tarfile
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import PurePosixPath
from functools import partial
from typing import Callable, Iterator

from signer.evidence.scan.modelfiles.source import Blob, Budget, Readable, StreamBlob, ZlibReader, decompressor
from signer.evidence.scan.modelfiles.verdict import Verdict, merge_members

MAX_DEPTH = 3  # containers inside containers
MAX_MEMBERS = 100_000
MODEL_SUFFIXES = {".pkl", ".pickle", ".joblib", ".sav", ".dat", ".data", ".bin", ".pt", ".pth", ".ckpt", ".npy", ".npz",
                  ".safetensors", ".gguf", ".onnx", ".h5", ".keras", ".hdf5"}
COMPRESSED_SUFFIXES = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".lzma": "lzma", ".z": "zlib", ".zlib": "zlib"}
ARCHIVE_SUFFIXES = {".zip", ".tar", ".tgz", ".nemo", ".mar", *COMPRESSED_SUFFIXES}
_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
_TORCH_STORAGE = re.compile(r"[^/]+/data/\d+")  # <archive>/data/<key> in torch.save's zip
_JOBLIB_ZF_HEADER = 2 + 19  # b"ZF" + the hex length joblib < 0.9.3 wrote before its zlib data


@dataclass(frozen=True)
class Context:
    budget: Budget
    depth: int = 0
    model_role: bool = False  # the name or the enclosing file says this is a model file

    def inside(self, model_role: bool) -> Context:
        return Context(self.budget, self.depth + 1, model_role)


Judge = Callable[[Blob, str, Context], "Verdict | None"]


def is_model_name(name: str) -> bool:
    suffixes = [s.lower() for s in PurePosixPath(name).suffixes]
    return any(s in MODEL_SUFFIXES for s in suffixes)


def _is_archive_name(name: str) -> bool:
    return any(s.lower() in ARCHIVE_SUFFIXES for s in PurePosixPath(name).suffixes)


def _too_deep(ctx: Context, kind: str, names: list[str]) -> Verdict | None:
    """Past the depth limit: unsafe if what is in there could be a model file."""
    if ctx.model_role or any(is_model_name(n) or _is_archive_name(n) for n in names):
        return Verdict.unsafe(kind, f"nested more than {MAX_DEPTH} archives deep: too deep to judge")
    return None


def judge_zip(blob: Blob, ctx: Context, judge: Judge) -> Verdict | None:
    try:
        with blob.spool() as handle, zipfile.ZipFile(handle) as archive:
            if ctx.depth >= MAX_DEPTH:
                return _too_deep(ctx, "zip", archive.namelist())
            return _zip_members(archive, blob, ctx, judge)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        return Verdict.unsafe("zip", f"corrupt zip archive: {exc}") if ctx.model_role else None


def _zip_members(archive: zipfile.ZipFile, blob: Blob, ctx: Context, judge: Judge) -> Verdict | None:
    infos = [i for i in archive.infolist() if not i.is_dir()]
    names = [i.filename for i in infos]
    modelish = ctx.model_role or any(is_model_name(n) for n in names)
    issues: list[str] = []
    if len(infos) > MAX_MEMBERS:
        return Verdict.unsafe("zip", f"more than {MAX_MEMBERS} members: too many to judge") if modelish else None
    duplicates = sorted(n for n, count in collections.Counter(names).items() if count > 1)
    if duplicates:
        issues.append(f"member names appear twice ({', '.join(duplicates[:3])}): zip readers disagree on which one is loaded")
    torch = any(PurePosixPath(n).name in ("data.pkl", "constants.pkl") for n in names)
    if torch and any(PurePosixPath(n).name == "constants.pkl" or "code" in PurePosixPath(n).parts[:-1] for n in names):
        issues.append("a TorchScript archive (code/, constants.pkl): torch.load runs its TorchScript code; save a state_dict instead")
    members: list[tuple[str, Verdict]] = []
    for info in infos:
        if info.flag_bits & 0x1:
            issues.append(f"{info.filename}: encrypted, so it cannot be judged")
            continue
        if torch and _TORCH_STORAGE.fullmatch(info.filename):
            continue  # raw tensor bytes that torch reads as a storage and never unpickles
        if info.compress_type not in _ZIP_METHODS:
            issues.append(f"{info.filename}: compression method {info.compress_type} cannot be read")
            continue
        member = StreamBlob(partial(archive.open, info), f"{blob.label}:{info.filename}", ctx.budget, info.file_size)
        verdict = judge(member, info.filename, ctx.inside(torch or ctx.model_role or is_model_name(info.filename)))
        if verdict is not None:
            members.append((info.filename, verdict))
    if not members and not (issues and modelish) and not ctx.model_role:
        return None
    kind = "pytorch-zip" if torch else "npz" if infos and all(n.endswith(".npy") for n in names) else "zip"
    return merge_members(kind, members, issues if modelish else [], members=len(members))


def judge_tar(blob: Blob, ctx: Context, judge: Judge) -> Verdict | None:
    try:
        with blob.spool() as handle, tarfile.open(fileobj=handle, mode="r:") as archive:
            if ctx.depth >= MAX_DEPTH:
                return _too_deep(ctx, "tar", [info.name for info in itertools.islice(archive, MAX_MEMBERS)])
            members: list[tuple[str, Verdict]] = []
            for count, info in enumerate(archive):
                if count >= MAX_MEMBERS:
                    return Verdict.unsafe("tar", f"more than {MAX_MEMBERS} members: too many to judge")
                if not info.isfile():
                    continue  # links, directories and devices carry no bytes to load
                member = StreamBlob(partial(_tar_member, archive, info), f"{blob.label}:{info.name}", ctx.budget, info.size)
                verdict = judge(member, info.name, ctx.inside(ctx.model_role or is_model_name(info.name)))
                if verdict is not None:
                    members.append((info.name, verdict))
    except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
        return Verdict.unsafe("tar", f"corrupt tar archive: {exc}") if ctx.model_role else None
    if not members and not ctx.model_role:
        return None
    return merge_members("tar", members, [], members=len(members))


@contextmanager
def _tar_member(archive: tarfile.TarFile, info: tarfile.TarInfo) -> Iterator[Readable]:
    handle = archive.extractfile(info)
    if handle is None:
        raise OSError(f"{info.name} has no content")
    with handle:
        yield handle


def judge_compressed(blob: Blob, name: str, codec: str, ctx: Context, judge: Judge) -> Verdict | None:
    """The decompressed content, judged under the name without its compression suffix."""
    path = PurePosixPath(name)
    inner_name = path.stem if path.suffix.lower() in COMPRESSED_SUFFIXES else path.name
    if ctx.depth >= MAX_DEPTH:
        return _too_deep(ctx, codec, [inner_name])
    inner = StreamBlob(lambda: _decompressed(blob, codec), f"{blob.label} ({codec})", ctx.budget)
    verdict = judge(inner, inner_name, ctx.inside(ctx.model_role or is_model_name(inner_name)))
    if verdict is not None:
        verdict.format = f"{verdict.format}+{codec}"
    return verdict


@contextmanager
def _decompressed(blob: Blob, codec: str) -> Iterator[Readable]:
    with blob.raw() as raw:
        if codec == "joblib-zf":
            raw.read(_JOBLIB_ZF_HEADER)
            first = raw.read(1)
            yield ZlibReader(_Prefixed(b"" if first == b" " else first, raw))
            return
        with decompressor(codec, raw) as stream:
            yield stream


class _Prefixed:
    """A stream with some bytes put back in front of it."""

    def __init__(self, prefix: bytes, raw: Readable) -> None:
        self._prefix, self._raw = prefix, raw

    def read(self, count: int = -1) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix, b""
            return data
        return self._raw.read(count)
