"""Attach signed in-toto attestations to an artifact digest, as cosign attest does.

`legacy` (default): a DSSE envelope layer in `<repo>:sha256-<hex>.att` with the layer
annotations `predicateType` and an empty `dev.cosignproject.cosign/signature` (as cosign
writes them). `bundle`: a sigstore v0.3 bundle referrer. Reading them back is
`signer.signatures.verification.verify_attestations`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from signer.errors import FormatError
from signer.formats import mediatypes as mt
from signer.formats.bundle_referrer import push_bundle_referrer
from signer.formats.bundles import build_key_bundle
from signer.formats.digests import attestation_tag, sha256_digest
from signer.formats.dsse import sign_envelope
from signer.formats.intoto import encode_statement, subject_for_digest
from signer.formats.legacy import MAX_LAYER_BYTES, Layer, append_layer
from signer.oci.manifest import Descriptor
from signer.oci.stores import Stores
from signer.references import ArtifactReference
from signer.signatures.artifacts import resolve_target
from signer.trust.keys import SigningKey

TYPE_ALIASES = mt.PREDICATE_ALIASES


@dataclass(frozen=True)
class AttestResult:
    reference: str
    digest: str
    predicate_type: str
    key_name: str
    key_id: str
    written: str
    statement_digest: str = ""  # sha256 of the signed statement: the attestation's id (what verifiers and audit records cite)


def predicate_type_for(name: str) -> str:
    """`vuln`, `approval`, `approval-request`, `evaluation`, `custom`, or a full predicate-type URI."""
    return TYPE_ALIASES.get(name, name)


def attest(stores: Stores, reference: ArtifactReference, key: SigningKey, predicate_type: str, predicate: Any, *, form: str = "legacy") -> AttestResult:
    resolved, target = resolve_target(stores, reference)
    repository = stores.repository(reference)
    statement = encode_statement([subject_for_digest(resolved.digest, name=reference.name)], predicate_type, predicate)
    envelope = sign_envelope(mt.INTOTO_PAYLOAD, statement, key)
    if form == "bundle":
        referrer = push_bundle_referrer(repository, target, build_key_bundle(envelope, key.public.key_id), predicate_type)
        written = f"{repository.display_name}@{referrer}"
    elif form == "legacy":
        content = json.dumps(envelope.to_json(), separators=(",", ":")).encode()
        if len(content) > MAX_LAYER_BYTES:
            raise FormatError(f"the attestation is {len(content)} bytes; the limit is {MAX_LAYER_BYTES}", hint="trim the predicate (e.g. fewer findings)")
        # cosign writes the signature annotation empty on .att layers (the signature is inside
        # the envelope) and refuses a layer without it ("missing ... annotation").
        annotations = {mt.ANNOTATION_SIGNATURE: "", mt.ANNOTATION_PREDICATE_TYPE: predicate_type}
        layer = Layer(descriptor=Descriptor.for_content(mt.DSSE_ENVELOPE, content, annotations=annotations), content=content)
        tag = attestation_tag(resolved.digest)
        append_layer(repository, tag, layer)
        written = f"{repository.display_name}:{tag}"
    else:
        raise FormatError(f"unknown attestation format {form!r}", hint="use legacy or bundle")
    return AttestResult(
        reference=str(resolved.pinned), digest=resolved.digest, predicate_type=predicate_type,
        key_name=key.name, key_id=key.public.key_id, written=written, statement_digest=sha256_digest(statement),
    )
