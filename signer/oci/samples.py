"""Small, real OCI artifacts for the demo and tests: a one-layer image and an image index."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

from signer.formats import mediatypes as mt
from signer.formats.digests import sha256_digest
from signer.oci.manifest import Descriptor, encode_image_manifest, encode_index
from signer.oci.repository import Repository


def _layer(files: dict[str, bytes]) -> tuple[bytes, str]:
    """gzip'd tar of `files` and the uncompressed tar's digest (the diff id)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(files[name]))
    tar_bytes = raw.getvalue()
    return gzip.compress(tar_bytes, mtime=0), sha256_digest(tar_bytes)


def push_image(repository: Repository, files: dict[str, bytes], *, tag: str | None, architecture: str = "amd64") -> Descriptor:
    layer, diff_id = _layer(files)
    config = json.dumps(
        {"architecture": architecture, "os": "linux", "config": {}, "rootfs": {"type": "layers", "diff_ids": [diff_id]}},
        separators=(",", ":"),
    ).encode()
    repository.push_blob(layer)
    repository.push_blob(config)
    manifest = encode_image_manifest(Descriptor.for_content(mt.OCI_CONFIG, config), [Descriptor.for_content(mt.OCI_LAYER_TAR_GZIP, layer)])
    pushed = repository.push_manifest(manifest, mt.OCI_MANIFEST, tag=tag)
    return Descriptor(media_type=mt.OCI_MANIFEST, digest=pushed.digest, size=len(manifest))


def push_index(repository: Repository, images: dict[str, Descriptor], *, tag: str) -> Descriptor:
    """An index over per-architecture images (`{"amd64": descriptor, ...}`)."""
    entries = [
        Descriptor(media_type=d.media_type, digest=d.digest, size=d.size, platform={"architecture": arch, "os": "linux"})
        for arch, d in sorted(images.items())
    ]
    raw = encode_index(entries)
    pushed = repository.push_manifest(raw, mt.OCI_INDEX, tag=tag)
    return Descriptor(media_type=mt.OCI_INDEX, digest=pushed.digest, size=len(raw))
