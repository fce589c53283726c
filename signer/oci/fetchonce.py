"""Content-addressed reads made once per verification.

Padding can point a hundred signature entries at one payload or one manifest. Read through
this, each digest is fetched once and its answer (or its error: missing, malformed, too
large) is reused, so such padding costs one fetch. Registry and budget failures are not
kept: they end the verification anyway.
"""

from __future__ import annotations

from typing import Callable, TypeVar

from signer.errors import FormatError, NotFoundError
from signer.oci.manifest import Manifest
from signer.oci.repository import Repository

T = TypeVar("T")


class FetchOnce:
    def __init__(self, repository: Repository) -> None:
        self.repository = repository
        self._blobs: dict[tuple[str, int], bytes | FormatError | NotFoundError] = {}
        self._manifests: dict[tuple[str, int], Manifest | None | FormatError | NotFoundError] = {}

    def blob(self, digest: str, max_bytes: int) -> bytes:
        return _once(self._blobs, (digest, max_bytes), lambda: self.repository.fetch_blob(digest, max_bytes=max_bytes))

    def manifest(self, digest: str, max_bytes: int) -> Manifest | None:
        return _once(self._manifests, (digest, max_bytes), lambda: self.repository.fetch_manifest(digest, max_bytes=max_bytes))


def _once(seen: dict[tuple[str, int], T | FormatError | NotFoundError], key: tuple[str, int], fetch: Callable[[], T]) -> T:
    if key not in seen:
        try:
            seen[key] = fetch()
        except (FormatError, NotFoundError) as exc:
            seen[key] = exc
    found = seen[key]
    if isinstance(found, (FormatError, NotFoundError)):
        raise found
    return found
