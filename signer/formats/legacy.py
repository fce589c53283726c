"""cosign's tag-based objects: `<repo>:sha256-<hex>.sig` and `.att` manifests.

Each holds one layer per signature (or attestation). The image config is the one
go-containerregistry builds when cosign appends layers to an empty image, so our
manifests are byte-identical to cosign's for the same layers.
"""

from __future__ import annotations

from dataclasses import dataclass

from signer.errors import FormatError
from signer.formats import mediatypes as mt
from signer.formats.jsonenc import go_json
from signer.oci.manifest import Descriptor, Manifest, encode_image_manifest
from signer.oci.repository import Repository
from signer.oci.tagupdate import append_to_tag

MAX_LAYER_BYTES = 1024 * 1024
# 100 keyless layers (certificate, chain and Rekor bundle in annotations) stay well under this.
MAX_SIGNATURE_MANIFEST_BYTES = 1024 * 1024
_ZERO_TIME = "0001-01-01T00:00:00Z"


@dataclass(frozen=True)
class Layer:
    descriptor: Descriptor
    content: bytes


def signature_image_config(layer_digests: list[str]) -> bytes:
    body = {
        "architecture": "",
        "created": _ZERO_TIME,
        "history": [{"created": _ZERO_TIME} for _ in layer_digests],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": list(layer_digests)},
        "config": {},
    }
    return go_json(body)


def read_layers(manifest: Manifest | None, *, where: str) -> list[Descriptor]:
    """Layer descriptors of a cosign signature/attestation manifest; empty if absent."""
    if manifest is None:
        return []
    if manifest.is_index:
        raise FormatError(f"{where} is an index, not a cosign signature manifest", hint="delete or repair that tag")
    return list(manifest.layers)


def append_layer(repository: Repository, tag: str, layer: Layer) -> None:
    """Add `layer` to the manifest at `tag`, keeping every layer other writers added."""
    repository.push_blob(layer.content)
    where = f"{repository.display_name}:{tag}"

    def rewrite(current: Manifest | None) -> tuple[bytes, str]:
        layers = read_layers(current, where=where) + [layer.descriptor]
        config = signature_image_config([d.digest for d in layers])
        repository.push_blob(config)
        return encode_image_manifest(Descriptor.for_content(mt.OCI_CONFIG, config), layers), mt.OCI_MANIFEST

    append_to_tag(repository, tag, contains=lambda current: layer.descriptor in read_layers(current, where=where), rewrite=rewrite)
