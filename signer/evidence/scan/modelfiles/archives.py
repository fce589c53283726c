"""Containers a loader opens for you: zip (PyTorch checkpoints, .npz), tar (torch's oldest
format, .nemo/.mar bundles) and compressed streams (joblib's zlib/gzip/bz2/xz/lzma, `.pkl.gz`).
Every member is judged like a file of its own, nested containers included, within a depth and
a byte budget; an archive that cannot be read completely (corrupt, encrypted, too deep, too
large) is unsafe when it holds model files; one nested too deep, or one that other readers may
open where Python's refuses, is unsafe whatever its names."""

from __future__ import annotations

import collections
import io
import re
import tarfile
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import PurePosixPath
from functools import partial
from typing import IO, Callable, Iterator

from signer.evidence.scan.modelfiles.bounds import exception_text
from signer.evidence.scan.modelfiles.source import Blob, Budget, BudgetExceeded, Readable, StreamBlob, ZlibReader, decompressor
from signer.evidence.scan.modelfiles.torchtar import FORMAT, TORCH_TAR_MEMBERS, is_torch_tar, judge_torch_tar_member
from signer.evidence.scan.modelfiles.verdict import Verdict, cannot_judge, merge_members

MAX_DEPTH = 3  # archives inside archives (a compressed stream is at the level of what it holds)
MAX_MEMBERS = 100_000
MODEL_SUFFIXES = {".pkl", ".pickle", ".joblib", ".sav", ".dat", ".data", ".bin", ".pt", ".pth", ".ckpt", ".npy", ".npz",
                  ".safetensors", ".gguf", ".onnx", ".h5", ".keras", ".hdf5"}
COMPRESSED_SUFFIXES = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".lzma": "lzma", ".z": "zlib", ".zlib": "zlib"}
_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
_TORCH_STORAGE = re.compile(r"[^/]+/data/\d+")  # <archive>/data/<key> in torch.save's zip
_JOBLIB_ZF_HEADER = 2 + 19  # b"ZF" + the hex length joblib < 0.9.3 wrote before its zlib data


@dataclass(frozen=True)
class Context:
    budget: Budget
    depth: int = 0
    model_role: bool = False  # the name or the enclosing file says this is a model file
    decompressed: bool = False  # the content of a compressed stream

    def inside(self, model_role: bool) -> Context:
        """A member of an archive: one level deeper."""
        return Context(self.budget, self.depth + 1, model_role)

    def decompressing(self, model_role: bool) -> Context:
        """The content of a compressed stream: the stream's own level (a .tar.gz is one archive,
        so a Helm chart's subcharts fit), unless it came out of a compressed stream itself."""
        return Context(self.budget, self.depth + int(self.decompressed), model_role, decompressed=True)


Judge = Callable[[Blob, str, Context], "Verdict | None"]


def is_model_name(name: str) -> bool:
    suffixes = [s.lower() for s in PurePosixPath(name).suffixes]
    return any(s in MODEL_SUFFIXES for s in suffixes)


def _too_deep(ctx: Context, kind: str, holds_files: bool) -> Verdict | None:
    """Past the depth limit: unsafe if it holds any file (a pickle needs no model name to be
    loaded, and what is in there is not judged); only an empty container is not a model file."""
    if holds_files or ctx.model_role:
        return Verdict.unsafe(kind, f"nested more than {MAX_DEPTH} archives deep: too deep to judge; unpack it and scan what it holds")
    return None


_ZIP_OPEN_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError)
_TAR_OPEN_ERRORS = (tarfile.TarError, OSError, EOFError, ValueError)
_END_RECORD = b"PK\x05\x06"
# zip readers look for the end record in the last 64 KiB + 22 bytes; miniz reads back in 4 KiB steps, so a little further
_END_RECORD_WINDOW = 1 << 17


def _unopened_zip(handle: IO[bytes], exc: Exception, ctx: Context) -> Verdict | None:
    """It starts like a zip and zipfile refuses it. With an end-of-central-directory record
    where readers look for one, other zip readers (torch's miniz, unzip) may still list and
    load its members, whatever its name: unsafe. Without one no zip reader a loader uses opens
    it, so only a model name makes it unsafe (some files merely start with b"PK\\x03\\x04")."""
    problem = f"corrupt zip archive: {exception_text(exc)}"
    if _has_end_record(handle):
        return Verdict.unsafe("zip", f"{problem}; it has a zip end record, so a loader with another zip reader (torch's miniz, unzip) "
                                     "may still load what is in it")
    return Verdict.unsafe("zip", problem) if ctx.model_role else None


def _has_end_record(handle: IO[bytes]) -> bool:
    handle.seek(0, io.SEEK_END)
    handle.seek(max(0, handle.tell() - _END_RECORD_WINDOW))
    return _END_RECORD in handle.read()


def _unopened_tar(exc: Exception) -> Verdict:
    """Its first header is a valid tar header (checksum included) and tarfile still refuses it:
    another tar reader may read it, whatever its name."""
    return Verdict.unsafe("tar", f"corrupt tar archive: {exception_text(exc)}; its first header is a valid tar header, so another "
                                 "tar reader may still read what is in it")


