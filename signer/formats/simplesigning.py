"""cosign's simple-signing payload (what a legacy `.sig` layer signs)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from signer.errors import FormatError
from signer.formats.digests import is_digest
from signer.formats.jsonenc import check_fields, go_json, load_signed_json

PAYLOAD_TYPE = "cosign container image signature"
# A real payload is a few hundred bytes (a few KiB with annotations); more is padding.
MAX_PAYLOAD_BYTES = 64 * 1024
# The struct fields of cosign's payload (github.com/sigstore/cosign/pkg/cosign/payload).
_TOP_FIELDS = frozenset({"critical", "optional"})
_CRITICAL_FIELDS = frozenset({"identity", "image", "type"})
_IDENTITY_FIELDS = frozenset({"docker-reference"})
_IMAGE_FIELDS = frozenset({"docker-manifest-digest"})


@dataclass(frozen=True)
class SimpleSigningPayload:
    docker_reference: str
    manifest_digest: str
    optional: dict[str, Any] = field(default_factory=dict)

    def annotations(self) -> dict[str, str]:
        return {k: v for k, v in self.optional.items() if isinstance(v, str)}


def build_payload(docker_reference: str, manifest_digest: str, annotations: dict[str, str] | None = None) -> bytes:
    """Byte-identical to cosign: compact Go JSON, `optional` null or a key-sorted map."""
    optional = {key: annotations[key] for key in sorted(annotations)} if annotations else None
    body = {
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": manifest_digest},
            "type": PAYLOAD_TYPE,
        },
        "optional": optional,
    }
    return go_json(body)


def parse_payload(data: bytes) -> SimpleSigningPayload:
    body = load_signed_json(data, what="signature payload")
    if not isinstance(body, dict):
        raise FormatError("signature payload must be a JSON object")
    check_fields(body, _TOP_FIELDS, "signature payload")
    critical = body.get("critical")
    if not isinstance(critical, dict):
        raise FormatError("signature payload has no 'critical' section")
    check_fields(critical, _CRITICAL_FIELDS, "signature payload's critical section")
    for section, fields in (("identity", _IDENTITY_FIELDS), ("image", _IMAGE_FIELDS)):
        check_fields(critical.get(section), fields, f"signature payload's critical.{section}")
    if critical.get("type") != PAYLOAD_TYPE:
        raise FormatError(f"signature payload type is {critical.get('type')!r}, expected {PAYLOAD_TYPE!r}")
    image = critical.get("image")
    digest = image.get("docker-manifest-digest") if isinstance(image, dict) else None
    if not isinstance(digest, str) or not is_digest(digest):
        raise FormatError(f"signature payload names no valid manifest digest (got {digest!r})")
    identity = critical.get("identity")
    reference = identity.get("docker-reference") if isinstance(identity, dict) else None
    optional = body.get("optional")
    return SimpleSigningPayload(
        docker_reference=reference if isinstance(reference, str) else "",
        manifest_digest=digest,
        optional=optional if isinstance(optional, dict) else {},
    )
