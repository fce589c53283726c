"""Sign a manifest digest in a registry or OCI layout, the way cosign does.

`legacy` (default): a layer in `<repo>:sha256-<hex>.sig` (every cosign reads it).
`bundle`: a sigstore v0.3 bundle referrer (what cosign v3 writes). `both`: the two.
The reference is resolved once; everything signed and reported names that digest.
Signing is idempotent: an identical signature by the same key is not added twice.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from signer.errors import FormatError
from signer.formats import mediatypes as mt
from signer.formats.bundle_referrer import push_bundle_referrer
from signer.formats.bundles import build_key_bundle
from signer.formats.digests import signature_tag
from signer.formats.dsse import sign_envelope
from signer.formats.intoto import encode_statement, subject_for_digest
from signer.formats.legacy import Layer, append_layer
from signer.formats.simplesigning import MAX_PAYLOAD_BYTES, build_payload
from signer.oci.manifest import Descriptor
from signer.oci.repository import Repository
from signer.oci.stores import Stores
from signer.references import ArtifactReference
from signer.signatures.forms import SignatureFormat
from signer.signatures.artifacts import resolve_target
from signer.signatures.verification import verify_signatures
from signer.trust.keys import SigningKey


@dataclass(frozen=True)
class SignResult:
    reference: str
    digest: str
    key_name: str
    key_id: str
    written: tuple[str, ...]
    unchanged: tuple[str, ...]


def sign_artifact(
    stores: Stores,
    reference: ArtifactReference,
    key: SigningKey,
    *,
    signature_format: SignatureFormat = SignatureFormat.LEGACY,
    annotations: dict[str, str] | None = None,
) -> SignResult:
    resolved, target = resolve_target(stores, reference)
    repository = stores.repository(reference)
    pinned = str(resolved.pinned)
    written: list[str] = []
    unchanged: list[str] = []
    already = verify_signatures(repository, target.digest, [key.public], reference=pinned, required_annotations=annotations)
    forms_present = {v.form for v in already.verified if not annotations or v.annotations == annotations}
    if signature_format in (SignatureFormat.LEGACY, SignatureFormat.BOTH):
        where = f"{repository.display_name}:{signature_tag(target.digest)}"
        if "legacy" in forms_present:
            unchanged.append(where)
        else:
            _write_legacy(repository, reference, target.digest, key, annotations)
            written.append(where)
    if signature_format in (SignatureFormat.BUNDLE, SignatureFormat.BOTH):
        if "bundle" in forms_present:
            unchanged.append(f"{repository.display_name} bundle referrer of {target.digest}")
        else:
            referrer = _write_bundle(repository, reference, target, key, annotations)
            written.append(f"{repository.display_name}@{referrer}")
    return SignResult(
        reference=pinned, digest=target.digest, key_name=key.name, key_id=key.public.key_id, written=tuple(written), unchanged=tuple(unchanged)
    )


def _write_legacy(repository: Repository, reference: ArtifactReference, digest: str, key: SigningKey, annotations: dict[str, str] | None) -> None:
    payload = build_payload(reference.cosign_identity, digest, annotations)
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise FormatError("annotations make the signature payload too large", hint="use fewer or shorter --annotation values")
    signature = key.sign(payload)
    layer = Layer(
        descriptor=Descriptor.for_content(mt.COSIGN_SIMPLESIGNING, payload, annotations={mt.ANNOTATION_SIGNATURE: base64.b64encode(signature).decode()}),
        content=payload,
    )
    append_layer(repository, signature_tag(digest), layer)


def _write_bundle(repository: Repository, reference: ArtifactReference, target: Descriptor, key: SigningKey,
                  annotations: dict[str, str] | None) -> str:
    # The subject names the repository (cosign v3 leaves it out; verifiers ignore it): rules
    # scoped to where it was signed then follow a copy of the digest, as with legacy signatures.
    subject = subject_for_digest(target.digest, name=reference.cosign_identity, annotations=dict(annotations) if annotations else None)
    statement = encode_statement([subject], mt.COSIGN_SIGN_PREDICATE, {})
    bundle = build_key_bundle(sign_envelope(mt.INTOTO_PAYLOAD, statement, key), key.public.key_id)
    return push_bundle_referrer(repository, target, bundle, mt.COSIGN_SIGN_PREDICATE)
