"""Sigstore bundles: build key-signed v0.3 DSSE bundles, and parse any bundle version.

Key-signed bundles carry no certificate and no transparency-log entry (what cosign writes
with `--tlog-upload=false`): verification material is only a public key hint.
Certificate-carrying bundles are handed to the `sigstore` package for keyless checks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from signer.errors import FormatError
from signer.formats import mediatypes as mt
from signer.formats.dsse import Envelope, decode_base64, parse_envelope
from signer.formats.jsonenc import check_fields, load_signed_json

BUNDLE_MEDIA_TYPES = (
    mt.SIGSTORE_BUNDLE_V03,
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
)


@dataclass(frozen=True)
class ParsedBundle:
    media_type: str
    raw: bytes
    envelope: Envelope | None
    message_signature: bytes | None
    key_hint: str | None
    has_certificate: bool

    @property
    def is_keyless(self) -> bool:
        return self.has_certificate


def build_key_bundle(envelope: Envelope, hint: str) -> bytes:
    body = {
        "mediaType": mt.SIGSTORE_BUNDLE_V03,
        "verificationMaterial": {"publicKey": {"hint": hint}, "tlogEntries": []},
        "dsseEnvelope": envelope.to_json(),
    }
    return json.dumps(body, separators=(",", ":")).encode()


# protojson (sigstore-go) accepts a field by its JSON name or its proto name: both count.
_BUNDLE_FIELDS = frozenset({"mediaType", "verificationMaterial", "dsseEnvelope", "messageSignature"})
_BUNDLE_ALIASES = {"media_type": "mediaType", "verification_material": "verificationMaterial", "dsse_envelope": "dsseEnvelope",
                   "message_signature": "messageSignature"}


def parse_bundle(data: bytes, *, what: str = "sigstore bundle") -> ParsedBundle:
    body = load_signed_json(data, what=what)
    if not isinstance(body, dict):
        raise FormatError(f"{what} must be a JSON object")
    check_fields(body, _BUNDLE_FIELDS, what)
    for alias, field in _BUNDLE_ALIASES.items():
        if alias in body:
            raise FormatError(f"{what} spells {field!r} as {alias!r}", hint="write bundles with their JSON field names, as sigstore clients do")
    media_type = body.get("mediaType")
    if media_type not in BUNDLE_MEDIA_TYPES:
        raise FormatError(f"{what} has unsupported mediaType {media_type!r}", hint=f"expected {mt.SIGSTORE_BUNDLE_V03}")
    material = body.get("verificationMaterial")
    if not isinstance(material, dict):
        raise FormatError(f"{what} has no verificationMaterial")
    public_key = material.get("publicKey")
    hint = public_key.get("hint") if isinstance(public_key, dict) else None
    has_certificate = "certificate" in material or "x509CertificateChain" in material
    if not has_certificate and not isinstance(public_key, dict):
        raise FormatError(f"{what} has neither a certificate nor a public key hint in verificationMaterial")
    envelope = parse_envelope(body["dsseEnvelope"], what=f"{what} DSSE envelope") if "dsseEnvelope" in body else None
    message_signature = None
    if envelope is None:
        signature = body.get("messageSignature")
        if not isinstance(signature, dict):
            raise FormatError(f"{what} has neither a dsseEnvelope nor a messageSignature")
        message_signature = decode_base64(signature.get("signature"), f"{what} messageSignature")
    return ParsedBundle(
        media_type=media_type,
        raw=data,
        envelope=envelope,
        message_signature=message_signature,
        key_hint=hint if isinstance(hint, str) and hint else None,
        has_certificate=has_certificate,
    )
