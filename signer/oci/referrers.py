"""Referrers of a manifest: the OCI referrers API, or the fallback tag scheme.

A store without the API (Debian's docker-registry 2.8, OCI layouts) keeps an OCI index at
tag `sha256-<hex>` listing the referrers, updated through `append_to_tag`.
"""

from __future__ import annotations

from signer.errors import FormatError, NotFoundError
from signer.formats import mediatypes as mt
from signer.formats.digests import referrers_fallback_tag
from signer.oci.manifest import Descriptor, Manifest, encode_index
from signer.oci.repository import Repository
from signer.oci.tagupdate import append_to_tag

# A referrer (config, one layer, subject, a few annotations) is about 1 KiB; more is padding.
MAX_REFERRER_MANIFEST_BYTES = 64 * 1024


def list_referrers(repository: Repository, subject_digest: str, artifact_type: str | None = None) -> list[Descriptor]:
    found = repository.referrers_api(subject_digest, artifact_type)
    if found is not None:
        return found
    tag = referrers_fallback_tag(subject_digest)
    index = repository.fetch_manifest(tag)
    if index is None:
        return []
    if not index.is_index:
        raise FormatError(f"referrers tag {tag} in {repository.display_name} is not an OCI index", hint="delete or repair that tag")
    if artifact_type is None:
        return list(index.manifests)
    typed = [d for d in index.manifests if d.artifact_type == artifact_type]
    untyped = [d for d in index.manifests if d.artifact_type in _UNTYPED and d.media_type == mt.OCI_MANIFEST]
    return typed + _typed_by_their_manifest(repository, untyped[:MAX_UNTYPED_ENTRIES], artifact_type)


# cosign v2.6.2 (go-containerregistry) lists its bundle referrers in the fallback index under
# their config's media type (the empty type), not the manifest's artifactType: such entries
# are typed by fetching their manifest, as a referrers API would. Capped, so that a padded
# index cannot make a verifier fetch without end.
_UNTYPED = (None, mt.OCI_EMPTY)
MAX_UNTYPED_ENTRIES = 16


def _typed_by_their_manifest(repository: Repository, entries: list[Descriptor], artifact_type: str) -> list[Descriptor]:
    found = []
    for entry in entries:
        try:
            manifest = repository.fetch_manifest(entry.digest, max_bytes=MAX_REFERRER_MANIFEST_BYTES)
        except (FormatError, NotFoundError):  # not a readable referrer, so not one of the wanted type
            continue
        if manifest is not None and manifest.artifact_type == artifact_type:
            found.append(Descriptor(media_type=entry.media_type, digest=entry.digest, size=entry.size,
                                    annotations=dict(manifest.annotations), artifact_type=artifact_type))
    return found


def attach_referrer(repository: Repository, manifest: bytes, *, artifact_type: str, annotations: dict[str, str], subject_digest: str) -> str:
    """Push a manifest that has a `subject`, and make sure it can be found as a referrer."""
    pushed = repository.push_manifest(manifest, mt.OCI_MANIFEST)
    if pushed.subject_indexed:
        return pushed.digest
    entry = Descriptor(
        media_type=mt.OCI_MANIFEST, digest=pushed.digest, size=len(manifest), annotations=annotations, artifact_type=artifact_type
    )

    def entries(index: Manifest | None) -> list[Descriptor]:
        return list(index.manifests) if index is not None and index.is_index else []

    append_to_tag(
        repository,
        referrers_fallback_tag(subject_digest),
        contains=lambda index: any(e.digest == entry.digest for e in entries(index)),
        rewrite=lambda index: (encode_index(entries(index) + [entry]), mt.OCI_INDEX),
    )
    return pushed.digest
