"""Referrers listed in the fallback index without their artifactType, the way cosign v2.6.2
writes them (its bundle referrers appear under the empty config type, with no annotations):
they are typed by their manifest, and only a bounded number of them is fetched."""

from __future__ import annotations

import os

from signer.formats import mediatypes as mt
from signer.formats.digests import referrers_fallback_tag
from signer.oci.manifest import Descriptor, encode_image_manifest, encode_index
from signer.oci.referrers import MAX_UNTYPED_ENTRIES, list_referrers
from signer.oci.samples import push_image
from signer.references import parse_reference
from signer.signatures.signing import SignatureFormat, sign_artifact
from signer.signatures.verification import verify_signatures


def _as_cosign_v2_lists_it(repository, subject: str, extra: list[Descriptor] = ()) -> None:
    index = repository.fetch_manifest(referrers_fallback_tag(subject))
    untyped = [Descriptor(media_type=d.media_type, digest=d.digest, size=d.size, artifact_type=mt.OCI_EMPTY) for d in index.manifests]
    repository.push_manifest(encode_index([*extra, *untyped]), mt.OCI_INDEX, tag=referrers_fallback_tag(subject))


def _empty_artifact(repository, subject: Descriptor) -> Descriptor:
    """Another tool's referrer with an empty config (an SBOM, say): not a sigstore bundle."""
    repository.push_blob(b"{}")
    layer = os.urandom(16)
    layer_digest = repository.push_blob(layer)
    body = encode_image_manifest(Descriptor(media_type=mt.OCI_EMPTY, digest=mt.OCI_EMPTY_DIGEST, size=2),
                                 [Descriptor(media_type="application/spdx+json", digest=layer_digest, size=len(layer))],
                                 artifact_type="application/spdx+json", subject=subject)
    pushed = repository.push_manifest(body, mt.OCI_MANIFEST)
    return Descriptor(media_type=mt.OCI_MANIFEST, digest=pushed.digest, size=len(body), artifact_type=mt.OCI_EMPTY)


def test_a_bundle_referrer_listed_under_the_empty_type_verifies(stores, registry, ml_key):
    ref = parse_reference(f"{registry.host}/untyped/app:1")
    repository = stores.repository(ref)
    image = push_image(repository, {"f": os.urandom(16)}, tag="1")
    sign_artifact(stores, ref, ml_key, signature_format=SignatureFormat.BUNDLE)
    other = _empty_artifact(repository, Descriptor(media_type=image.media_type, digest=image.digest, size=image.size))
    _as_cosign_v2_lists_it(repository, image.digest, [other])
    (entry,) = list_referrers(repository, image.digest, mt.SIGSTORE_BUNDLE_V03)  # the SBOM is not listed
    assert entry.annotations[mt.ANNOTATION_BUNDLE_PREDICATE] == mt.COSIGN_SIGN_PREDICATE  # read from its manifest
    report = verify_signatures(repository, image.digest, [ml_key.public], reference=f"{registry.host}/untyped/app")
    assert [v.form for v in report.verified] == ["bundle"] and report.rejected == ()


def test_untyped_entries_are_fetched_only_up_to_a_bound(stores, registry, ml_key):
    ref = parse_reference(f"{registry.host}/untyped/padded:1")
    repository = stores.repository(ref)
    image = push_image(repository, {"f": os.urandom(16)}, tag="1")
    subject = Descriptor(media_type=image.media_type, digest=image.digest, size=image.size)
    padding = [_empty_artifact(repository, subject) for _ in range(MAX_UNTYPED_ENTRIES + 4)]
    repository.push_manifest(encode_index(padding), mt.OCI_INDEX, tag=referrers_fallback_tag(image.digest))
    offset = registry.log_offset()
    assert list_referrers(repository, image.digest, mt.SIGSTORE_BUNDLE_V03) == []
    fetched = [r for r in registry.requests_since(offset) if r.startswith("GET /v2/untyped/padded/manifests/sha256:")]
    assert len(fetched) == MAX_UNTYPED_ENTRIES
