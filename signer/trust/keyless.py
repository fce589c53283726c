"""Keyless (Fulcio certificate + Rekor) verification, offline against a trusted root.

Bundles go through `sigstore.verify.Verifier`. cosign's legacy keyless `.sig` layers
(certificate + chain + Rekor SET annotations) carry no inclusion proof, which the
`sigstore` package's bundle model insists on, so they are checked here step by step with
the same building blocks: chain to a Fulcio CA at the Rekor integrated time, the SCT, the
Sigstore X.509 profile, the identity policy, the Rekor SET against the log key, the
signature, and consistency of the log entry with what was signed.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Callable

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import Criticality, ExtensionPolicy, PolicyBuilder, Store, VerificationError as X509VerificationError

from signer.errors import FormatError, UsageError, VerificationError
from signer.jsonread import parse_json_object

_ISSUER_V1_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
_ISSUER_V2_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
_OTHERNAME_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.7")
PRODUCTION_ROOT = "production (embedded in the sigstore package)"
_MAX_UNIX_TIME = 1 << 36  # year ~4147: anything later is hostile input, not a timestamp


@dataclass(frozen=True)
class KeylessIdentity:
    """Who may sign keylessly: certificate identity (SAN) and OIDC issuer, exact or regexp.

    Regexps use search semantics like cosign's (Go `regexp.MatchString`): anchor them.
    """

    name: str
    subject: str | None = None
    subject_regexp: str | None = None
    issuer: str | None = None
    issuer_regexp: str | None = None
    trusted_root: Path | None = None

    def __post_init__(self) -> None:
        # Fail on construction (the command line or policy load), not mid-verification.
        IdentityPolicy(self)

    def describe(self) -> str:
        who = self.subject or f"/{self.subject_regexp}/"
        by = self.issuer or f"/{self.issuer_regexp}/"
        return f"{who} via {by}"


@dataclass(frozen=True)
class KeylessSigner:
    subjects: tuple[str, ...]
    issuer: str
    integrated_time: datetime | None
    log_index: int | None


# -- trusted roots ------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def load_trusted_root(path: Path | None):  # -> sigstore.models.TrustedRoot
    from sigstore.models import TrustedRoot

    try:
        if path is None:
            embedded = resources.files("sigstore") / "_store" / "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev" / "trusted_root.json"
            with resources.as_file(embedded) as embedded_path:
                return TrustedRoot.from_file(str(embedded_path))
        return TrustedRoot.from_file(str(path))
    except FileNotFoundError:
        raise FormatError(f"trusted root {path} does not exist", hint="pass a trusted_root.json (e.g. from `cosign trusted-root create` or the Sigstore TUF repository)") from None
    except Exception as exc:  # the sigstore package raises several types for a bad root
        raise FormatError(f"trusted root {path or PRODUCTION_ROOT} is unusable: {exc}") from None


# -- identity policy ------------------------------------------------------------------------


def certificate_issuer(cert: x509.Certificate) -> str | None:
    for oid, der in ((_ISSUER_V2_OID, True), (_ISSUER_V1_OID, False)):
        try:
            value = cert.extensions.get_extension_for_oid(oid).value.value  # type: ignore[attr-defined]
        except x509.ExtensionNotFound:
            continue
        return _der_utf8(value) if der else value.decode("utf-8", errors="replace")
    return None


def _der_utf8(value: bytes) -> str:
    if len(value) < 2 or value[0] != 0x0C:
        return value.decode("utf-8", errors="replace")
    length, offset = value[1], 2
    if length & 0x80:
        count = length & 0x7F
        length, offset = int.from_bytes(value[2:2 + count], "big"), 2 + count
    return value[offset:offset + length].decode("utf-8", errors="replace")


def certificate_subjects(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    values = list(san.get_values_for_type(x509.RFC822Name)) + list(san.get_values_for_type(x509.UniformResourceIdentifier))
    values += [other.value.decode("utf-8", errors="replace") for other in san.get_values_for_type(x509.OtherName) if other.type_id == _OTHERNAME_OID]
    return tuple(values)


_NOT_RE2 = re.compile(r"\(\?(?:=|!|<=|<!|P=)|\\[1-9]")


def go_regexp(pattern: str, what: str = "identity") -> re.Pattern[str]:
    """Compile `pattern` to match as Go's RE2 does (cosign's semantics), not as Python would:
    outside multi-line mode `$` is the end of the text, not "before a final newline" (an
    anchored identity regexp must not accept a SAN with a trailing newline), and `\\d`, `\\w`,
    `\\s`, `\\b` are ASCII. Python-only constructs (lookaround, backreferences) are refused,
    as cosign would refuse them."""
    if _NOT_RE2.search(pattern):
        raise UsageError(f"invalid {what} regexp {pattern!r}: lookarounds and backreferences are not RE2 syntax (cosign refuses them)")
    multiline = re.search(r"\(\?[a-zA-Z]*m[a-zA-Z]*[:)]", pattern) is not None
    translated, index, in_class = [], 0, False
    while index < len(pattern):
        character = pattern[index]
        if character == "\\":
            translated.append(pattern[index:index + 2])
            index += 2
            continue
        if in_class:
            in_class = character != "]" or translated[-1] == "["
        elif character == "[":
            in_class = True
        elif character == "$" and not multiline:
            character = r"\Z"
        translated.append(character)
        index += 1
    try:
        return re.compile("".join(translated), re.ASCII)
    except re.error as exc:
        raise UsageError(f"invalid {what} regexp {pattern!r}: {exc}") from None


def _matcher(exact: str | None, pattern: str | None, what: str) -> Callable[[str], bool]:
    if exact:
        return lambda value: value == exact
    compiled = go_regexp(pattern or "", what)
    return lambda value: compiled.search(value) is not None


class IdentityPolicy:
    """A `sigstore` VerificationPolicy for exact or regexp subject and issuer."""

    def __init__(self, identity: KeylessIdentity) -> None:
        if not (identity.subject or identity.subject_regexp) or not (identity.issuer or identity.issuer_regexp):
            raise FormatError(
                f"keyless identity {identity.name!r} needs a certificate identity (or regexp) and an OIDC issuer (or regexp)",
                hint="pass --certificate-identity[-regexp] and --certificate-oidc-issuer[-regexp]",
            )
        self.identity = identity
        self._subject = _matcher(identity.subject, identity.subject_regexp, "certificate identity")
        self._issuer = _matcher(identity.issuer, identity.issuer_regexp, "OIDC issuer")

    def check(self, cert: x509.Certificate) -> KeylessSigner:
        issuer = certificate_issuer(cert) or ""
        subjects = certificate_subjects(cert)
        wanted = self.identity
        if not self._issuer(issuer):
            raise VerificationError(f"certificate OIDC issuer is {issuer!r}, expected {wanted.issuer or '/' + str(wanted.issuer_regexp) + '/'}")
        if not any(self._subject(s) for s in subjects):
            raise VerificationError(f"certificate identity {', '.join(subjects) or '(none)'} does not match {wanted.subject or '/' + str(wanted.subject_regexp) + '/'}")
        return KeylessSigner(subjects=subjects, issuer=issuer, integrated_time=None, log_index=None)

    def verify(self, cert: x509.Certificate) -> None:  # sigstore's VerificationPolicy protocol
        from sigstore.errors import VerificationError as SigstoreVerificationError

        try:
            self.check(cert)
        except VerificationError as exc:
            raise SigstoreVerificationError(str(exc)) from None


# -- bundles (via sigstore) -----------------------------------------------------------------


def _load_sigstore_bundle(data: bytes):
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import Bundle, InvalidBundle

    try:
        return Bundle.from_json(data)
    except (InvalidBundle, SigstoreError, ValueError, KeyError, TypeError, OverflowError, RecursionError) as exc:
        # sigstore checks parts of the bundle while loading it (an RFC 3161 timestamp that does
        # not parse raises its VerificationError here, before any verifier runs).
        raise FormatError(f"malformed sigstore bundle: {_one_line(exc)}", hint="the bundle is damaged or not what a sigstore client writes; get a fresh one") from None


def _one_line(exc: Exception) -> str:
    """pydantic's multi-line validation errors (field path, message, a docs URL) in one line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip() and "errors.pydantic.dev" not in line]
    return " ".join(lines)


