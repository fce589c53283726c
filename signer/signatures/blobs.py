"""Verify sigstore bundles over a file: signatures (`cosign verify-blob --bundle`) and
in-toto attestations (`cosign verify-blob-attestation --bundle`).

The file may be given as `sha256:<hex>` instead, as sigstore clients accept: a message
signature is made over the file's digest, and a statement names its subject by digest, so
neither needs the content (except Ed25519 message signatures, which sign the whole file).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from signer.errors import FormatError, ModelsignError, UsageError, VerificationError
from signer.formats import mediatypes as mt
from signer.formats.bundles import ParsedBundle, parse_bundle
from signer.formats.intoto import Statement, Subject, parse_statement
from signer.formats.jsonenc import load_signed_json
from signer.trust.anchors import TrustAnchor, describe_anchors
from signer.trust.envelopes import rejection, verify_envelope
from signer.trust.keyless import KeylessIdentity, verify_bundle_artifact
from signer.trust.keys import PublicKey

_ALGORITHM = re.compile(r"(sha\d+|sha3-\d+|sha512-\d+|md5|blake2[bs]?|blake3)", re.IGNORECASE)
_HEX = re.compile(r"[0-9a-fA-F]*")


@dataclass(frozen=True)
class Blob:
    """What a bundle is checked against: a file (content read only if needed) or a digest."""

    label: str  # as the user named it, for messages
    digest: str  # sha256:<lowercase hex>
    path: Path | None = None
    data: bytes | None = None

    @classmethod
    def of_bytes(cls, data: bytes, label: str = "this file") -> "Blob":
        return cls(label=label, digest="sha256:" + hashlib.sha256(data).hexdigest(), data=data)

    def content(self) -> bytes | None:
        """The bytes, or None when only the digest was given."""
        if self.data is None and self.path is not None:
            try:
                return self.path.read_bytes()
            except OSError as exc:
                raise UsageError(f"cannot read {self.path}: {exc.strerror}") from None
        return self.data


def blob_argument(text: str) -> Blob:
    """FILE or `sha256:<hex>`. An existing file wins, as in sigstore-python, so a file whose
    name looks like a digest is still read; otherwise `ALGORITHM:...` is taken as a digest."""
    path = Path(text)
    if path.is_file():
        try:
            with path.open("rb") as handle:
                return Blob(label=text, digest="sha256:" + hashlib.file_digest(handle, "sha256").hexdigest(), path=path)
        except OSError as exc:
            raise UsageError(f"cannot read {text}: {exc.strerror}") from None
    if path.is_dir():
        raise UsageError(f"{text} is a directory, not a file", hint="pass a file or its sha256:<hex> digest")
    algorithm, colon, hexpart = text.partition(":")
    if not (colon and _ALGORITHM.fullmatch(algorithm)):
        raise UsageError(f"{text} does not exist", hint="pass an existing file, or its digest as sha256:<64 hex characters>")
    if algorithm.lower() != "sha256":
        raise UsageError(f"{text[:80]}: {algorithm} digests are not supported", hint="sigstore bundles sign sha256 digests: pass sha256:<64 hex characters>")
    if not _HEX.fullmatch(hexpart) or len(hexpart) != 64:
        raise UsageError(f"{text[:80]} is neither an existing file nor a sha256 digest (64 hex characters after 'sha256:')",
                         hint="pass the file, or sha256:<64 hex characters>")
    return Blob(label=text, digest="sha256:" + hexpart.lower())


# -- signatures -----------------------------------------------------------------------------


def verify_blob(artifact: bytes | Blob, bundle_bytes: bytes, anchors: list[TrustAnchor], *, what: str = "bundle") -> str:
    """Returns the name of the trusted key or identity that signed the file."""
    blob = artifact if isinstance(artifact, Blob) else Blob.of_bytes(artifact)
    bundle = parse_bundle(bundle_bytes, what=what)
    if bundle.envelope is not None:
        signer, statement = _verified_statement(bundle, anchors, what)
        if statement.predicate_type != mt.COSIGN_SIGN_PREDICATE:
            raise VerificationError(f"{what} is an attestation of type {statement.predicate_type}, not a signature",
                                    hint="verify it with `modelsign verify-blob-attestation`")
        _subject(statement, blob, what)
        return signer
    return _keyless_message_signer(bundle, blob, anchors, what) if bundle.is_keyless else _key_message_signer(bundle, blob, anchors, what)


def _keyless_message_signer(bundle: ParsedBundle, blob: Blob, anchors: list[TrustAnchor], what: str) -> str:
    failures: list[tuple[str, ModelsignError]] = []
    for identity in (a for a in anchors if isinstance(a, KeylessIdentity)):
        try:
            verify_bundle_artifact(bundle.raw, blob.digest, identity)  # sigstore checks the digest, no content needed
            return identity.name
        except ModelsignError as exc:
            failures.append((identity.name, exc))
    if failures:
        raise rejection(f"{what} is not a valid signature over {blob.label}", failures,
                        hint="check that the bundle belongs to this file and that the identity is the signer's")
    raise VerificationError(f"{what} is a keyless signature (certificate), and no keyless identity was given",
                            hint="pass --certificate-identity and --certificate-oidc-issuer; a public key alone does not verify it")


def _key_message_signer(bundle: ParsedBundle, blob: Blob, anchors: list[TrustAnchor], what: str) -> str:
    _check_recorded_digest(bundle, blob, what)
    reasons: list[str] = []
    for key in (a for a in anchors if isinstance(a, PublicKey)):
        if _key_verifies(key, bundle, blob, reasons):
            return key.name
    raise VerificationError(
        f"{what} is not a valid signature by {describe_anchors(anchors)} over {blob.label}" + (": " + "; ".join(reasons) if reasons else ""),
        hint="check that the bundle belongs to this file and that the key is the signer's",
    )


def _key_verifies(key: PublicKey, bundle: ParsedBundle, blob: Blob, reasons: list[str]) -> bool:
    signature = cast(bytes, bundle.message_signature)
    if isinstance(key.key, ed25519.Ed25519PublicKey):  # signs the content itself, not a digest
        content = blob.content()
        if content is None:
            reasons.append(f"{key.name}: an Ed25519 signature covers the whole file, so a digest alone cannot be checked; pass the file")
            return False
        return key.verify(signature, content)
    # ECDSA and RSA sign the sha256 digest: verify it as prehashed, the content is not needed.
    prehashed = cast(hashes.HashAlgorithm, Prehashed(hashes.SHA256()))
    return key.verify(signature, bytes.fromhex(blob.digest.split(":", 1)[1]), hash_algorithm=prehashed)


def _check_recorded_digest(bundle: ParsedBundle, blob: Blob, what: str) -> None:
    """A message signature may record the digest it covers; it must be this file's (sigstore checks the same)."""
    body = load_signed_json(bundle.raw, what=what)
    recorded = body.get("messageSignature", {}).get("messageDigest") if isinstance(body, dict) else None
    if not isinstance(recorded, dict) or recorded.get("algorithm") != "SHA2_256":
        return
    try:
        value = base64.b64decode(recorded.get("digest") or "", validate=True)
    except (binascii.Error, ValueError):
        raise FormatError(f"{what} messageDigest is not valid base64") from None
    if value.hex() != blob.digest.split(":", 1)[1]:
        raise VerificationError(f"{what} signs the digest sha256:{value.hex()}, not {blob.label} ({blob.digest})",
                                hint="check that the bundle belongs to this file")


