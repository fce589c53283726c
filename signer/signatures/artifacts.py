"""The typed library API over references: resolve once, then verify the digest.

This is what the CLI and the admission webhook call. A digest reference is verified
without touching the image (only signature objects are fetched). A tag is resolved once
with a manifest GET; the digest of those bytes is what gets verified and reported.
"""

from __future__ import annotations

from dataclasses import dataclass

from signer.errors import NotFoundError
from signer.modelkit.kitfile import ModelKitInfo, describe_modelkit
from signer.oci.manifest import Descriptor, Manifest
from signer.oci.stores import Stores
from signer.references import ArtifactReference
from signer.signatures.verification import SignatureReport, verify_signatures
from signer.trust.anchors import TrustAnchor


@dataclass(frozen=True)
class ResolvedArtifact:
    reference: ArtifactReference  # as the user wrote it
    digest: str
    manifest: Manifest | None  # present when resolution had to fetch it

    @property
    def pinned(self) -> ArtifactReference:
        return self.reference.pinned(self.digest)


@dataclass(frozen=True)
class ArtifactVerification:
    resolved: ResolvedArtifact
    report: SignatureReport
    modelkit: ModelKitInfo | None
    media_type: str | None

    @property
    def ok(self) -> bool:
        return self.report.ok


def resolve_artifact(stores: Stores, reference: ArtifactReference) -> ResolvedArtifact:
    if reference.digest:
        return ResolvedArtifact(reference=reference, digest=reference.digest, manifest=None)
    repository = stores.repository(reference)
    if reference.reference is None:  # oci:PATH without tag: the layout's only manifest
        digest = repository.resolve(None).digest  # type: ignore[arg-type]
        return ResolvedArtifact(reference=reference, digest=digest, manifest=repository.fetch_manifest(digest))
    manifest = repository.fetch_manifest(reference.reference)
    if manifest is None:
        raise NotFoundError(f"{reference} not found in {repository.display_name}", hint="check the repository and tag, or push the artifact first")
    return ResolvedArtifact(reference=reference, digest=manifest.digest, manifest=manifest)


def resolve_target(stores: Stores, reference: ArtifactReference) -> tuple[ResolvedArtifact, Descriptor]:
    """Resolve once and describe the manifest (media type, size) that signed objects point at."""
    resolved = resolve_artifact(stores, reference)
    descriptor = resolved.manifest.descriptor() if resolved.manifest else stores.repository(reference).resolve(resolved.digest)
    return resolved, descriptor


def verify_artifact(
    stores: Stores,
    reference: ArtifactReference,
    anchors: list[TrustAnchor],
    *,
    required_annotations: dict[str, str] | None = None,
    describe: bool = False,
) -> ArtifactVerification:
    """Resolve once, verify signatures on the digest; describe the artifact if already
    fetched (tag references) or if `describe` asks for the manifest (never the layers)."""
    resolved = resolve_artifact(stores, reference)
    repository = stores.repository(reference)
    report = verify_signatures(
        repository, resolved.digest, anchors, reference=str(resolved.pinned), required_annotations=required_annotations
    )
    manifest = resolved.manifest
    if manifest is None and describe:
        manifest = repository.fetch_manifest(resolved.digest)
    modelkit = describe_modelkit(repository, manifest) if manifest is not None else None
    return ArtifactVerification(resolved=resolved, report=report, modelkit=modelkit, media_type=manifest.media_type if manifest else None)
