"""Unpack untrusted tar layers into a directory that nothing in them can reach out of.

Python's `tarfile` only parses the headers; every write is ours. Each parent directory is
opened relative to the one above it with O_NOFOLLOW, so no link is ever followed while
writing, whatever the archive holds (tarfile's own `data` filter was led outside its root by
a chain of links: CVE-2025-4517, fixed only in 3.11.13/3.12.11/3.13.4). What is created:
- regular files, mode 0644 or 0755 (no setuid, setgid or sticky bit);
- directories, mode 0755;
- symbolic links whose target can never resolve outside the tree, wherever later entries put
  other links: relative, climbing only at its start (`../../dir/file`) and not above the tree
  root. In an image's root filesystem an absolute target, or one climbing past the root, means
  the image's root and is rewritten so; in a ModelKit (kit pack writes no links) it is refused;
- hard links to a regular file already unpacked in the same tree.
Devices, FIFOs, sparse files and other entry types are refused. A later entry of the same name
replaces an earlier file or link (as tar does), never a directory. Paths are kept short and
shallow enough that the scanners walking the tree afterwards reach every file by its path.
"""

from __future__ import annotations

import errno
import gzip
import os
import stat
import tarfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

from signer.errors import FormatError, UsageError

MAX_PATH_BYTES = 2048  # of a path inside the tree; less where the tree's own path is long
MAX_DEPTH = 128
NAME_MAX = 255
MAX_HEADER_BYTES = 1024 * 1024  # a pax or GNU long-name header: tarfile reads it whole into memory
_TAR_OVERHEAD_PER_ENTRY = 8 * 1024  # headers (pax ones for long names) and padding around each entry's data
_TAR_SLACK = 1024 * 1024  # the end-of-archive blocks, record padding, a global header
_CHUNK = 1024 * 1024
_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_HOSTILE = "this artifact is hostile or broken; do not deploy it, and have whoever built it repack it (kit pack writes only files and directories)"
_REPACK = "repack the layer with regular files, directories and links inside it only (kit pack and docker build do)"
_KINDS = {tarfile.CHRTYPE: "character device", tarfile.BLKTYPE: "block device", tarfile.FIFOTYPE: "FIFO"}

DEFAULT_MAX_BYTES = 100 * 1024**3
DEFAULT_MAX_FILES = 200_000


@dataclass(frozen=True)
class UnpackLimits:
    max_bytes: int = DEFAULT_MAX_BYTES
    max_files: int = DEFAULT_MAX_FILES  # entries: files, directories (also implied ones) and links


def shown(path: str) -> str:
    """A path for a message: hostile names run to thousands of characters."""
    return repr(path) if len(path) <= 120 else repr(f"{path[:60]}…{path[-40:]}") + f" ({len(path)} characters)"


class Budget:
    """What one artifact may unpack, across all its layers."""

    def __init__(self, limits: UnpackLimits) -> None:
        self.limits = limits
        self.files = self.directories = self.bytes = 0

    def entry(self, what: str, name: str, size: int = 0) -> None:
        self.files += 1
        self.bytes += max(size, 0)
        self._check(what)
        if self.bytes > self.limits.max_bytes:
            raise FormatError(f"{what}: more than {self.limits.max_bytes} bytes unpacked (entry {shown(name)} is {size} bytes)",
                              hint="raise --max-bytes if this artifact is legitimate")

    def implied_directory(self, what: str) -> None:
        self.directories += 1
        self._check(what)

    def stream_allowance(self) -> int:
        """How much tar data the next layer may decompress to: what is left of the byte budget
        plus header overhead for every entry still allowed. More is a decompression bomb."""
        entries_left = max(self.limits.max_files - self.files - self.directories, 0)
        return max(self.limits.max_bytes - self.bytes, 0) + entries_left * _TAR_OVERHEAD_PER_ENTRY + _TAR_SLACK

    def _check(self, what: str) -> None:
        if self.files + self.directories > self.limits.max_files:
            raise FormatError(f"{what}: more than {self.limits.max_files} files (entries: files, directories and links)",
                              hint="if this artifact is legitimate, pack its many small files into fewer archives")


class _Unsupported(Exception):
    """Raised while tarfile parses a header, where the layer is not known; reported by extract_tar."""