def _signer_of(bundle, policy: IdentityPolicy) -> KeylessSigner:
    signer = policy.check(bundle.signing_certificate)
    entry = bundle.log_entry._inner
    when = datetime.fromtimestamp(entry.integrated_time, tz=timezone.utc) if entry.integrated_time else None
    return KeylessSigner(subjects=signer.subjects, issuer=signer.issuer, integrated_time=when, log_index=int(entry.log_index))


def verify_bundle_dsse(data: bytes, identity: KeylessIdentity) -> tuple[str, bytes, KeylessSigner]:
    """Verify a keyless DSSE bundle; returns (payloadType, payload, signer)."""
    from sigstore.errors import VerificationError as SigstoreVerificationError
    from sigstore.verify import Verifier

    policy = IdentityPolicy(identity)
    bundle = _load_sigstore_bundle(data)
    verifier = Verifier(trusted_root=load_trusted_root(identity.trusted_root))
    try:
        payload_type, payload = verifier.verify_dsse(bundle, policy)
        return payload_type, payload, _signer_of(bundle, policy)
    except SigstoreVerificationError as exc:
        raise VerificationError(f"keyless bundle rejected: {exc}") from None
    except (ValueError, TypeError, OverflowError, OSError, KeyError) as exc:  # hostile field values inside the bundle
        raise VerificationError(f"keyless bundle rejected: malformed content ({type(exc).__name__}: {exc})") from None


