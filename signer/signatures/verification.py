"""Verify the signed statements about one manifest digest: signatures (cosign legacy `.sig`
layers, sigstore bundle referrers) and attestations (`.att` DSSE layers, bundle referrers
with other predicate types). Only these objects are fetched, never the image itself.

A statement counts when it (a) verifies against a trusted key or keyless identity and
(b) names exactly this digest. An attestation is never counted as a signature, and only
the attestation types asked for are collected. Everything that does not count is reported
with its reason.

Cost: each signature object has a size cap for its kind (checked against its descriptor
before it is fetched); a digest-addressed object is fetched once however many entries point
at it, and a (key, payload, signature) check is made once. Objects over their caps are
listed in `over_limits`. A budget in effect (signer.oci.budget) is charged for every byte
and check, and ends the work at its limits or deadline.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any, Callable

from signer.errors import FormatError, ModelsignError, NotFoundError, TooLargeError
from signer.formats import mediatypes as mt
from signer.formats.bundles import parse_bundle
from signer.formats.digests import attestation_tag, sha256_digest, signature_tag
from signer.formats.dsse import Envelope, parse_envelope
from signer.formats.intoto import Statement, parse_statement
from signer.formats.jsonenc import load_signed_json
from signer.formats.legacy import MAX_LAYER_BYTES, MAX_SIGNATURE_MANIFEST_BYTES, read_layers
from signer.formats.simplesigning import MAX_PAYLOAD_BYTES, SimpleSigningPayload, parse_payload
from signer.oci.budget import BudgetExceeded, current as current_budget
from signer.oci.fetchonce import FetchOnce
from signer.oci.manifest import Descriptor
from signer.oci.referrers import MAX_REFERRER_MANIFEST_BYTES, list_referrers
from signer.oci.repository import Repository
from signer.references import printable
from signer.trust.anchors import TrustAnchor, describe_anchors
from signer.trust.keyless import KeylessIdentity, KeylessSigner, verify_bundle_dsse, verify_legacy
from signer.trust.keys import PublicKey

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
    # The names the signature binds the digest to: the legacy payload's docker-reference, or
    # the names of the bundle statement's subjects for this digest (often none).
    signed_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class VerifiedAttestation:
    predicate_type: str
    predicate: Any
    form: str  # "legacy" (.att layer) or "bundle" (sigstore bundle referrer)
    signer: str
    key_id: str | None
    keyless: KeylessSigner | None
    location: str
    statement_digest: str  # sha256 of the signed in-toto statement: the evidence id in audit records


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
    # Signature or attestation objects of this digest over modelsign's limits (padding), one
    # line per problem: "<problem> (<where>[ and N more])".
    over_limits: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return bool(self.verified)


@dataclass(frozen=True)
class AttestationReport:
    digest: str
    verified: tuple[VerifiedAttestation, ...]
    rejected: tuple[Rejection, ...]
    incomplete: tuple[str, ...] = ()  # sources not read in full: a revocation or newer scan may be unseen

    def of_type(self, predicate_type: str) -> list[VerifiedAttestation]:
        return [a for a in self.verified if a.predicate_type == predicate_type]


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
    return collect_statements(repository, digest, anchors, reference=reference, required_annotations=required_annotations)[0]


def verify_attestations(repository: Repository, digest: str, anchors: list[TrustAnchor], *, predicate_types: set[str]) -> AttestationReport:
    return collect_statements(repository, digest, anchors, reference=digest, attestation_types=predicate_types, signatures=False)[1]


def collect_statements(
    repository: Repository,
    digest: str,
    anchors: list[TrustAnchor],
    *,
    reference: str,
    required_annotations: dict[str, str] | None = None,
    attestation_types: set[str] | frozenset[str] = frozenset(),
    signatures: bool = True,
) -> tuple[SignatureReport, AttestationReport]:
    """Signatures and the requested attestation types, fetching each source once."""
    checker = _Checker(FetchOnce(repository), digest, anchors, required_annotations or {}, set(attestation_types), signatures)
    if signatures:
        sig_tag = signature_tag(digest)
        for index, layer in checker.layers(repository, sig_tag):
            checker.check_legacy_layer(repository, layer, f"{repository.display_name}:{sig_tag} layer {index}")
    if attestation_types:
        att_tag = attestation_tag(digest)
        for index, layer in checker.layers(repository, att_tag):
            checker.check_attestation_layer(repository, layer, f"{repository.display_name}:{att_tag} layer {index}")
    where = f"{repository.display_name} referrers of {digest}"
    try:
        referrers = list_referrers(repository, digest, mt.SIGSTORE_BUNDLE_V03)
    except FormatError as exc:
        checker.reject(where, str(exc))
        if attestation_types:
            checker.incomplete.append(printable(f"{where}: {exc}"))
        referrers = []
    wanted = [d for d in referrers if checker.wants(d.annotations.get(mt.ANNOTATION_BUNDLE_PREDICATE))]
    for skipped in (d for d in referrers if d not in wanted):  # typed by their annotation: not fetched
        checker.ignored.append(printable(f"{repository.display_name}@{skipped.digest}: attestation of type {skipped.annotations[mt.ANNOTATION_BUNDLE_PREDICATE]} (not a signature)"))
    for descriptor in wanted[:MAX_SIGNATURES_PER_SOURCE]:
        checker.check_bundle_referrer(repository, descriptor)
    if len(wanted) > MAX_SIGNATURES_PER_SOURCE:
        checker.reject(where, f"{len(wanted)} entries; only the first {MAX_SIGNATURES_PER_SOURCE} were checked")
        checker.over_limit(where, f"{len(wanted)} signature referrers, more than the {MAX_SIGNATURES_PER_SOURCE} checked")
        if attestation_types:
            checker.incomplete.append(printable(f"{where}: {len(wanted)} entries; only the first {MAX_SIGNATURES_PER_SOURCE} were checked"))
    return (
        SignatureReport(reference=reference, digest=digest, verified=tuple(checker.verified), rejected=tuple(checker.rejected), ignored=tuple(checker.ignored),
                        over_limits=checker.over_limits()),
        AttestationReport(digest=digest, verified=tuple(checker.attestations), rejected=tuple(checker.attestation_rejections),
                          incomplete=tuple(checker.incomplete)),
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
    def __init__(self, fetch: FetchOnce, digest: str, anchors: list[TrustAnchor], required: dict[str, str], attestation_types: set[str],
                 signatures: bool) -> None:
        self.fetch = fetch
        self.digest = digest
        self.keys = [a for a in anchors if isinstance(a, PublicKey)]
        self.identities = [a for a in anchors if isinstance(a, KeylessIdentity)]
        self.required = required
        self.attestation_types = attestation_types
        self.signatures = signatures
        self.verified: list[VerifiedSignature] = []
        self.rejected: list[Rejection] = []
        self.ignored: list[str] = []
        self.attestations: list[VerifiedAttestation] = []
        self.attestation_rejections: list[Rejection] = []
        self.incomplete: list[str] = []  # attestation sources not read in full (a revocation could hide there)
        self._over: dict[str, list[str]] = {}  # problem -> where it was met
        self._checked: dict[tuple[object, ...], object] = {}  # (anchor, content digest, signature...) -> outcome

    # Reasons and locations quote registry content (media types, tags, annotations): made
    # printable here, where they are born, so no consumer (terminal, log, JSON, audit, the
    # AdmissionReview) ever gets a raw control or bidi character from a registry.
    def reject(self, location: str, reason: str) -> None:
        self.rejected.append(Rejection(location=printable(location), reason=printable(reason)))

    def reject_attestation(self, location: str, reason: str) -> None:
        self.attestation_rejections.append(Rejection(location=printable(location), reason=printable(reason)))

    def over_limit(self, location: str, problem: str) -> None:
        self._over.setdefault(printable(problem), []).append(printable(location))

    def over_limits(self) -> tuple[str, ...]:
        return tuple(f"{problem} ({places[0]}{f' and {len(places) - 1} more' if len(places) > 1 else ''})" for problem, places in self._over.items())

    def too_large(self, location: str, descriptor: Descriptor, limit: int, what: str, reject: Callable[[str, str], None]) -> bool:
        """Whether `descriptor` declares more than `limit` bytes; if so it is rejected (and not fetched)."""
        if descriptor.size <= limit:
            return False
        problem = f"{what} {descriptor.digest} is {descriptor.size} bytes, more than the {limit} allowed"
        self.over_limit(location, problem)
        reject(location, problem)
        return True

    def format_problem(self, location: str, exc: FormatError) -> str:
        if isinstance(exc, TooLargeError):
            self.over_limit(location, str(exc))
        return str(exc)

    def once(self, key: tuple[object, ...], checks: int, what: str, check: Callable[[], object]) -> object:
        """The outcome of a signature check, made (and charged to the budget) once per key."""
        if key not in self._checked:
            budget = current_budget()
            if budget is not None:
                budget.charge_checks(checks, f"checking {what}")
            try:
                self._checked[key] = check()
            except BudgetExceeded:
                raise
            except ModelsignError as exc:
                self._checked[key] = exc
        return self._checked[key]

    def wants(self, predicate_type: str | None) -> bool:
        """Whether a referrer is worth fetching (an unannotated one might be anything)."""
        if predicate_type is None:
            return True
        return (self.signatures and predicate_type == mt.COSIGN_SIGN_PREDICATE) or predicate_type in self.attestation_types

    def layers(self, repository: Repository, tag: str) -> list[tuple[int, Descriptor]]:
        where = f"{repository.display_name}:{tag}"
        attestations = not tag.endswith(".sig")
        try:
            layers = read_layers(repository.fetch_manifest(tag, max_bytes=MAX_SIGNATURE_MANIFEST_BYTES), where=where)
        except FormatError as exc:
            (self.reject_attestation if attestations else self.reject)(where, self.format_problem(where, exc))
            if attestations:
                self.incomplete.append(printable(f"{where}: {exc}"))
            return []
        if len(layers) > MAX_SIGNATURES_PER_SOURCE:
            problem = f"{len(layers)} entries; only the first {MAX_SIGNATURES_PER_SOURCE} were checked"
            self.over_limit(where, f"{len(layers)} layers, more than the {MAX_SIGNATURES_PER_SOURCE} checked")
            (self.reject_attestation if attestations else self.reject)(where, problem)
            if attestations:
                self.incomplete.append(printable(f"{where}: {problem}"))
        return list(enumerate(layers[:MAX_SIGNATURES_PER_SOURCE]))

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
        if self.too_large(location, layer, MAX_PAYLOAD_BYTES, "signature payload", self.reject):
            return
        try:
            payload_bytes = self.fetch.blob(layer.digest, MAX_PAYLOAD_BYTES)
            payload = parse_payload(payload_bytes)
        except NotFoundError:
            self.reject(location, f"signature payload blob {layer.digest} is missing from the registry")
            return
        except FormatError as exc:
            self.reject(location, self.format_problem(location, exc))
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
            if self.once((id(key), layer.digest, signature), 1, location, lambda: key.verify(signature, payload)) is True:
                return key.name, key.key_id, None
        certificate = layer.annotations.get(mt.ANNOTATION_CERTIFICATE)
        if certificate and self.identities:
            reasons = []
            rekor = layer.annotations.get(mt.ANNOTATION_REKOR_BUNDLE)
            for identity in self.identities:
                outcome = self.once((id(identity), layer.digest, signature, certificate, rekor), 1, location,
                                    lambda: verify_legacy(payload, signature, certificate, rekor, identity))
                if isinstance(outcome, KeylessSigner):
                    return identity.name, None, outcome
                reasons.append(f"{identity.name}: {outcome}")
            self.reject(location, "keyless signature rejected: " + "; ".join(reasons))
            return None
        kind = "keyless signature (certificate)" if certificate else "signature"
        self.reject(location, f"{kind} not made by any trusted key")
        return None

    def _verified(self, form: str, signer: tuple[str, str | None, KeylessSigner | None], payload: SimpleSigningPayload | None, location: str,
                  annotations: dict[str, str] | None = None, names: tuple[str, ...] = ()) -> VerifiedSignature:
        return VerifiedSignature(
            form=form,
            signer=signer[0],
            key_id=signer[1],
            keyless=signer[2],
            docker_reference=payload.docker_reference if payload else None,
            annotations=payload.annotations() if payload else (annotations or {}),
            location=location,
            signed_names=((payload.docker_reference,) if payload.docker_reference else ()) if payload else names,
        )

    # -- sigstore bundle referrers ----------------------------------------------------------

    def check_bundle_referrer(self, repository: Repository, descriptor: Descriptor) -> None:
        location = f"{repository.display_name}@{descriptor.digest} (bundle referrer)"
        if self.too_large(location, descriptor, MAX_REFERRER_MANIFEST_BYTES, "referrer manifest", self.reject):
            return
        try:
            manifest = self.fetch.manifest(descriptor.digest, MAX_REFERRER_MANIFEST_BYTES)
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
            if self.too_large(location, layers[0], MAX_LAYER_BYTES, "sigstore bundle", self.reject):
                return
            bundle = parse_bundle(self.fetch.blob(layers[0].digest, MAX_LAYER_BYTES), what="sigstore bundle")
        except NotFoundError as exc:
            self.reject(location, str(exc))
            return
        except FormatError as exc:
            self.reject(location, self.format_problem(location, exc))
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
            if statement.predicate_type not in self.attestation_types:
                self.ignored.append(printable(f"{location}: attestation of type {statement.predicate_type} (not a signature)"))
                return
            self._attestation("bundle", statement, bundle.envelope.payload, location,
                              lambda: self._bundle_signer(bundle, statement, location, self.reject_attestation))
            return
        if not self.signatures:
            return
        subject = statement.subject_for(self.digest)
        if subject is None:
            self.reject(location, f"signed statement does not name {self.digest} as its subject")
            return
        signer = self._bundle_signer(bundle, statement, location, self.reject)
        if signer is None:
            return
        annotations = {k: v for k, v in subject.annotations.items() if isinstance(v, str)}
        missing = self._missing_annotations(annotations)
        if missing:
            self.reject(location, f"signature by {signer[0]} {missing}")
            return
        names = tuple(dict.fromkeys(s.name for s in statement.subjects if s.name and s.matches(self.digest)))
        self.verified.append(self._verified("bundle", signer, None, location, annotations, names))

    def _bundle_signer(self, bundle, statement: Statement, location: str, reject) -> tuple[str, str | None, KeylessSigner | None] | None:
        bundle_digest = sha256_digest(bundle.raw)
        if bundle.is_keyless:
            reasons = []
            for identity in self.identities:
                outcome = self.once((id(identity), bundle_digest), 1, location, lambda: verify_bundle_dsse(bundle.raw, identity))
                if isinstance(outcome, ModelsignError):
                    reasons.append(f"{identity.name}: {outcome}")
                    continue
                payload_type, payload, signer = outcome
                # The statement we inspected must be the one the verified envelope carries.
                if payload != bundle.envelope.payload or payload_type != mt.INTOTO_PAYLOAD:
                    reasons.append(f"{identity.name}: verified payload differs from the envelope")
                    continue
                return identity.name, None, signer
            reject(location, "keyless bundle rejected: " + ("; ".join(reasons) if reasons else "no trusted keyless identity configured"))
            return None
        for key in self.keys:
            if self.once((id(key), bundle_digest), len(bundle.envelope.signatures), location, lambda: bundle.envelope.verified_by(key)) is True:
                return key.name, key.key_id, None
        reject(location, "bundle signature not made by any trusted key")
        return None

    # -- attestations -----------------------------------------------------------------------

    def check_attestation_layer(self, repository: Repository, layer: Descriptor, location: str) -> None:
        hinted = layer.annotations.get(mt.ANNOTATION_PREDICATE_TYPE)
        if hinted is not None and hinted not in self.attestation_types:
            return  # another kind of attestation: not fetched
        if layer.media_type != mt.DSSE_ENVELOPE:
            self.reject_attestation(location, f"layer media type {layer.media_type} is not a DSSE envelope")
            return
        if self.too_large(location, layer, MAX_LAYER_BYTES, "attestation envelope", self.reject_attestation):
            return
        try:
            envelope = parse_envelope(load_signed_json(self.fetch.blob(layer.digest, MAX_LAYER_BYTES), what="attestation envelope"))
            if envelope.payload_type != mt.INTOTO_PAYLOAD:
                raise FormatError(f"attestation payload type is {envelope.payload_type!r}, not in-toto")
            statement = parse_statement(envelope.payload)
        except NotFoundError as exc:
            self.reject_attestation(location, str(exc))
            return
        except FormatError as exc:
            self.reject_attestation(location, self.format_problem(location, exc))
            return
        if statement.predicate_type not in self.attestation_types:
            return
        self._attestation("legacy", statement, envelope.payload, location, lambda: self._envelope_signer(envelope, layer, location))

    def _envelope_signer(self, envelope: Envelope, layer: Descriptor, location: str) -> tuple[str, str | None, KeylessSigner | None] | None:
        for key in self.keys:
            if self.once((id(key), layer.digest), len(envelope.signatures), location, lambda: envelope.verified_by(key)) is True:
                return key.name, key.key_id, None
        if layer.annotations.get(mt.ANNOTATION_CERTIFICATE):
            self.reject_attestation(location, "keyless .att attestations are not supported; attach it as a sigstore bundle (--format bundle)")
        else:
            self.reject_attestation(location, "attestation not signed by any trusted key")
        return None

    def _attestation(self, form: str, statement: Statement, payload: bytes, location: str, verify_signer) -> None:
        if statement.subject_for(self.digest) is None:
            self.reject_attestation(location, f"attestation is about another artifact, not {self.digest}")
            return
        signer = verify_signer()
        if signer is None:
            return
        self.attestations.append(
            VerifiedAttestation(
                predicate_type=statement.predicate_type, predicate=statement.predicate, form=form,
                signer=signer[0], key_id=signer[1], keyless=signer[2], location=location, statement_digest=sha256_digest(payload),
            )
        )
