"""The forms an OCI signature can be stored in (what `sign --format` chooses)."""

from __future__ import annotations

import enum


class SignatureFormat(str, enum.Enum):
    LEGACY = "legacy"  # cosign's `sha256-<digest>.sig` tag (cosign v2, Kyverno, policy-controller)
    BUNDLE = "bundle"  # a sigstore bundle referrer (cosign v3)
    BOTH = "both"