def verify_bundle_artifact(data: bytes, artifact: bytes | str, identity: KeylessIdentity) -> KeylessSigner:
    """Verify a keyless message-signature bundle over `artifact` (cosign verify-blob): the
    file's content, or its `sha256:<hex>` digest (the signature is over the digest anyway)."""
    from sigstore.errors import VerificationError as SigstoreVerificationError
    from sigstore.hashes import Hashed
    from sigstore.verify import Verifier
    from sigstore_models.common.v1 import HashAlgorithm

    policy = IdentityPolicy(identity)
    bundle = _load_sigstore_bundle(data)
    verifier = Verifier(trusted_root=load_trusted_root(identity.trusted_root))
    if isinstance(artifact, str):
        algorithm, _, hexpart = artifact.partition(":")
        try:
            digest = bytes.fromhex(hexpart) if algorithm == "sha256" else b""
        except ValueError:
            digest = b""
        if len(digest) != 32:
            raise UsageError(f"{artifact!r} is not a sha256 digest", hint="expected 'sha256:' followed by 64 hex characters")
        artifact = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=digest)
    try:
        verifier.verify_artifact(artifact, bundle, policy)
        return _signer_of(bundle, policy)
    except SigstoreVerificationError as exc:
        raise VerificationError(f"keyless bundle rejected: {exc}") from None
    except (ValueError, TypeError, OverflowError, OSError, KeyError) as exc:  # hostile field values inside the bundle
        raise VerificationError(f"keyless bundle rejected: malformed content ({type(exc).__name__}: {exc})") from None


# -- legacy cosign keyless signatures --------------------------------------------------------


def verify_legacy(payload: bytes, signature: bytes, certificate_pem: str, rekor_bundle: str | None, identity: KeylessIdentity) -> KeylessSigner:
    from sigstore._internal.sct import verify_sct
    from sigstore._internal.trust import KeyringPurpose
    from sigstore._utils import KeyID
    from sigstore.errors import VerificationError as SigstoreVerificationError

    policy = IdentityPolicy(identity)
    root = load_trusted_root(identity.trusted_root)
    try:
        cert = x509.load_pem_x509_certificate(certificate_pem.encode())
    except ValueError as exc:
        raise FormatError(f"signature certificate annotation is not a PEM certificate: {exc}") from None
    if not rekor_bundle:
        raise VerificationError("keyless signature has no Rekor bundle annotation, so its signing time cannot be established offline")
    set_bytes, entry, body = _parse_rekor_bundle(rekor_bundle)
    integrated = datetime.fromtimestamp(entry["integratedTime"], tz=timezone.utc)

    # (1) the Rekor SET binds body, time, index and log id; it is signed by the log key.
    canonical = json.dumps(
        {"body": entry["body"], "integratedTime": entry["integratedTime"], "logID": entry["logID"], "logIndex": entry["logIndex"]},
        separators=(",", ":"),
        sort_keys=True,
    ).encode()
    try:
        root.rekor_keyring(KeyringPurpose.VERIFY).verify(key_id=KeyID(bytes.fromhex(entry["logID"])), signature=set_bytes, data=canonical)
    except (SigstoreVerificationError, ValueError) as exc:
        raise VerificationError(f"Rekor signed entry timestamp does not verify against the trusted log keys: {exc}") from None

    # (2) chain to a Fulcio CA valid at the integrated time, (3) the SCT, (4) the profile.
    chain = _verify_chain_at(cert, root.get_fulcio_certs(), integrated)
    try:
        verify_sct(cert, chain, root.ct_keyring(KeyringPurpose.VERIFY))
    except SigstoreVerificationError as exc:
        raise VerificationError(f"certificate SCT does not verify: {exc}") from None
    _check_code_signing_profile(cert)
    if not cert.not_valid_before_utc <= integrated <= cert.not_valid_after_utc:
        raise VerificationError(f"certificate was not valid at the Rekor integrated time {integrated.isoformat()}")

    # (5) identity, (6) signature, (7) the log entry describes exactly this signature.
    signer = policy.check(cert)
    public_key = cert.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise VerificationError("keyless certificate key is not ECDSA")
    try:
        public_key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise VerificationError("signature does not verify with the certificate's key") from None
    _check_hashedrekord_body(body, payload, signature, cert)
    return KeylessSigner(subjects=signer.subjects, issuer=signer.issuer, integrated_time=integrated, log_index=int(entry["logIndex"]))