class SafeTree:
    """A directory that entries are written into without ever following a link."""

    def __init__(self, root: Path, *, what: str, budget: Budget, rootfs: bool) -> None:
        self.root, self.what, self.budget, self.rootfs = root, what, budget, rootfs
        room = os.pathconf(root, "PC_PATH_MAX") - len(os.fsencode(str(root))) - 2  # separator and NUL
        if room < 256:
            raise UsageError(f"the unpack directory {root} is too long a path to unpack layers under", hint="point TMPDIR at a shorter path")
        self.max_path = min(MAX_PATH_BYTES, room)
        self._fd = -1

    def __enter__(self) -> SafeTree:
        self._fd = os.open(self.root, _DIRECTORY_FLAGS)
        return self

    def __exit__(self, *_: object) -> None:
        os.close(self._fd)

    def escape(self, reason: str) -> FormatError:
        return FormatError(f"{self.what} has an entry that would escape the unpack directory: {reason}", hint=_HOSTILE)

    def unsupported(self, reason: str) -> FormatError:
        return FormatError(f"{self.what} has an entry modelsign does not unpack: {reason}", hint=_REPACK)

    # -- entries ----------------------------------------------------------------------------

    def directory(self, name: str) -> None:
        parts = self._parts(name, f"entry {shown(name)}", root_ok=True)
        if not parts:
            return  # `./`: the tree root itself
        with self._os_errors(name), self._parent(parts, f"entry {shown(name)}") as parent:
            try:
                os.mkdir(parts[-1], 0o755, dir_fd=parent)
            except FileExistsError:
                if stat.S_ISDIR(os.stat(parts[-1], dir_fd=parent, follow_symlinks=False).st_mode):
                    return  # the same directory again (another layer, say)
                os.unlink(parts[-1], dir_fd=parent)
                os.mkdir(parts[-1], 0o755, dir_fd=parent)

    def regular_file(self, name: str, source: BinaryIO, size: int, *, executable: bool) -> None:
        parts = self._parts(name, f"entry {shown(name)}")
        with self._os_errors(name), self._parent(parts, f"entry {shown(name)}") as parent:
            self._make_room(parent, parts[-1], name)
            fd = os.open(parts[-1], _NEW_FILE_FLAGS, 0o755 if executable else 0o644, dir_fd=parent)
            with open(fd, "wb") as out:
                remaining = size
                while remaining:
                    chunk = source.read(min(_CHUNK, remaining))
                    if not chunk:
                        raise tarfile.ReadError(f"unexpected end of data in {shown(name)}")
                    out.write(chunk)
                    remaining -= len(chunk)

    def symlink(self, name: str, target: str) -> None:
        parts = self._parts(name, f"entry {shown(name)}")
        resolved = self._link_target(name, parts, target)
        subject = f"symbolic link {shown(name)}"
        with self._os_errors(name), self._parent(parts, subject) as parent:
            self._make_room(parent, parts[-1], name)
            os.symlink(resolved, parts[-1], dir_fd=parent)

    def hardlink(self, name: str, target: str) -> None:
        subject = f"hard link {shown(name)} -> {shown(target)}"
        parts = self._parts(name, f"entry {shown(name)}")
        source = self._parts(target, f"the target of {subject}")
        if source == parts:
            raise self.unsupported(f"{subject} links to itself")
        with self._os_errors(name), self._parent(source, subject, create=False) as source_parent:
            try:
                mode = os.stat(source[-1], dir_fd=source_parent, follow_symlinks=False).st_mode
            except FileNotFoundError:
                raise self.unsupported(f"{subject}: the target is not unpacked before the link") from None
            if not stat.S_ISREG(mode):
                raise self.unsupported(f"{subject}: the target is not a regular file")
            with self._parent(parts, subject) as parent:
                self._make_room(parent, parts[-1], name)
                os.link(source[-1], parts[-1], src_dir_fd=source_parent, dst_dir_fd=parent, follow_symlinks=False)

    def move_in(self, name: str, source: Path) -> None:
        """Rename `source` (on the same file system) to `name` in the tree."""
        parts = self._parts(name, f"entry {shown(name)}")
        with self._os_errors(name), self._parent(parts, f"entry {shown(name)}") as parent:
            self._make_room(parent, parts[-1], name)
            os.rename(source, parts[-1], dst_dir_fd=parent)

    # -- rules --------------------------------------------------------------------------------

    def _parts(self, name: str, subject: str, *, root_ok: bool = False) -> tuple[str, ...]:
        if "\0" in name:
            raise self.unsupported(f"{subject} has a NUL character in its path")
        if name.startswith("/"):
            raise self.escape(f"{subject} is an absolute path")
        parts = tuple(p for p in name.split("/") if p not in ("", "."))
        if ".." in parts:
            raise self.escape(f"{subject} contains '..'")
        if not parts and not root_ok:
            raise self.unsupported(f"{subject} names the layer root itself")
        length = len(os.fsencode(name))
        if length > self.max_path:
            raise self.unsupported(f"{subject} is a {length}-byte path; modelsign unpacks paths of at most {self.max_path} bytes, so that every file can be scanned")
        if len(parts) > MAX_DEPTH:
            raise self.unsupported(f"{subject} is {len(parts)} directories deep; modelsign unpacks at most {MAX_DEPTH}")
        for part in parts:
            if len(os.fsencode(part)) > NAME_MAX:
                raise self.unsupported(f"{subject} has a {len(os.fsencode(part))}-byte name in it; file systems allow {NAME_MAX}")
        return parts

    def _link_target(self, name: str, parts: tuple[str, ...], target: str) -> str:
        """The target to write, or a refusal. Climbing only at the start, from a directory that
        was itself reached without links, ends inside the tree however the rest resolves: every
        link met on the way down obeys the same rule."""
        subject = f"symbolic link {shown(name)} -> {shown(target)}"
        if not target or "\0" in target:
            raise self.unsupported(f"{subject} has an empty or NUL-bearing target")
        steps = [s for s in target.split("/") if s not in ("", ".")]
        ups = next((i for i, s in enumerate(steps) if s != ".."), len(steps))
        rest, depth = steps[ups:], len(parts) - 1
        if ".." in rest:
            raise self.escape(f"{subject} climbs back up after going down; modelsign creates links of the form ../../dir/file only")
        if target.startswith("/") or ups > depth:
            if not self.rootfs:
                raise self.escape(f"{subject} points {'to an absolute path' if target.startswith('/') else 'above the layer root'}")
            ups = depth  # in an image, `/` and `..` at the root are the image's root
        resolved = "/".join([".."] * ups + rest) or "."
        if len(os.fsencode(resolved)) > self.max_path:
            raise self.unsupported(f"{subject} has a target longer than {self.max_path} bytes")
        return resolved

    # -- file system ----------------------------------------------------------------------------

    @contextmanager
    def _parent(self, parts: tuple[str, ...], subject: str, *, create: bool = True) -> Iterator[int]:
        """A descriptor of the directory holding parts[-1], each component opened relative to
        the one before and never through a link; missing ones are made when `create`."""
        fd = os.dup(self._fd)
        try:
            for depth, part in enumerate(parts[:-1], 1):
                child = self._enter(fd, part, parts[:depth], create, subject)
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    def _enter(self, fd: int, part: str, prefix: tuple[str, ...], create: bool, subject: str) -> int:
        where = shown("/".join(prefix))
        try:
            return os.open(part, _DIRECTORY_FLAGS, dir_fd=fd)
        except FileNotFoundError:
            if not create:
                raise self.unsupported(f"{subject}: {where} is not unpacked before the link") from None
            self.budget.implied_directory(self.what)  # tar writers often leave parent directories out
            os.mkdir(part, 0o755, dir_fd=fd)
            return os.open(part, _DIRECTORY_FLAGS, dir_fd=fd)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            if stat.S_ISLNK(os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode):
                raise self.escape(f"{subject} goes through the symbolic link {where}; modelsign never writes through links") from None
            raise self.unsupported(f"{subject} needs {where} to be a directory, but an earlier entry made it a file") from None

    def _make_room(self, parent: int, leaf: str, name: str) -> None:
        """A later entry replaces an earlier file or link of its name (the link itself, never
        what it points to); replacing a directory would orphan what was unpacked into it."""
        try:
            mode = os.stat(leaf, dir_fd=parent, follow_symlinks=False).st_mode
        except FileNotFoundError:
            return
        if stat.S_ISDIR(mode):
            raise self.unsupported(f"entry {shown(name)} would replace the directory an earlier entry made")
        os.unlink(leaf, dir_fd=parent)

    @contextmanager
    def _os_errors(self, name: str) -> Iterator[None]:
        """File-system refusals as messages. Errors without an errno come from reading the
        layer (a bad gzip stream) and are left to extract_tar."""
        try:
            yield
        except OSError as exc:
            if exc.errno is None:
                raise
            if exc.errno in (errno.ENAMETOOLONG, errno.ELOOP):
                raise self.unsupported(f"entry {shown(name)}: {exc.strerror}") from None
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise FormatError(f"{self.what}: no space left under {self.root} for {shown(name)}",
                                  hint="free disk space, point TMPDIR at a larger disk, or lower --max-bytes") from None
            raise FormatError(f"{self.what}: could not unpack {shown(name)} under {self.root}: {exc.strerror}",
                              hint="check the temporary directory (TMPDIR) is writable") from None


