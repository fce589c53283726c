"""Attach a sigstore v0.3 bundle to an artifact as an OCI referrer, as cosign v3 does.

Manifest: artifactType = the bundle media type, the empty config, one bundle layer, the
signed manifest as `subject`, and annotations naming the content and predicate type (so
readers can skip statements they do not want without fetching them).
"""

from __future__ import annotations

from datetime import datetime, timezone

from signer.formats import mediatypes as mt
from signer.oci.manifest import Descriptor, encode_image_manifest
from signer.oci.referrers import attach_referrer
from signer.oci.repository import Repository


def push_bundle_referrer(repository: Repository, target: Descriptor, bundle: bytes, predicate_type: str) -> str:
    """Returns the referrer manifest's digest."""
    repository.push_blob(bundle)
    repository.push_blob(b"{}")
    annotations = {
        mt.ANNOTATION_BUNDLE_CONTENT: "dsse-envelope",
        mt.ANNOTATION_BUNDLE_PREDICATE: predicate_type,
        mt.ANNOTATION_CREATED: datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    manifest = encode_image_manifest(
        Descriptor(media_type=mt.OCI_EMPTY, digest=mt.OCI_EMPTY_DIGEST, size=2),
        [Descriptor.for_content(mt.SIGSTORE_BUNDLE_V03, bundle)],
        artifact_type=mt.SIGSTORE_BUNDLE_V03,
        subject=Descriptor(media_type=target.media_type, digest=target.digest, size=target.size),
        annotations=annotations,
    )
    return attach_referrer(repository, manifest, artifact_type=mt.SIGSTORE_BUNDLE_V03, annotations=annotations, subject_digest=target.digest)
