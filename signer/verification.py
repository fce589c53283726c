"""Verify the signatures on one manifest digest: cosign legacy `.sig` layers and sigstore
bundle referrers. Only signature objects are fetched, never the image itself.

A signature counts when it (a) verifies against a trusted key or keyless identity and
(b) names exactly this digest. Attestations (bundles with another predicate type) are
never counted. Every signature that does not count is reported with its reason.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

from signer import mediatypes as mt
from signer.bundles import parse_bundle
from signer.digests import signature_tag
from signer.errors import FormatError, ModelsignError, NotFoundError
from signer.intoto import Statement, parse_statement
from signer.keyless import KeylessIdentity, KeylessSigner, verify_bundle_dsse, verify_legacy
from signer.keys import PublicKey
from signer.legacy import MAX_LAYER_BYTES, read_layers
from signer.oci.manifest import Descriptor
from signer.oci.referrers import list_referrers
from signer.oci.repository import Repository
from signer.simplesigning import SimpleSigningPayload, parse_payload
from signer.trust import TrustAnchor, describe_anchors

# A signature tag or referrers list longer than this is abuse, not a team of signers.
MAX_SIGNATURES_PER_SOURCE = 100


@dataclass(frozen=True)
class VerifiedSignature:
    form: str  # "legacy" (.sig layer) or "bundle" (sigstore bundle referrer)
    signer: str  # trusted key name or keyless identity name
    key_id: str | None
    keyless: KeylessSigner | None
    docker_reference: str | None
    annotations: dict[str, str]
    location: str


@dataclass(frozen=True)
class Rejection:
    location: str
    reason: str


@dataclass(frozen=True)
class SignatureReport:
    reference: str
    digest: str
    verified: tuple[VerifiedSignature, ...]
    rejected: tuple[Rejection, ...]
    ignored: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return bool(self.verified)


def verify_signatures(
    repository: Repository,
    digest: str,
    anchors: list[TrustAnchor],
    *,
    reference: str,
    required_annotations: dict[str, str] | None = None,
) -> SignatureReport:
    """Collect and check every signature on `digest`. Registry (transport) failures
    propagate; malformed signature objects become rejections, so one broken source never
    hides valid signatures in the other."""
    checker = _Checker(digest, anchors, required_annotations or {})
    sig_tag = signature_tag(digest)
    where = f"{repository.display_name}:{sig_tag}"
    try:
        layers = read_layers(repository.fetch_manifest(sig_tag), where=where)
    except FormatError as exc:
        checker.reject(where, str(exc))
        layers = []
    for index, layer in enumerate(layers[:MAX_SIGNATURES_PER_SOURCE]):
        checker.check_legacy_layer(repository, layer, f"{where} layer {index}")
    try:
        referrers = list_referrers(repository, digest, mt.SIGSTORE_BUNDLE_V03)
    except FormatError as exc:
        checker.reject(f"{repository.display_name} referrers of {digest}", str(exc))
        referrers = []
    for descriptor in referrers[:MAX_SIGNATURES_PER_SOURCE]:
        checker.check_bundle_referrer(repository, descriptor)
    for source, count in ((where, len(layers)), (f"{repository.display_name} referrers of {digest}", len(referrers))):
        if count > MAX_SIGNATURES_PER_SOURCE:
            checker.reject(source, f"{count} entries; only the first {MAX_SIGNATURES_PER_SOURCE} were checked")
    return SignatureReport(
        reference=reference, digest=digest, verified=tuple(checker.verified), rejected=tuple(checker.rejected), ignored=tuple(checker.ignored)
    )


def failure_message(report: SignatureReport, anchors: list[TrustAnchor], *, sign_hint: str) -> str:
    """One line saying what failed and how to fix it."""
    head = f"no valid signature by {describe_anchors(anchors)} for {report.reference.split('@')[0]}@{report.digest}"
    if report.rejected:
        reasons = "; ".join(f"{r.location}: {r.reason}" for r in report.rejected[:5])
        more = f" (+{len(report.rejected) - 5} more)" if len(report.rejected) > 5 else ""
        head += f" ({len(report.rejected)} signature(s) rejected: {reasons}{more})"
    else:
        head += " (no signatures found)"
    return f"{head}; sign it with `{sign_hint}`"


class _Checker:
    def __init__(self, digest: str, anchors: list[TrustAnchor], required: dict[str, str]) -> None:
        self.digest = digest
        self.keys = [a for a in anchors if isinstance(a, PublicKey)]
        self.identities = [a for a in anchors if isinstance(a, KeylessIdentity)]
        self.required = required
        self.verified: list[VerifiedSignature] = []
        self.rejected: list[Rejection] = []
        self.ignored: list[str] = []

    def reject(self, location: str, reason: str) -> None:
        self.rejected.append(Rejection(location=location, reason=reason))

    def _missing_annotations(self, annotations: dict[str, str]) -> str | None:
        missing = [f"{k}={v}" for k, v in self.required.items() if annotations.get(k) != v]
        return f"lacks required annotation(s) {', '.join(missing)}" if missing else None

    # -- legacy .sig layers ---------------------------------------------------------------

    def check_legacy_layer(self, repository: Repository, layer: Descriptor, location: str) -> None:
        if layer.media_type != mt.COSIGN_SIMPLESIGNING:
            self.reject(location, f"layer media type {layer.media_type} is not a cosign signature")
            return
        encoded = layer.annotations.get(mt.ANNOTATION_SIGNATURE)
        if not encoded:
            self.reject(location, f"layer has no {mt.ANNOTATION_SIGNATURE} annotation")
            return
        try:
            signature = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            self.reject(location, "signature annotation is not valid base64 (garbled signature)")
            return
        try:
            payload_bytes = repository.fetch_blob(layer.digest, max_bytes=MAX_LAYER_BYTES)
            payload = parse_payload(payload_bytes)
        except NotFoundError:
            self.reject(location, f"signature payload blob {layer.digest} is missing from the registry")
            return
        except FormatError as exc:
            self.reject(location, str(exc))
            return
        if payload.manifest_digest != self.digest:
            self.reject(location, f"signature is for {payload.manifest_digest}, not {self.digest} (copied from another artifact?)")
            return
        signer = self._legacy_signer(payload_bytes, signature, layer, location)
        if signer is None:
            return
        missing = self._missing_annotations(payload.annotations())
        if missing:
            self.reject(location, f"signature by {signer[0]} {missing}")
            return
        self.verified.append(self._verified("legacy", signer, payload, location))

    def _legacy_signer(self, payload: bytes, signature: bytes, layer: Descriptor, location: str) -> tuple[str, str | None, KeylessSigner | None] | None:
        for key in self.keys:
            if key.verify(signature, payload):
                return key.name, key.key_id, None
        certificate = layer.annotations.get(mt.ANNOTATION_CERTIFICATE)
        if certificate and self.identities:
            reasons = []
            for identity in self.identities:
                try:
                    signer = verify_legacy(payload, signature, certificate, layer.annotations.get(mt.ANNOTATION_REKOR_BUNDLE), identity)
                    return identity.name, None, signer
                except ModelsignError as exc:
                    reasons.append(f"{identity.name}: {exc}")
            self.reject(location, "keyless signature rejected: " + "; ".join(reasons))
            return None
        kind = "keyless signature (certificate)" if certificate else "signature"
        self.reject(location, f"{kind} not made by any trusted key")
        return None

    def _verified(self, form: str, signer: tuple[str, str | None, KeylessSigner | None], payload: SimpleSigningPayload | None, location: str, annotations: dict[str, str] | None = None) -> VerifiedSignature:
        return VerifiedSignature(
            form=form,
            signer=signer[0],
            key_id=signer[1],
            keyless=signer[2],
            docker_reference=payload.docker_reference if payload else None,
            annotations=payload.annotations() if payload else (annotations or {}),
            location=location,
        )

    # -- sigstore bundle referrers ----------------------------------------------------------

    def check_bundle_referrer(self, repository: Repository, descriptor: Descriptor) -> None:
        location = f"{repository.display_name}@{descriptor.digest} (bundle referrer)"
        try:
            manifest = repository.fetch_manifest(descriptor.digest)
            if manifest is None:
                self.reject(location, "referrer manifest is listed but missing")
                return
            if manifest.subject is None or manifest.subject.digest != self.digest:
                self.reject(location, f"referrer's subject is {manifest.subject.digest if manifest.subject else 'missing'}, not {self.digest}")
                return
            layers = [layer for layer in manifest.layers if layer.media_type == mt.SIGSTORE_BUNDLE_V03]
            if len(layers) != 1:
                self.reject(location, f"referrer has {len(layers)} sigstore bundle layers, expected 1")
                return
            bundle = parse_bundle(repository.fetch_blob(layers[0].digest, max_bytes=MAX_LAYER_BYTES), what="sigstore bundle")
        except NotFoundError as exc:
            self.reject(location, str(exc))
            return
        except FormatError as exc:
            self.reject(location, str(exc))
            return
        if bundle.envelope is None or bundle.envelope.payload_type != mt.INTOTO_PAYLOAD:
            self.reject(location, "bundle holds no in-toto DSSE envelope, so it is not an image signature")
            return
        try:
            statement = parse_statement(bundle.envelope.payload)
        except FormatError as exc:
            self.reject(location, str(exc))
            return
        if statement.predicate_type != mt.COSIGN_SIGN_PREDICATE:
            self.ignored.append(f"{location}: attestation of type {statement.predicate_type} (not a signature)")
            return
        subject = statement.subject_for(self.digest)
        if subject is None:
            self.reject(location, f"signed statement does not name {self.digest} as its subject")
            return
        signer = self._bundle_signer(bundle, statement, location)
        if signer is None:
            return
        annotations = {k: v for k, v in subject.annotations.items() if isinstance(v, str)}
        missing = self._missing_annotations(annotations)
        if missing:
            self.reject(location, f"signature by {signer[0]} {missing}")
            return
        self.verified.append(self._verified("bundle", signer, None, location, annotations))

    def _bundle_signer(self, bundle, statement: Statement, location: str) -> tuple[str, str | None, KeylessSigner | None] | None:
        if bundle.is_keyless:
            reasons = []
            for identity in self.identities:
                try:
                    payload_type, payload, signer = verify_bundle_dsse(bundle.raw, identity)
                except ModelsignError as exc:
                    reasons.append(f"{identity.name}: {exc}")
                    continue
                # The statement we inspected must be the one the verified envelope carries.
                if payload != bundle.envelope.payload or payload_type != mt.INTOTO_PAYLOAD:
                    reasons.append(f"{identity.name}: verified payload differs from the envelope")
                    continue
                return identity.name, None, signer
            self.reject(location, "keyless bundle rejected: " + ("; ".join(reasons) if reasons else "no trusted keyless identity configured"))
            return None
        for key in self.keys:
            if bundle.envelope.verified_by(key):
                return key.name, key.key_id, None
        self.reject(location, "bundle signature not made by any trusted key")
        return None