# -- tar streams ---------------------------------------------------------------------------------


class _CheckedTarInfo(tarfile.TarInfo):
    """Refuses, before tarfile buffers it, a header it would read whole into memory (pax and
    GNU long names) when it is oversized, and every sparse file (a small layer that expands to
    terabytes of zeros; kit pack and docker never write one)."""

    def _proc_member(self, archive: tarfile.TarFile) -> tarfile.TarInfo:  # tarfile's documented override point
        if self.type in (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK) \
                and self.size > MAX_HEADER_BYTES:
            raise _Unsupported(f"a {self.size}-byte extended header (more than the {MAX_HEADER_BYTES} modelsign reads)")
        if self.type == tarfile.GNUTYPE_SPARSE:
            raise _Unsupported(f"{shown(self.name)} is a sparse file")
        return super()._proc_member(archive)

    def _proc_gnusparse_00(self, next: tarfile.TarInfo, *_: object) -> None:
        raise _Unsupported(f"{shown(next.name)} is a sparse file")

    _proc_gnusparse_01 = _proc_gnusparse_10 = _proc_gnusparse_00


class _CappedReader:
    """The decompressed layer, refused past `cap` bytes: a gzip bomb stops here, not on disk."""

    def __init__(self, stream: BinaryIO, cap: int, what: str) -> None:
        self.stream, self.cap, self.what, self.count = stream, cap, what, 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(self.cap - self.count + 1 if size < 0 else size)
        self.count += len(data)
        if self.count > self.cap:
            raise FormatError(f"{self.what} decompresses to more than {self.cap} bytes of tar data, more than its entries can need (a decompression bomb)",
                              hint="raise --max-bytes if this artifact is legitimate")
        return data


