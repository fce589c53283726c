"""Fast, parallel sha256 hashing of a model directory into a model_signing manifest.

model_signing's own serializers hash one file (or shard) per task through several layers of
Python per file; on many small files that overhead dominates. This engine walks the tree
once (os.scandir) and hashes whole files (`files` serialization, the default) or shards
largest-first on more threads than cores, big ranges straight from a read-only mapping in
8 MiB updates, small ones with `os.preadv` into a reused buffer (hashlib drops the GIL on
large updates, so the threads hash on every core). The result is a
`model_signing.manifest.Manifest` identical to what model_signing computes for the same
serialization parameters, so signing, payloads and verification stay in model_signing's
format. model_signing itself is imported while the files hash (`preload_model_signing`).
"""

from __future__ import annotations

import hashlib
import importlib
import mmap
import os
import stat
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable

from signer.errors import UsageError
from signer.progress import ByteCounter, ProgressCallback

GIT_PATHS = (".git", ".gitattributes", ".github", ".gitignore")
SINGLE_FILE = "."  # model_signing's resource name for a model that is one file
DEFAULT_SHARD_SIZE = 64 * 1024 * 1024  # shard serialization's default (model_signing's too)
_BUFFER_BYTES = 8 * 1024 * 1024
_MMAP_MIN_BYTES = 4 * 1024 * 1024

_local = threading.local()


@dataclass(frozen=True)
class ModelFile:
    relative: str  # POSIX path relative to the model directory
    path: str
    size: int


@dataclass(frozen=True)
class Task:
    file: ModelFile
    start: int
    end: int


def scan(model_dir: Path, ignore: Iterable[str], *, allow_symlinks: bool = False) -> list[ModelFile]:
    """Regular files under `model_dir`, minus ignored paths (and git metadata), sorted; or
    `model_dir` itself if it is a file, a single-file model (named "." like model_signing)."""
    if not model_dir.is_dir():
        return [_single_file(model_dir, allow_symlinks)]
    ignored = {PurePosixPath(p) for p in ignore} | {PurePosixPath(p) for p in GIT_PATHS}
    found: list[ModelFile] = []
    root = str(model_dir)

    def walk(directory: str, relative: PurePosixPath | None) -> None:
        with os.scandir(directory) as entries:
            for entry in entries:
                rel = relative / entry.name if relative else PurePosixPath(entry.name)
                if rel in ignored:
                    continue
                if entry.is_symlink() and not allow_symlinks:
                    raise UsageError(
                        f"{rel} in {model_dir} is a symlink; symlinks are not signed by default",
                        hint="replace the link with the file, or leave it out with --ignore-path",
                    )
                info = os.stat(entry.path)
                if stat.S_ISDIR(info.st_mode):
                    walk(entry.path, rel)
                elif stat.S_ISREG(info.st_mode):
                    found.append(ModelFile(relative=str(rel), path=entry.path, size=info.st_size))
                else:
                    raise UsageError(f"{rel} in {model_dir} is not a regular file or directory")

    walk(root, None)
    return sorted(found, key=lambda f: f.relative)


def _single_file(path: Path, allow_symlinks: bool) -> ModelFile:
    if path.is_symlink() and not allow_symlinks:
        raise UsageError(f"{path} is a symlink; symlinks are not signed by default", hint="sign the file it points to")
    try:
        info = os.stat(path)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise UsageError(f"{path} is not a regular file or directory")
    return ModelFile(relative=SINGLE_FILE, path=str(path), size=info.st_size)


def _buffer() -> bytearray:
    buffer = getattr(_local, "buffer", None)
    if buffer is None:
        buffer = _local.buffer = bytearray(_BUFFER_BYTES)
    return buffer


def _hash_range(task: Task, advance: Callable[[int], None] | None = None) -> bytes:
    """sha256 of bytes [start, end) of one file. Large ranges are hashed straight from a
    read-only mapping of the page cache (no copy); small ones through a reused buffer."""
    hasher = hashlib.sha256()
    fd = os.open(task.file.path, os.O_RDONLY)
    try:
        if task.end - task.start >= _MMAP_MIN_BYTES:
            _hash_mapped(hasher, fd, task, advance)
        else:
            _hash_read(hasher, fd, task, advance)
    finally:
        os.close(fd)
    return hasher.digest()


