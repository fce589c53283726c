"""The one interface over a registry repository and a local OCI image layout.

Everything above this layer (signing, verification, referrers) is written once against
`Repository`; `RegistryRepository` and `LayoutRepository` implement it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from signer.oci.manifest import Descriptor, Manifest

# Signature payloads, bundles and configs are small; refuse to buffer anything huge.
DEFAULT_MAX_BLOB_BYTES = 16 * 1024 * 1024
MAX_MANIFEST_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class PushedManifest:
    digest: str
    # True when the store indexed the manifest's `subject` itself (OCI referrers API);
    # False means the client must maintain the fallback referrers tag.
    subject_indexed: bool = False


class Repository(Protocol):
    @property
    def display_name(self) -> str:
        """Where this repository lives, for messages (e.g. `127.0.0.1:5000/models/llm`)."""
        ...

    def resolve(self, reference: str) -> Descriptor:
        """Tag or digest -> descriptor of the manifest it names, without downloading layers."""
        ...

    def fetch_manifest(self, reference: str, *, max_bytes: int = MAX_MANIFEST_BYTES) -> Manifest | None:
        """The manifest with its exact bytes; None if the tag or digest does not exist.
        More than `max_bytes` is a TooLargeError."""
        ...

    def push_manifest(self, data: bytes, media_type: str, *, tag: str | None = None) -> PushedManifest:
        ...

    def fetch_blob(self, digest: str, *, max_bytes: int = DEFAULT_MAX_BLOB_BYTES) -> bytes:
        ...

    def fetch_blob_to_file(self, digest: str, path: Path, *, max_bytes: int, advance: Callable[[int], None] | None = None) -> None:
        """Stream a possibly large blob to `path`, checking its digest on the way; `advance` is
        told the size of each chunk written."""
        ...

    def has_blob(self, digest: str) -> bool:
        ...

    def push_blob(self, data: bytes) -> str:
        ...

    def push_blob_file(self, path: Path) -> str:
        """Upload a possibly large file without holding it in memory (chunked upload)."""
        ...

    def list_tags(self, *, page_size: int = 1000) -> list[str]:
        ...

    def referrers_api(self, digest: str, artifact_type: str | None = None) -> list[Descriptor] | None:
        """Referrers via the OCI API; None when the store has no such API."""
        ...