def extract_tar(blob: Path, tree: SafeTree) -> None:
    """Every entry of the tar (optionally gzip'd, told by content) at `blob` into `tree`."""
    with blob.open("rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"  # by content: Docker's media types do not say "+gzip"
        raw.seek(0)
        try:
            with gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw as stream:
                reader = _CappedReader(stream, tree.budget.stream_allowance(), tree.what)
                with tarfile.open(fileobj=reader, mode="r|", tarinfo=_CheckedTarInfo) as archive:  # type: ignore[call-overload]
                    while (member := archive.next()) is not None:
                        archive.members.clear()  # stream mode keeps every header otherwise
                        _extract_member(archive, member, tree)
        except _Unsupported as exc:
            raise tree.unsupported(str(exc)) from None
        except RecursionError:  # tarfile follows chained pax and long-name headers by recursion
            raise FormatError(f"{tree.what} chains more tar headers before one entry than modelsign follows",
                              hint="repack it with kit pack or docker build") from None
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise FormatError(f"{tree.what} is not a valid tar layer: {exc}", hint="repack it with kit pack or docker build") from None


def _extract_member(archive: tarfile.TarFile, member: tarfile.TarInfo, tree: SafeTree) -> None:
    name, what, budget = member.name, tree.what, tree.budget
    if member.issparse():  # a sparse layout the parser checks above missed
        raise tree.unsupported(f"{shown(name)} is a sparse file")
    if member.isdir():
        budget.entry(what, name)
        tree.directory(name)
    elif member.isreg():
        budget.entry(what, name, member.size)  # before a byte is written
        source = archive.extractfile(member)
        assert source is not None
        tree.regular_file(name, source, member.size, executable=bool(member.mode & 0o100))
    elif member.issym():
        budget.entry(what, name)
        tree.symlink(name, member.linkname)
    elif member.islnk():
        budget.entry(what, name)
        tree.hardlink(name, member.linkname)
    else:
        raise tree.unsupported(f"{shown(name)} is a {_KINDS.get(member.type, f'tar entry of type {member.type!r}')}")
