"""Unpack a ModelKit's layers into a directory for scanning, safely.

Each blob is streamed to disk with its digest checked, then extracted with Python's `data`
tar filter (no absolute paths, no `..`, no links leaving the tree, no devices, no setuid),
within limits on total size and file count. Model layers go to `models/`, everything else
(code, datasets, docs, prompts, and the Kitfile) to `context/`, so the vulnerability
scanner is not fed multi-gigabyte weights while the model-file scan sees everything.
"""

from __future__ import annotations

import gzip
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from signer import mediatypes as mt
from signer.errors import FormatError
from signer.modelkit import MAX_CONFIG_BYTES
from signer.oci.manifest import Descriptor, Manifest
from signer.oci.repository import Repository

DEFAULT_MAX_BYTES = 100 * 1024**3
DEFAULT_MAX_FILES = 200_000
_MODEL_KINDS = ("model", "modelpart")
RAW_PATH_ANNOTATION = "org.cncf.model.filepath"


@dataclass(frozen=True)
class UnpackLimits:
    max_bytes: int = DEFAULT_MAX_BYTES
    max_files: int = DEFAULT_MAX_FILES


@dataclass
class Unpacked:
    context: Path  # code, datasets, docs, prompts, Kitfile
    models: Path  # model and model-part layers
    files: int = 0
    bytes: int = 0


def _layer_kind(media_type: str) -> str:
    """`application/vnd.kitops.modelkit.code.v1.tar+gzip` -> `code`."""
    for prefix in (mt.KITOPS_LAYER_PREFIX, mt.MODELPACK_LAYER_PREFIX):
        if media_type.startswith(prefix):
            return media_type[len(prefix):].split(".", 1)[0]
    return ""


def _safe_relative(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise FormatError(f"layer path {name!r} would escape the unpack directory", hint="this artifact is hostile or broken; do not deploy it")
    return path


class _Budget:
    def __init__(self, limits: UnpackLimits, unpacked: Unpacked) -> None:
        self.limits, self.unpacked = limits, unpacked

    def charge(self, size: int, what: str) -> None:
        self.unpacked.files += 1
        self.unpacked.bytes += max(size, 0)
        if self.unpacked.files > self.limits.max_files:
            raise FormatError(f"{what}: more than {self.limits.max_files} files", hint="raise --max-files if this ModelKit is legitimate")
        if self.unpacked.bytes > self.limits.max_bytes:
            raise FormatError(f"{what}: more than {self.limits.max_bytes} bytes unpacked", hint="raise --max-bytes if this ModelKit is legitimate")


def _extract_tar(blob: Path, media_type: str, destination: Path, budget: _Budget, what: str) -> None:
    if media_type.endswith(("+zstd", ".zstd")):
        raise FormatError(f"{what} is zstd-compressed, which modelsign does not unpack", hint="repack it with gzip or no compression")
    with blob.open("rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"  # by content: Docker's media types do not say "+gzip"
    opener = gzip.open if gzipped else open
    try:
        with opener(blob, "rb") as stream, tarfile.open(fileobj=stream, mode="r|") as archive:
            for member in archive:
                _safe_relative(member.name)
                budget.charge(member.size if member.isfile() else 0, what)  # directories and links use inodes too
                # The `data` filter refuses absolute paths, `..`, links out of the tree and special files.
                archive.extract(member, destination, filter="data")
    except tarfile.FilterError as exc:
        raise FormatError(f"{what} has an entry that would escape the unpack directory: {exc}", hint="this artifact is hostile or broken; do not deploy it") from None
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise FormatError(f"{what} is not a valid tar layer: {exc}") from None


def _unpack_layer(repository: Repository, layer: Descriptor, index: int, destination: Path, workdir: Path, budget: _Budget) -> None:
    what = f"layer {index} ({layer.media_type})"
    limit = budget.limits.max_bytes
    if layer.size > limit:
        raise FormatError(f"{what} is {layer.size} bytes, more than the {limit} allowed", hint="raise --max-bytes if this artifact is legitimate")
    blob = workdir / "layer.blob"
    repository.fetch_blob_to_file(layer.digest, blob, max_bytes=limit)
    try:
        if layer.media_type.endswith(".raw"):  # one file, its path in an annotation
            target = destination / _safe_relative(layer.annotations.get(RAW_PATH_ANNOTATION, f"layer-{index}.raw"))
            budget.charge(layer.size, what)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(blob), target)
        else:
            _extract_tar(blob, layer.media_type, destination, budget, what)
    finally:
        blob.unlink(missing_ok=True)


def unpack_modelkit(repository: Repository, manifest: Manifest, workdir: Path, limits: UnpackLimits = UnpackLimits()) -> Unpacked:
    unpacked = Unpacked(context=workdir / "context", models=workdir / "models")
    unpacked.context.mkdir(parents=True, exist_ok=True)
    unpacked.models.mkdir(parents=True, exist_ok=True)
    budget = _Budget(limits, unpacked)
    if manifest.config is not None:
        kitfile = repository.fetch_blob(manifest.config.digest, max_bytes=MAX_CONFIG_BYTES)
        (unpacked.context / "Kitfile.json").write_bytes(kitfile)
    for index, layer in enumerate(manifest.layers):
        destination = unpacked.models if _layer_kind(layer.media_type) in _MODEL_KINDS else unpacked.context
        _unpack_layer(repository, layer, index, destination, workdir, budget)
    return unpacked


def unpack_image(repository: Repository, manifest: Manifest, workdir: Path, limits: UnpackLimits = UnpackLimits()) -> Unpacked:
    """All layers of an image (a KServe modelcar, say) into one tree, for the model-file scan.
    Whiteouts are not applied: a pickle that a later layer deletes is still reported (conservative)."""
    unpacked = Unpacked(context=workdir / "context", models=workdir / "rootfs")
    unpacked.context.mkdir(parents=True, exist_ok=True)
    unpacked.models.mkdir(parents=True, exist_ok=True)
    budget = _Budget(limits, unpacked)
    for index, layer in enumerate(manifest.layers):
        _unpack_layer(repository, layer, index, unpacked.models, workdir, budget)
    return unpacked
