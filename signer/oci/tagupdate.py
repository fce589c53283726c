"""Read-modify-write of a tag that several writers append to (cosign `.sig`/`.att` tags,
the referrers fallback index).

Registries offer no compare-and-swap on tags, so two writers can each read the old
manifest and the later write drops the other's entry. After writing we pause briefly,
re-read, and write again if our entry is gone, a bounded number of times. The pause must
outlast another writer's read-to-write time (a few registry round trips), which is why it
dominates signing latency on a fast loopback registry.
"""

from __future__ import annotations

import random
import time
from typing import Callable

from signer.errors import RegistryError
from signer.oci.manifest import Manifest
from signer.oci.repository import Repository

ATTEMPTS = 6


def append_to_tag(
    repository: Repository,
    tag: str,
    *,
    contains: Callable[[Manifest | None], bool],
    rewrite: Callable[[Manifest | None], tuple[bytes, str]],
) -> None:
    """Make the manifest at `tag` contain our entry. `rewrite(current)` returns the new
    manifest bytes and media type; `contains(manifest)` says whether our entry is in it."""
    for _ in range(ATTEMPTS):
        current = repository.fetch_manifest(tag)
        if contains(current):
            return
        data, media_type = rewrite(current)
        repository.push_manifest(data, media_type, tag=tag)
        time.sleep(random.uniform(0.01, 0.05))
        if contains(repository.fetch_manifest(tag)):
            return
    raise RegistryError(
        f"could not update tag {tag} in {repository.display_name} after {ATTEMPTS} attempts",
        hint="other writers keep replacing the tag at the same time; retry the command",
    )
