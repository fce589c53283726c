"""OCI descriptors and manifests: strict parsing of what stores return, and Go-ordered
encoding of what we write (go-containerregistry's field order, as cosign writes it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from signer.errors import FormatError
from signer.formats import mediatypes as mt
from signer.formats.digests import is_digest, sha256_digest
from signer.formats.jsonenc import go_json
from signer.jsonread import parse_json_object

MAX_SIZE = 2**63 - 1  # the OCI image spec's int64: a larger size cannot name real content


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)
    artifact_type: str | None = None
    platform: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "size": self.size, "digest": self.digest}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform:
            out["platform"] = self.platform
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out

    @classmethod
    def for_content(cls, media_type: str, data: bytes, **kwargs: Any) -> Descriptor:
        return cls(media_type=media_type, digest=sha256_digest(data), size=len(data), **kwargs)


@dataclass(frozen=True)
class Manifest:
    """An image manifest or an index, parsed from the exact bytes a store returned."""

    media_type: str
    digest: str
    raw: bytes
    config: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()
    manifests: tuple[Descriptor, ...] = ()
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def is_index(self) -> bool:
        return self.media_type in mt.INDEX_TYPES

    def descriptor(self) -> Descriptor:
        return Descriptor(media_type=self.media_type, digest=self.digest, size=len(self.raw), artifact_type=self.artifact_type)


def parse_descriptor(value: Any, *, what: str) -> Descriptor:
    if not isinstance(value, dict):
        raise FormatError(f"{what} must be an object")
    media_type = value.get("mediaType")
    digest = value.get("digest")
    size = value.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise FormatError(f"{what} has no mediaType")
    if not isinstance(digest, str) or not is_digest(digest):
        raise FormatError(f"{what} has an invalid digest {digest!r}")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_SIZE:
        shown = size if not isinstance(size, int) or size.bit_length() <= 64 else f"of {size.bit_length()} bits"
        raise FormatError(f"{what} has an invalid size {shown!r}", hint="a descriptor's size is a non-negative int64 (OCI image spec)")
    annotations = value.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()):
        raise FormatError(f"{what} has annotations that are not a string map")
    artifact_type = value.get("artifactType")
    platform = value.get("platform")
    return Descriptor(
        media_type=media_type,
        digest=digest,
        size=size,
        annotations=dict(annotations),
        artifact_type=artifact_type if isinstance(artifact_type, str) else None,
        platform=platform if isinstance(platform, dict) else None,
    )


def parse_manifest(raw: bytes, *, digest: str, content_type: str | None = None, what: str = "manifest") -> Manifest:
    """Parse manifest bytes. `digest` must already be checked against `raw` by the caller."""
    body = parse_json_object(raw, what=what)
    if body.get("schemaVersion") != 2:
        raise FormatError(f"{what} has schemaVersion {body.get('schemaVersion')!r}, expected 2")
    media_type = body.get("mediaType") or _media_type_from_header(content_type)
    if media_type is None:
        # OCI allows omitting mediaType (kit 1.7 does); infer it from the shape.
        media_type = mt.OCI_INDEX if "manifests" in body else mt.OCI_MANIFEST
    if media_type not in mt.MANIFEST_TYPES:
        raise FormatError(f"{what} has unsupported mediaType {media_type!r}")
    subject = parse_descriptor(body["subject"], what=f"{what} subject") if body.get("subject") is not None else None
    annotations = body.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise FormatError(f"{what} annotations must be an object")
    artifact_type = body.get("artifactType") if isinstance(body.get("artifactType"), str) else None
    if media_type in mt.INDEX_TYPES:
        entries = body.get("manifests")
        if not isinstance(entries, list):
            raise FormatError(f"{what} is an index without a 'manifests' list")
        return Manifest(
            media_type=media_type,
            digest=digest,
            raw=raw,
            manifests=tuple(parse_descriptor(e, what=f"{what} entry {i}") for i, e in enumerate(entries)),
            subject=subject,
            artifact_type=artifact_type,
            annotations={str(k): str(v) for k, v in annotations.items()},
        )
    layers = body.get("layers")
    if not isinstance(layers, list):
        raise FormatError(f"{what} has no 'layers' list")
    return Manifest(
        media_type=media_type,
        digest=digest,
        raw=raw,
        config=parse_descriptor(body.get("config"), what=f"{what} config"),
        layers=tuple(parse_descriptor(layer, what=f"{what} layer {i}") for i, layer in enumerate(layers)),
        subject=subject,
        artifact_type=artifact_type,
        annotations={str(k): str(v) for k, v in annotations.items()},
    )


def _media_type_from_header(content_type: str | None) -> str | None:
    if not content_type:
        return None
    value = content_type.split(";", 1)[0].strip()
    return value if value in mt.MANIFEST_TYPES else None


def encode_image_manifest(
    config: Descriptor,
    layers: list[Descriptor],
    *,
    artifact_type: str | None = None,
    subject: Descriptor | None = None,
    annotations: dict[str, str] | None = None,
) -> bytes:
    body: dict[str, Any] = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST}
    if artifact_type:
        body["artifactType"] = artifact_type
    body["config"] = config.to_json()
    body["layers"] = [layer.to_json() for layer in layers]
    if annotations:
        body["annotations"] = dict(annotations)
    if subject:
        body["subject"] = subject.to_json()
    return go_json(body)


def encode_index(manifests: list[Descriptor], *, annotations: dict[str, str] | None = None) -> bytes:
    body: dict[str, Any] = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [m.to_json() for m in manifests]}
    if annotations:
        body["annotations"] = dict(annotations)
    return go_json(body)