def _parse_rekor_bundle(text: str) -> tuple[bytes, dict, dict]:
    try:
        value = parse_json_object(text, what="Rekor bundle annotation")
        set_bytes = base64.b64decode(value["SignedEntryTimestamp"], validate=True)
        entry = value["Payload"]
        body = parse_json_object(base64.b64decode(entry["body"], validate=True), what="Rekor entry body")
        integrated, index = entry["integratedTime"], entry["logIndex"]
        if type(integrated) is not int or not 0 < integrated < _MAX_UNIX_TIME or type(index) is not int or index < 0:
            raise ValueError("integratedTime/logIndex out of range")
        bytes.fromhex(entry["logID"])
    except (ValueError, KeyError, TypeError) as exc:
        raise FormatError(f"malformed Rekor bundle annotation: {exc}") from None
    return set_bytes, entry, body


def _verify_chain_at(cert: x509.Certificate, anchors: list[x509.Certificate], when: datetime) -> list[x509.Certificate]:
    ca_policy = ExtensionPolicy.webpki_defaults_ca().may_be_present(x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None)
    ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None)
    verifier = PolicyBuilder().store(Store(anchors)).time(when).extension_policies(ca_policy=ca_policy, ee_policy=ee_policy).build_client_verifier()
    try:
        return list(verifier.verify(cert, []).chain[1:])
    except (X509VerificationError, ValueError) as exc:
        raise VerificationError(f"certificate does not chain to a trusted Fulcio CA at {when.isoformat()}: {exc}") from None


def _check_code_signing_profile(cert: x509.Certificate) -> None:
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        extended = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound as exc:
        raise VerificationError(f"certificate lacks a required extension: {exc}") from None
    if not usage.digital_signature or ExtendedKeyUsageOID.CODE_SIGNING not in extended:
        raise VerificationError("certificate is not a code-signing certificate")


def _check_hashedrekord_body(body: dict, payload: bytes, signature: bytes, cert: x509.Certificate) -> None:
    try:
        if body["kind"] != "hashedrekord":
            raise VerificationError(f"Rekor entry kind is {body['kind']!r}, expected hashedrekord")
        spec = body["spec"]
        logged_hash = spec["data"]["hash"]
        logged_signature = base64.b64decode(spec["signature"]["content"])
        logged_cert = x509.load_pem_x509_certificate(base64.b64decode(spec["signature"]["publicKey"]["content"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise FormatError(f"malformed Rekor entry body: {exc}") from None
    if logged_hash.get("algorithm") != "sha256" or logged_hash.get("value") != hashlib.sha256(payload).hexdigest():
        raise VerificationError("Rekor entry records a different payload hash than the signed payload")
    if logged_signature != signature:
        raise VerificationError("Rekor entry records a different signature")
    if logged_cert.public_bytes(serialization.Encoding.DER) != cert.public_bytes(serialization.Encoding.DER):
        raise VerificationError("Rekor entry records a different certificate")
