"""Who signed the DSSE envelope of a sigstore bundle: a trusted key, a Sigstore keyless
identity, or a certificate chaining to a root of a private PKI. Shared by blob
attestations, blob signatures and model signatures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from cryptography.hazmat.primitives import hashes

from signer.errors import ModelsignError, VerificationError
from signer.formats.bundles import ParsedBundle
from signer.formats.jsonenc import load_signed_json
from signer.trust.anchors import TrustAnchor, describe_anchors
from signer.trust.certificates import CertificateTrust, bundle_certificates, verify_certificate_chain
from signer.trust.keyless import KeylessIdentity, verify_bundle_dsse
from signer.trust.keys import PublicKey, curve_hash

KeyHash = Callable[[PublicKey], hashes.HashAlgorithm]


@dataclass(frozen=True)
class EnvelopeSigner:
    name: str
    key_id: str | None
    payload: bytes


def verify_envelope(bundle: ParsedBundle, anchors: list[TrustAnchor], *, what: str, certificates: CertificateTrust | None = None,
                    key_hash: KeyHash | None = None, chain_option: bool = False) -> EnvelopeSigner:
    """The signer and payload of `bundle`'s envelope; raises VerificationError naming every
    trusted party that was tried and why it did not match. `chain_option`: the caller takes
    --certificate-chain, so hints may suggest it."""
    envelope = bundle.envelope
    if envelope is None:
        raise VerificationError(f"{what} holds no DSSE envelope")
    if not bundle.is_keyless:
        keys = [a for a in anchors if isinstance(a, PublicKey)]
        for key in keys:
            if envelope.verified_by(key, hash_algorithm=key_hash(key) if key_hash else None):
                return EnvelopeSigner(name=key.name, key_id=key.key_id, payload=envelope.payload)
        if not keys:
            raise VerificationError(f"{what} is signed with a key, and no public key was given", hint="pass --key PUB with the signer's public key")
        raise VerificationError(f"{what} was not made by {describe_anchors(keys)}",
                                hint="verify with the public key that matches the signing key, or re-sign with a trusted key")
    failures: list[tuple[str, ModelsignError]] = []
    if certificates is not None:
        try:
            return _certificate_signer(bundle, certificates, what)
        except ModelsignError as exc:
            failures.append((f"roots in {certificates.source}", exc))
    for identity in (a for a in anchors if isinstance(a, KeylessIdentity)):
        try:
            _, payload, _ = verify_bundle_dsse(bundle.raw, identity)
            return EnvelopeSigner(name=identity.name, key_id=None, payload=payload)
        except ModelsignError as exc:
            failures.append((identity.name, exc))
    if failures:
        raise rejection(f"{what} was not accepted", failures)
    if chain_option:
        raise VerificationError(
            f"{what} is signed with a certificate, and neither a keyless identity nor a certificate chain was given",
            hint="pass --certificate-identity and --certificate-oidc-issuer (Sigstore keyless), or --certificate-chain ROOT.pem "
                 "(a private PKI, model_signing's certificate method); a public key alone does not verify a certificate signature",
        )
    raise VerificationError(f"{what} is signed with a certificate (keyless), and no keyless identity was given",
                            hint="pass --certificate-identity and --certificate-oidc-issuer; a public key alone does not verify a certificate signature")


def rejection(summary: str, failures: list[tuple[str, ModelsignError]], *, hint: str | None = None) -> VerificationError:
    """One error for every trusted party that was tried; with a single one, its own message
    and hint say it best."""
    if len(failures) == 1:
        party, exc = failures[0]
        return VerificationError(f"{summary} by {party}: {exc.message}", hint=exc.hint or hint)
    return VerificationError(f"{summary}: " + "; ".join(f"{party}: {exc}" for party, exc in failures), hint=hint)


def _certificate_signer(bundle: ParsedBundle, trust: CertificateTrust, what: str) -> EnvelopeSigner:
    assert bundle.envelope is not None
    body = load_signed_json(bundle.raw, what=what)
    certificates = bundle_certificates(body.get("verificationMaterial") if isinstance(body, dict) else None, what="its verificationMaterial")
    signer = verify_certificate_chain(certificates, trust)
    key = PublicKey(key=certificates[0].public_key(), name=signer.name)  # type: ignore[arg-type]  # usage check ensured ECDSA
    # model_signing pairs each curve with its hash for certificate signatures, as for keys.
    if not bundle.envelope.verified_by(key, hash_algorithm=curve_hash(key)):
        raise VerificationError(f"the envelope signature does not verify with the key of {signer.subject}",
                                hint="the signature file was altered or belongs to another certificate; re-sign the model")
    return EnvelopeSigner(name=signer.name, key_id=None, payload=bundle.envelope.payload)
