"""The policy's `limits:` section: what verifying one artifact, and one review, may cost.

Anyone who can push to an allowed registry can pad an image's signature objects; these bound
the work that padding can cause, so that one review cannot starve the others. The defaults
are far above what real signatures need (a signed image costs a few KiB and one or two checks).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MIB = 1024 * 1024


class VerificationLimits(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    # Signature objects (manifests, payloads, bundles, attestations) read for one artifact /
    # for all artifacts of one review, and signature checks (key x payload x signature, each
    # distinct one once) made for them.
    artifact_bytes: int = Field(default=4 * MIB, alias="artifactBytes", ge=64 * 1024)
    artifact_checks: int = Field(default=200, alias="artifactChecks", ge=1)
    request_bytes: int = Field(default=16 * MIB, alias="requestBytes", ge=64 * 1024)
    request_checks: int = Field(default=1000, alias="requestChecks", ge=1)
    # Verification threads one review may hold at once (the rest wait for their turn).
    request_concurrency: int = Field(default=8, alias="requestConcurrency", ge=1, le=32)
    # A padded artifact (over these limits, with oversized signature objects, or a failed
    # verification that cost over 1 MiB or 50 checks) is denied without another look for this
    # long: the same padding costs nothing the second time.
    padded_ttl_seconds: float = Field(default=600, alias="paddedTtlSeconds", ge=0)
