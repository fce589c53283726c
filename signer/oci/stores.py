"""Open the `Repository` a reference points at, reusing one registry client per host."""

from __future__ import annotations

import threading
from pathlib import Path

from signer.oci.layout import LayoutRepository
from signer.oci.registry import RegistryClient, RegistryOptions
from signer.oci.repository import Repository
from signer.references import ArtifactReference, ImageReference


class Stores:
    """`local_registries` maps a registry host to a directory of OCI image layouts, one per
    repository (`<dir>/<repository>`): references to that host are served from disk. This is
    the embedded default store of the demo and of air-gapped checks."""

    def __init__(self, options: RegistryOptions | None = None, *, local_registries: dict[str, Path] | None = None) -> None:
        self.options = options or RegistryOptions()
        self.local_registries = dict(local_registries or {})
        self._clients: dict[str, RegistryClient] = {}
        self._lock = threading.Lock()

    def client(self, reference: ImageReference) -> RegistryClient:
        with self._lock:
            client = self._clients.get(reference.registry)
            if client is None:
                client = RegistryClient(reference.registry, self.options, api_host=reference.api_host)
                self._clients[reference.registry] = client
            return client

    def unreachable(self, reference: ArtifactReference) -> str | None:
        """Why the reference's registry is not contacted right now (see RegistryClient.unreachable), or None."""
        if not isinstance(reference, ImageReference) or reference.registry in self.local_registries:
            return None
        with self._lock:
            client = self._clients.get(reference.registry)
        return client.unreachable() if client is not None else None

    def repository(self, reference: ArtifactReference, *, create: bool = False) -> Repository:
        if isinstance(reference, ImageReference):
            local = self.local_registries.get(reference.registry)
            if local is not None:
                return LayoutRepository(local / reference.repository, create=create)
            return self.client(reference).repository(reference.repository)
        return LayoutRepository(reference.path, create=create)

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()

    def __enter__(self) -> Stores:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