def judged_or_unsafe(judge: Judge, member: Blob, name: str, ctx: Context) -> Verdict | None:
    """A member's verdict; a member that cannot be judged (unreadable, or any failure of a
    judge) is unsafe itself, so one bad member never hides the others or the archive."""
    try:
        return judge(member, name, ctx)
    except BudgetExceeded:
        raise  # a limit on the whole top-level file, reported there
    except Exception as exc:  # noqa: BLE001 -- whatever it is, the member was not judged: fail closed
        return cannot_judge(exc)


def judge_zip(blob: Blob, ctx: Context, judge: Judge) -> Verdict | None:
    with blob.spool() as handle:
        try:
            archive = zipfile.ZipFile(handle)
        except _ZIP_OPEN_ERRORS as exc:
            return _unopened_zip(handle, exc, ctx)
        with archive:
            if ctx.depth >= MAX_DEPTH:
                return _too_deep(ctx, "zip", any(not info.is_dir() for info in archive.infolist()))
            return _zip_members(archive, blob, ctx, judge)


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
        verdict = judged_or_unsafe(judge, member, info.filename, ctx.inside(torch or ctx.model_role or is_model_name(info.filename)))
        if verdict is not None:
            members.append((info.filename, verdict))
    if not members and not (issues and modelish) and not ctx.model_role:
        return None
    kind = "pytorch-zip" if torch else "npz" if infos and all(n.endswith(".npy") for n in names) else "zip"
    return merge_members(kind, members, issues if modelish else [], members=len(members))


def judge_tar(blob: Blob, ctx: Context, judge: Judge) -> Verdict | None:
    with blob.spool() as handle:
        try:
            archive = tarfile.open(fileobj=handle, mode="r:")
        except _TAR_OPEN_ERRORS as exc:
            return _unopened_tar(exc)
        with archive:
            infos, issues = _tar_listing(archive)
            if ctx.depth >= MAX_DEPTH:
                return _too_deep(ctx, "tar", bool(issues) or any(info.isfile() for info in infos))
            return _tar_members(archive, infos, issues, blob, ctx, judge)


def _tar_listing(archive: tarfile.TarFile) -> tuple[list[tarfile.TarInfo], list[str]]:
    """The members, and why the listing stops early if it does (once the tar is open, a header
    that cannot be read is no longer "not a tar": what follows it cannot be judged)."""
    infos: list[tarfile.TarInfo] = []
    members = iter(archive)
    while True:
        try:
            info = next(members)
        except StopIteration:
            return infos, []
        except _TAR_OPEN_ERRORS as exc:
            after = f" after member {infos[-1].name!r}" if infos else ""
            return infos, [f"the tar cannot be read to its end{after} ({exception_text(exc)}), so what follows cannot be judged"]
        if len(infos) == MAX_MEMBERS:
            return infos, [f"more than {MAX_MEMBERS} members: too many to judge"]
        infos.append(info)


def _judge_torch_member(blob: Blob, name: str, ctx: Context) -> Verdict:
    return judge_torch_tar_member(blob, name)


def _tar_members(archive: tarfile.TarFile, infos: list[tarfile.TarInfo], issues: list[str], blob: Blob, ctx: Context,
                 judge: Judge) -> Verdict | None:
    torch = is_torch_tar([info.name for info in infos])
    members: list[tuple[str, Verdict]] = []
    for info in infos:
        label = f"{blob.label}:{info.name}"
        if torch and info.name in TORCH_TAR_MEMBERS:
            if not info.isfile():  # tarfile extracts a link as the member or file it names: bytes this check does not see
                issues.append(f"{info.name}: torch reads it but it is a link or special member, so what torch reads cannot be judged")
                continue
            member = StreamBlob(partial(_tar_member, archive, info), label, ctx.budget, info.size)
            verdict = judged_or_unsafe(_judge_torch_member, member, info.name, ctx)
        elif not info.isfile():
            continue  # links, directories and devices carry no bytes to load
        else:
            member = StreamBlob(partial(_tar_member, archive, info), label, ctx.budget, info.size)
            verdict = judged_or_unsafe(judge, member, info.name, ctx.inside(ctx.model_role or is_model_name(info.name)))
        if verdict is not None:
            members.append((info.name, verdict))
    if not members and not issues and not ctx.model_role:
        return None
    return merge_members(FORMAT if torch else "tar", members, issues, members=len(members))


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
    inner_ctx = ctx.decompressing(ctx.model_role or is_model_name(inner_name))
    if inner_ctx.depth > MAX_DEPTH:  # compression inside compression that many levels down
        return _too_deep(ctx, codec, True)  # a stream always holds its content
    inner = StreamBlob(lambda: _decompressed(blob, codec), f"{blob.label} ({codec})", ctx.budget)
    verdict = judge(inner, inner_name, inner_ctx)
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
