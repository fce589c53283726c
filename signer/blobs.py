"""Verify a sigstore bundle over a file (like `cosign verify-blob --bundle`)."""

from __future__ import annotations

import hashlib

from signer import mediatypes as mt
from signer.bundles import parse_bundle
from signer.errors import FormatError, ModelsignError, VerificationError
from signer.intoto import parse_statement
from signer.keyless import KeylessIdentity, verify_bundle_artifact, verify_bundle_dsse
from signer.keys import PublicKey
from signer.trust import TrustAnchor, describe_anchors


def verify_blob(artifact: bytes, bundle_bytes: bytes, anchors: list[TrustAnchor], *, what: str = "bundle") -> str:
    """Returns the name of the trusted key or identity that signed `artifact`."""
    bundle = parse_bundle(bundle_bytes, what=what)
    digest = "sha256:" + hashlib.sha256(artifact).hexdigest()
    if bundle.envelope is not None and bundle.envelope.payload_type != mt.INTOTO_PAYLOAD:
        raise VerificationError(f"{what} wraps a {bundle.envelope.payload_type!r} payload, not an in-toto signature statement")
    reasons: list[str] = []
    if bundle.is_keyless:
        for identity in (a for a in anchors if isinstance(a, KeylessIdentity)):
            try:
                if bundle.envelope is None:
                    verify_bundle_artifact(bundle.raw, artifact, identity)
                else:
                    _, payload, _ = verify_bundle_dsse(bundle.raw, identity)
                    _require_subject(payload, digest)
                return identity.name
            except ModelsignError as exc:
                reasons.append(f"{identity.name}: {exc}")
    else:
        for key in (a for a in anchors if isinstance(a, PublicKey)):
            if bundle.envelope is not None and bundle.envelope.verified_by(key):
                _require_subject(bundle.envelope.payload, digest)
                return key.name
            if bundle.message_signature is not None and key.verify(bundle.message_signature, artifact):
                return key.name
    raise VerificationError(
        f"{what} is not a valid signature by {describe_anchors(anchors)} over this file" + (": " + "; ".join(reasons) if reasons else ""),
        hint="check that the bundle belongs to this file and that the key or identity is the signer's",
    )


def _require_subject(payload: bytes, digest: str) -> None:
    """A DSSE blob signature is a cosign `sign/v1` statement naming the file; an attestation
    (any other predicate) about the file is not a signature of it."""
    try:
        statement = parse_statement(payload)
    except FormatError as exc:
        raise VerificationError(f"signed statement is malformed: {exc}") from None
    if statement.predicate_type != mt.COSIGN_SIGN_PREDICATE:
        raise VerificationError(f"bundle is an attestation of type {statement.predicate_type}, not a signature")
    if statement.subject_for(digest) is None:
        raise VerificationError(f"signed statement does not name this file ({digest}) as its subject")
