"""Unpack a ModelKit's layers into a directory for scanning, safely.

Each blob is streamed to disk with its digest checked, then extracted by `safe_extract`
(no write ever follows a link, no link points out of the tree, no devices or setuid bits),
within limits on total size and entry count. Model layers go to `models/`, everything else
(code, datasets, docs, prompts, and the Kitfile) to `context/`, so the vulnerability
scanner is not fed multi-gigabyte weights while the model-file scan sees everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from signer.errors import FormatError
from signer.evidence.scan.safe_extract import DEFAULT_MAX_BYTES, DEFAULT_MAX_FILES, Budget, SafeTree, UnpackLimits, extract_tar
from signer.formats import mediatypes as mt
from signer.modelkit.kitfile import MAX_CONFIG_BYTES
from signer.oci.manifest import Descriptor, Manifest
from signer.oci.repository import Repository
from signer.progress import ByteCounter, ProgressCallback

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_FILES", "UnpackLimits", "Unpacked", "unpack_image", "unpack_modelkit"]

_MODEL_KINDS = ("model", "modelpart")
RAW_PATH_ANNOTATION = "org.cncf.model.filepath"


@dataclass
class Unpacked:
    context: Path  # code, datasets, docs, prompts, Kitfile
    models: Path  # model and model-part layers
    files: int = 0  # tar entries (files, directories, links)
    bytes: int = 0


def _layer_kind(media_type: str) -> str:
    """`application/vnd.kitops.modelkit.code.v1.tar+gzip` -> `code`."""
    for prefix in (mt.KITOPS_LAYER_PREFIX, mt.MODELPACK_LAYER_PREFIX):
        if media_type.startswith(prefix):
            return media_type[len(prefix):].split(".", 1)[0]
    return ""


def _unpack_layer(repository: Repository, layer: Descriptor, index: int, destination: Path, workdir: Path, budget: Budget, *, rootfs: bool,
                  pulled: ByteCounter | None) -> None:
    what = f"layer {index} ({layer.media_type})"
    limit = budget.limits.max_bytes
    if layer.size > limit:
        raise FormatError(f"{what} is {layer.size} bytes, more than the {limit} allowed", hint="raise --max-bytes if this artifact is legitimate")
    if layer.media_type.endswith(("+zstd", ".zstd")):
        raise FormatError(f"{what} is zstd-compressed, which modelsign does not unpack", hint="repack it with gzip or no compression")
    blob = workdir / "layer.blob"  # beside the trees, out of reach of their entries
    # The descriptor's size is part of what the digest names: a longer stream is refused as it
    # arrives, not after it filled the disk.
    repository.fetch_blob_to_file(layer.digest, blob, max_bytes=layer.size, advance=pulled.add if pulled else None)
    try:
        with SafeTree(destination, what=what, budget=budget, rootfs=rootfs) as tree:
            if layer.media_type.endswith(".raw"):  # one file, its path in an annotation
                name = layer.annotations.get(RAW_PATH_ANNOTATION, f"layer-{index}.raw")
                budget.entry(what, name, layer.size)
                tree.move_in(name, blob)
            else:
                extract_tar(blob, tree)
    finally:
        blob.unlink(missing_ok=True)


def _pull_counter(manifest: Manifest, progress: ProgressCallback | None) -> ByteCounter | None:
    """Bytes pulled of all the layers' declared sizes (each blob is unpacked as it arrives)."""
    return ByteCounter(sum(layer.size for layer in manifest.layers), progress) if progress else None


def unpack_modelkit(repository: Repository, manifest: Manifest, workdir: Path, limits: UnpackLimits = UnpackLimits(),
                    progress: ProgressCallback | None = None) -> Unpacked:
    unpacked = Unpacked(context=workdir / "context", models=workdir / "models")
    unpacked.context.mkdir(parents=True, exist_ok=True)
    unpacked.models.mkdir(parents=True, exist_ok=True)
    budget, pulled = Budget(limits), _pull_counter(manifest, progress)
    if manifest.config is not None:
        kitfile = repository.fetch_blob(manifest.config.digest, max_bytes=MAX_CONFIG_BYTES)
        (unpacked.context / "Kitfile.json").write_bytes(kitfile)
    for index, layer in enumerate(manifest.layers):
        destination = unpacked.models if _layer_kind(layer.media_type) in _MODEL_KINDS else unpacked.context
        _unpack_layer(repository, layer, index, destination, workdir, budget, rootfs=False, pulled=pulled)  # a ModelKit has no root of its own: absolute links are refused
    unpacked.files, unpacked.bytes = budget.files, budget.bytes
    return unpacked


def unpack_image(repository: Repository, manifest: Manifest, workdir: Path, limits: UnpackLimits = UnpackLimits(),
                 progress: ProgressCallback | None = None) -> Unpacked:
    """All layers of an image (a KServe modelcar, say) into one tree, for the model-file scan.
    Whiteouts are not applied: a pickle that a later layer deletes is still reported (conservative)."""
    unpacked = Unpacked(context=workdir / "context", models=workdir / "rootfs")
    unpacked.context.mkdir(parents=True, exist_ok=True)
    unpacked.models.mkdir(parents=True, exist_ok=True)
    budget, pulled = Budget(limits), _pull_counter(manifest, progress)
    for index, layer in enumerate(manifest.layers):
        _unpack_layer(repository, layer, index, unpacked.models, workdir, budget, rootfs=True, pulled=pulled)  # absolute links mean the image's root
    unpacked.files, unpacked.bytes = budget.files, budget.bytes
    return unpacked