def _hash_mapped(hasher: "hashlib._Hash", fd: int, task: Task, advance: Callable[[int], None] | None) -> None:
    aligned = task.start - task.start % mmap.ALLOCATIONGRANULARITY
    try:
        mapping = mmap.mmap(fd, task.end - aligned, prot=mmap.PROT_READ, offset=aligned)
    except ValueError:  # the file shrank below the range since it was scanned
        raise UsageError(f"{task.file.relative} changed while it was being hashed") from None
    try:
        mapping.madvise(mmap.MADV_SEQUENTIAL)
        view = memoryview(mapping)
        try:
            for offset in range(task.start - aligned, task.end - aligned, _BUFFER_BYTES):
                end = min(offset + _BUFFER_BYTES, task.end - aligned)
                hasher.update(view[offset:end])  # no name holds the slice: the mapping must close after
                if advance:
                    advance(end - offset)
        finally:
            view.release()
    finally:
        mapping.close()


def _hash_read(hasher: "hashlib._Hash", fd: int, task: Task, advance: Callable[[int], None] | None) -> None:
    view = memoryview(_buffer())
    offset, remaining = task.start, task.end - task.start
    while remaining > 0:
        count = os.preadv(fd, [view[: min(remaining, _BUFFER_BYTES)]], offset)
        if count == 0:
            raise UsageError(f"{task.file.relative} shrank while it was being hashed")
        hasher.update(view[:count])
        if advance:
            advance(count)
        offset += count
        remaining -= count


def tasks_for(files: list[ModelFile], shard_size: int | None) -> list[Task]:
    """One task per shard (or per file when `shard_size` is None); empty files have no
    shards, exactly as model_signing's shard serialization."""
    tasks: list[Task] = []
    for file in files:
        if shard_size is None:
            tasks.append(Task(file, 0, file.size))
            continue
        for start in range(0, file.size, shard_size):
            tasks.append(Task(file, start, min(start + shard_size, file.size)))
    return tasks


def default_workers() -> int:
    """More threads than cores, as concurrent.futures' default: a file is one task in `files`
    serialization and cannot be split, so with one thread per core three equal files on two
    cores take two files' time; with a thread each, the cores share them and take 1.5."""
    return min(32, (os.cpu_count() or 1) + 4)


def hash_tasks(tasks: list[Task], *, workers: int | None = None, progress: ProgressCallback | None = None) -> dict[Task, bytes]:
    order = sorted(tasks, key=lambda t: t.end - t.start, reverse=True)  # big first: better balance
    advance = ByteCounter(sum(t.end - t.start for t in order), progress).add if progress else None
    with ThreadPoolExecutor(max_workers=max(1, min(workers or default_workers(), len(order)))) as pool:
        digests = list(pool.map(lambda task: _hash_range(task, advance), order))
    return dict(zip(order, digests))


def preload_model_signing() -> None:
    """Start importing model_signing (sigstore, protobuf: about 0.35 s of one core) in the
    background, so that it overlaps the hashing instead of adding to it. An import of it
    elsewhere waits for this one (Python's per-module import lock); a failure is left for
    that import to raise, where it can be reported."""

    if "model_signing" in sys.modules:
        return

    def load() -> None:
        try:
            importlib.import_module("model_signing")
        except Exception:  # noqa: BLE001 - re-raised by the caller's own import
            pass

    threading.Thread(target=load, name="import-model_signing", daemon=True).start()


def model_manifest(model_dir: Path, *, shard_size: int | None, ignore: list[str], allow_symlinks: bool = False,
                   progress: ProgressCallback | None = None):
    """The model_signing Manifest for sha256 `shards` (shard_size set) or `files` serialization."""
    files = scan(model_dir, ignore, allow_symlinks=allow_symlinks)
    digests = hash_tasks(tasks_for(files, shard_size), progress=progress)
    from model_signing import manifest  # after hashing: see preload_model_signing
    from model_signing._hashing.hashing import Digest

    recorded_ignores = [Path(p) for p in sorted(set(ignore) | set(GIT_PATHS))]
    items: list = []
    serialization: manifest.SerializationType
    if shard_size is None:
        serialization = manifest._FileSerialization("sha256", allow_symlinks, recorded_ignores)
        for task, digest in digests.items():
            items.append(manifest.FileManifestItem(path=PurePosixPath(task.file.relative), digest=Digest("sha256", digest)))
    else:
        serialization = manifest._ShardSerialization("sha256", shard_size, allow_symlinks, recorded_ignores)
        algorithm = f"sha256-sharded-{shard_size}"
        for task, digest in digests.items():
            items.append(
                manifest.ShardedFileManifestItem(path=PurePosixPath(task.file.relative), start=task.start, end=task.end, digest=Digest(algorithm, digest))
            )
    name = model_dir.name if model_dir.name not in ("", "..", ".") else model_dir.resolve().name
    return manifest.Manifest(name, items, serialization), files