# -- attestations ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BlobAttestation:
    signer: str
    digest: str
    predicate_type: str
    subject: Subject
    predicate: Any


def verify_blob_attestation(blob: Blob, bundle_bytes: bytes, anchors: list[TrustAnchor], *, predicate_type: str | None = None,
                            what: str = "bundle") -> BlobAttestation:
    """A signed in-toto statement whose subject is the file (cosign's `--check-claims`), of
    `predicate_type` if given."""
    bundle = parse_bundle(bundle_bytes, what=what)
    if bundle.envelope is None:
        raise VerificationError(f"{what} holds a message signature, not an attestation", hint="verify it with `modelsign verify-blob`")
    signer, statement = _verified_statement(bundle, anchors, what)
    subject = _subject(statement, blob, what)
    if predicate_type is not None and statement.predicate_type != predicate_type:
        raise VerificationError(f"{what} attests {statement.predicate_type}, not {predicate_type}",
                                hint="pass the --type the attestation was made with, or leave --type out to accept any")
    return BlobAttestation(signer=signer, digest=blob.digest, predicate_type=statement.predicate_type, subject=subject,
                           predicate=statement.predicate)


def _verified_statement(bundle: ParsedBundle, anchors: list[TrustAnchor], what: str) -> tuple[str, Statement]:
    assert bundle.envelope is not None
    if bundle.envelope.payload_type != mt.INTOTO_PAYLOAD:
        raise VerificationError(f"{what} wraps a {bundle.envelope.payload_type!r} payload, not an in-toto statement")
    signer = verify_envelope(bundle, anchors, what=what)
    try:
        return signer.name, parse_statement(signer.payload)
    except FormatError as exc:
        raise VerificationError(f"{what}: signed statement is malformed: {exc}") from None


def _subject(statement: Statement, blob: Blob, what: str) -> Subject:
    subject = statement.subject_for(blob.digest)
    if subject is None:
        named = ", ".join(f"{s.name or '(unnamed)'} sha256:{s.digest.get('sha256', '?')}" for s in statement.subjects[:5])
        raise VerificationError(f"{what} is about {named}, not {blob.label} ({blob.digest})",
                                hint="check that the bundle belongs to this file")
    return subject
