"""X.509 certificates from a private PKI as model signers (model_signing's `certificate` method).

The signature is the same DSSE bundle as a key signature; its verificationMaterial carries
`x509CertificateChain` (signing certificate first, then the chain given at signing), the
only form model_signing 1.1.1 reads. Verification builds a path from that certificate to a
root the verifier names, and differs from model_signing on purpose in two places:
- time: model_signing validates at the certificate's notBefore, so an expired or
  not-yet-valid certificate passes forever. The bundle has no trusted timestamp, so the
  only honest check is "valid now".
- usage: model_signing accepts keyUsage digitalSignature *or* extendedKeyUsage codeSigning,
  so a TLS server certificate can sign models. Here a present keyUsage must allow
  digitalSignature and a present extendedKeyUsage must include codeSigning.
Roots are the self-signed certificates given; other given certificates only help build the
path, as in model_signing (OpenSSL), which never trusts an intermediate on its own.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import Criticality, ExtensionPolicy, PolicyBuilder, Store
from cryptography.x509.verification import VerificationError as X509VerificationError

from signer.errors import FormatError, UsageError, VerificationError
from signer.files import read_limited
from signer.trust.keys import SigningKey

MAX_CERTIFICATES = 10  # a bundle or a trust file with more is not a signing chain
_MAX_FILE_BYTES = 1024 * 1024
_CURVES = ("secp256r1", "secp384r1", "secp521r1")  # what model_signing signs with


def describe(certificate: x509.Certificate) -> str:
    subject = certificate.subject.rfc4514_string()
    return subject or "sha256:" + certificate.fingerprint(hashes.SHA256()).hex()


def _der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


def _is_self_signed(certificate: x509.Certificate) -> bool:
    if certificate.subject != certificate.issuer:
        return False
    try:
        certificate.verify_directly_issued_by(certificate)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return bool(certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def load_certificate_file(path: Path, what: str) -> list[x509.Certificate]:
    """Every certificate in a PEM file (or one DER certificate)."""
    data = read_limited(path, what=what, max_bytes=_MAX_FILE_BYTES)
    pem_type = re.search(rb"-----BEGIN ([A-Z0-9 ]+)-----", data)
    if pem_type and b"-----BEGIN CERTIFICATE-----" not in data:
        raise FormatError(f"{what} {path} holds a {pem_type.group(1).decode()} PEM block, not a certificate",
                          hint="pass PEM certificates (-----BEGIN CERTIFICATE-----)")
    try:
        certificates = x509.load_pem_x509_certificates(data) if pem_type else [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        reason = str(exc).split(". See https://")[0]  # cryptography appends an FAQ link
        raise FormatError(f"{what} {path} is not a valid certificate: {reason}", hint="pass PEM certificates (-----BEGIN CERTIFICATE-----)") from None
    if len(certificates) > MAX_CERTIFICATES:
        raise FormatError(f"{what} {path} holds {len(certificates)} certificates; at most {MAX_CERTIFICATES} are read")
    return certificates


# -- the checks signer and verifier share ---------------------------------------------------


def usage_problem(certificate: x509.Certificate) -> str | None:
    """Why `certificate` may not sign models, or None."""
    extensions = certificate.extensions
    try:
        usage: x509.KeyUsage | None = extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    try:
        extended: x509.ExtendedKeyUsage | None = extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        extended = None
    if _is_ca(certificate):
        return f"certificate {describe(certificate)} is a CA certificate, not a signing certificate"
    if usage is not None and not usage.digital_signature:
        return f"certificate {describe(certificate)} has a keyUsage without digitalSignature"
    if extended is not None and ExtendedKeyUsageOID.CODE_SIGNING not in extended:
        names = ", ".join(getattr(oid, "_name", None) or oid.dotted_string for oid in extended)
        return f"certificate {describe(certificate)} has extendedKeyUsage {names}, without codeSigning"
    if usage is None and extended is None:
        return f"certificate {describe(certificate)} has neither keyUsage digitalSignature nor extendedKeyUsage codeSigning"
    key = certificate.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name not in _CURVES:
        return f"certificate {describe(certificate)} holds a {type(key).__name__} key; model signatures use ECDSA P-256, P-384 or P-521"
    return None


def validity_problem(certificate: x509.Certificate, now: datetime) -> str | None:
    if now < certificate.not_valid_before_utc:
        return f"certificate {describe(certificate)} is not valid before {certificate.not_valid_before_utc.isoformat()}"
    if now > certificate.not_valid_after_utc:
        return f"certificate {describe(certificate)} expired at {certificate.not_valid_after_utc.isoformat()}"
    return None


_USAGE_HINT = "use a certificate issued for code signing: keyUsage digitalSignature, extendedKeyUsage codeSigning (or none), not a CA"


# -- signing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningCertificate:
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]

    @property
    def subject(self) -> str:
        return describe(self.certificate)

    def verification_material(self) -> dict[str, Any]:
        """The bundle's verificationMaterial, as model_signing's certificate signer writes it."""
        certificates = [{"rawBytes": base64.b64encode(_der(c)).decode()} for c in (self.certificate, *self.chain)]
        return {"x509CertificateChain": {"certificates": certificates}, "tlogEntries": []}


def load_signing_certificate(certificate_path: Path, chain_paths: Sequence[Path], key: SigningKey, *, now: datetime | None = None) -> SigningCertificate:
    """The signing certificate for `key`, checked so that what it signs will verify."""
    now = now or datetime.now(timezone.utc)
    # A file holding the certificate followed by its chain ("fullchain.pem") is accepted too.
    leaf, *chain = load_certificate_file(certificate_path, "signing certificate")
    for path in chain_paths:
        chain += load_certificate_file(path, "certificate chain")
    if leaf.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) != key.public.der:
        raise UsageError(f"signing certificate {certificate_path} ({describe(leaf)}) does not certify private key {key.name}",
                         hint="pass the certificate that was issued for this private key")
    if problem := usage_problem(leaf):
        raise UsageError(f"cannot sign with {certificate_path}: {problem}", hint=_USAGE_HINT)
    if problem := validity_problem(leaf, now):
        raise UsageError(f"cannot sign with {certificate_path}: {problem}", hint="sign with a certificate that is valid now")
    for certificate in chain:
        if not _is_ca(certificate):
            raise UsageError(f"the certificate chain holds {describe(certificate)}, which is not a CA certificate",
                             hint="--certificate-chain takes the issuing CA certificates (intermediates, optionally the root)")
    roots = [c for c in chain if _is_self_signed(c)]
    if roots:  # the chain names its own root: prove now that verifiers holding that root will accept it
        try:
            verify_certificate_chain([leaf, *chain], CertificateTrust(tuple(roots), (), "the given chain"), now=now)
        except VerificationError as exc:
            raise UsageError(f"the signing certificate does not chain to the root in the given chain: {exc.message}") from None
    return SigningCertificate(certificate=leaf, chain=tuple(chain))


# -- verification ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CertificateTrust:
    """Roots a certificate-signed model must chain to, plus intermediates that help."""

    roots: tuple[x509.Certificate, ...]
    intermediates: tuple[x509.Certificate, ...]
    source: str

    def describe_roots(self) -> str:
        return ", ".join(describe(r) for r in self.roots)


def load_certificate_trust(paths: Sequence[Path]) -> CertificateTrust:
    certificates = [c for path in paths for c in load_certificate_file(path, "certificate chain")]
    roots = tuple(c for c in certificates if _is_self_signed(c))
    source = ", ".join(str(p) for p in paths)
    if not roots:
        raise UsageError(f"--certificate-chain {source} holds no root (self-signed) certificate",
                         hint="pass the root CA certificate of the signing PKI (model_signing needs it too); intermediates alone are not trusted")
    return CertificateTrust(roots=roots, intermediates=tuple(c for c in certificates if c not in roots), source=source)


@dataclass(frozen=True)
class CertificateSigner:
    subject: str
    path: tuple[str, ...]  # issuers from the signing certificate's up to the root
    fingerprint: str  # sha256 of the signing certificate (DER)

    @property
    def name(self) -> str:
        return f"certificate {self.subject} (issued via {' -> '.join(self.path)})"


def _require_ca(policy: Any, certificate: x509.Certificate, value: x509.BasicConstraints | None) -> None:
    if value is None or not value.ca:
        raise ValueError(f"{describe(certificate)} is not a CA")


def _require_cert_sign(policy: Any, certificate: x509.Certificate, value: x509.KeyUsage | None) -> None:
    if value is not None and not value.key_cert_sign:
        raise ValueError(f"{describe(certificate)} may not sign certificates (keyUsage lacks keyCertSign)")


# RFC 5280 path rules (as OpenSSL applies them for model_signing) rather than the Web PKI
# profile: private PKIs often lack the AKI/SAN details the Web PKI insists on.
_CA_POLICY = (
    ExtensionPolicy.permit_all()
    .require_present(x509.BasicConstraints, Criticality.AGNOSTIC, _require_ca)
    .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, _require_cert_sign)
)


def verify_certificate_chain(certificates: list[x509.Certificate], trust: CertificateTrust, *, now: datetime | None = None) -> CertificateSigner:
    """Check the signing certificate (`certificates[0]`) may sign models and chains, through
    the other given certificates or the trusted intermediates, to one of `trust.roots`."""
    now = now or datetime.now(timezone.utc)
    leaf = certificates[0]
    if problem := usage_problem(leaf):
        raise VerificationError(problem, hint=_USAGE_HINT)
    if problem := validity_problem(leaf, now):
        raise VerificationError(problem,
                                hint="the signature carries no trusted timestamp, so its certificate must be valid now; re-sign with a current certificate")
    verifier = (PolicyBuilder().store(Store(list(trust.roots))).time(now)
                .extension_policies(ca_policy=_CA_POLICY, ee_policy=ExtensionPolicy.permit_all()).build_client_verifier())
    try:
        built = verifier.verify(leaf, [*certificates[1:], *trust.intermediates])
    except (X509VerificationError, ValueError) as exc:
        raise VerificationError(
            f"signing certificate {describe(leaf)} (issuer {leaf.issuer.rfc4514_string()}) does not chain to a trusted root "
            f"({trust.describe_roots()}) at {now.isoformat(timespec='seconds')}: {exc}",
            hint="pass the root CA of the signer's PKI with --certificate-chain (and any intermediate the signature lacks)",
        ) from None
    return CertificateSigner(subject=describe(leaf), path=tuple(describe(c) for c in built.chain[1:]),
                             fingerprint=leaf.fingerprint(hashes.SHA256()).hex())


def bundle_certificates(material: Any, *, what: str = "verificationMaterial") -> list[x509.Certificate]:
    """The certificates in a bundle's verificationMaterial, signing certificate first:
    `x509CertificateChain` (model_signing) or `certificate` (sigstore v0.3)."""
    if not isinstance(material, dict):
        raise FormatError(f"{what} is missing")
    chain = material.get("x509CertificateChain")
    single = material.get("certificate")
    if isinstance(chain, dict) and isinstance(chain.get("certificates"), list):
        entries = chain["certificates"]
    elif isinstance(single, dict):
        entries = [single]
    else:
        raise FormatError(f"{what} carries no certificate")
    if not entries or len(entries) > MAX_CERTIFICATES:
        raise FormatError(f"{what} carries {len(entries)} certificates; expected 1 to {MAX_CERTIFICATES}")
    certificates = []
    for index, entry in enumerate(entries):
        raw = entry.get("rawBytes") if isinstance(entry, dict) else None
        try:
            if not isinstance(raw, str):
                raise ValueError("rawBytes is missing")
            certificates.append(x509.load_der_x509_certificate(base64.b64decode(raw, validate=True)))
        except (ValueError, binascii.Error) as exc:
            raise FormatError(f"{what} certificate {index} is not a DER certificate: {exc}", hint="the signature file is damaged; get a fresh one") from None
    return certificates
