"""DSSE envelopes (https://github.com/secure-systems-lab/dsse): PAE, sign, parse, verify."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes

from signer.errors import FormatError
from signer.formats.jsonenc import check_fields
from signer.trust.keys import PublicKey, SigningKey


def pae(payload_type: str, payload: bytes) -> bytes:
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


@dataclass(frozen=True)
class EnvelopeSignature:
    keyid: str
    sig: bytes


@dataclass(frozen=True)
class Envelope:
    payload_type: str
    payload: bytes
    signatures: tuple[EnvelopeSignature, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "payload": base64.b64encode(self.payload).decode(),
            "payloadType": self.payload_type,
            "signatures": [
                ({"keyid": s.keyid} if s.keyid else {}) | {"sig": base64.b64encode(s.sig).decode()} for s in self.signatures
            ],
        }

    def verified_by(self, key: PublicKey, *, hash_algorithm: hashes.HashAlgorithm | None = None) -> bool:
        message = pae(self.payload_type, self.payload)
        return any(key.verify(s.sig, message, hash_algorithm=hash_algorithm) for s in self.signatures)


def sign_envelope(payload_type: str, payload: bytes, key: SigningKey, *, keyid: str = "", hash_algorithm: hashes.HashAlgorithm | None = None) -> Envelope:
    signature = key.sign(pae(payload_type, payload), hash_algorithm=hash_algorithm)
    return Envelope(payload_type=payload_type, payload=payload, signatures=(EnvelopeSignature(keyid=keyid, sig=signature),))


_ENVELOPE_FIELDS = frozenset({"payloadType", "payload", "signatures"})
_SIGNATURE_FIELDS = frozenset({"keyid", "sig"})


def parse_envelope(value: Any, *, what: str = "DSSE envelope") -> Envelope:
    """An envelope from its parsed JSON (use `load_signed_json`, so repeated keys are seen)."""
    if not isinstance(value, dict):
        raise FormatError(f"{what} must be a JSON object")
    check_fields(value, _ENVELOPE_FIELDS, what)
    payload_type = value.get("payloadType")
    if not isinstance(payload_type, str):
        raise FormatError(f"{what} has no payloadType")
    payload = decode_base64(value.get("payload"), f"{what} payload")
    raw_signatures = value.get("signatures")
    if not isinstance(raw_signatures, list) or not raw_signatures:
        raise FormatError(f"{what} has no signatures")
    signatures = []
    for index, entry in enumerate(raw_signatures):
        if not isinstance(entry, dict):
            raise FormatError(f"{what} signature {index} is not an object")
        check_fields(entry, _SIGNATURE_FIELDS, f"{what} signature {index}")
        keyid = entry.get("keyid") or ""
        signatures.append(EnvelopeSignature(keyid=keyid if isinstance(keyid, str) else "", sig=decode_base64(entry.get("sig"), f"{what} signature {index}")))
    return Envelope(payload_type=payload_type, payload=payload, signatures=tuple(signatures))


def decode_base64(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise FormatError(f"{what} is missing")
    # The DSSE spec allows standard or URL-safe base64; padding may be omitted.
    standard = value.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise FormatError(f"{what} is not valid base64") from None
