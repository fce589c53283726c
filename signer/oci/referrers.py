"""Referrers of a manifest: the OCI referrers API, or the fallback tag scheme.

A store without the API (Debian's docker-registry 2.8, OCI layouts) keeps an OCI index at
tag `sha256-<hex>` listing the referrers. It is updated read-modify-write; registries offer
no compare-and-swap, so after writing we re-read (after a short jittered pause) and re-add
our entry if a concurrent writer dropped it.
"""

from __future__ import annotations

import random
import time

from signer import mediatypes as mt
from signer.digests import referrers_fallback_tag
from signer.errors import FormatError, RegistryError
from signer.oci.manifest import Descriptor, encode_index
from signer.oci.repository import Repository

_UPDATE_ATTEMPTS = 5


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
    return [d for d in index.manifests if artifact_type is None or d.artifact_type == artifact_type]


def attach_referrer(repository: Repository, manifest: bytes, *, artifact_type: str, annotations: dict[str, str], subject_digest: str) -> str:
    """Push a manifest that has a `subject`, and make sure it can be found as a referrer."""
    pushed = repository.push_manifest(manifest, mt.OCI_MANIFEST)
    if pushed.subject_indexed:
        return pushed.digest
    entry = Descriptor(
        media_type=mt.OCI_MANIFEST, digest=pushed.digest, size=len(manifest), annotations=annotations, artifact_type=artifact_type
    )
    tag = referrers_fallback_tag(subject_digest)
    for attempt in range(_UPDATE_ATTEMPTS):
        current = repository.fetch_manifest(tag)
        entries = list(current.manifests) if current is not None and current.is_index else []
        if any(e.digest == entry.digest for e in entries):
            if attempt > 0:
                return pushed.digest
        else:
            entries.append(entry)
            repository.push_manifest(encode_index(entries), mt.OCI_INDEX, tag=tag)
        time.sleep(random.uniform(0.01, 0.05))
        confirmed = repository.fetch_manifest(tag)
        if confirmed is not None and any(e.digest == entry.digest for e in confirmed.manifests):
            return pushed.digest
    raise RegistryError(
        f"could not record referrer {pushed.digest} under tag {tag} in {repository.display_name} after {_UPDATE_ATTEMPTS} attempts",
        hint="another writer keeps replacing the tag; retry the command",
    )
