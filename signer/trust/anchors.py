"""What a signature may be verified against: a public key or a keyless identity."""

from __future__ import annotations

from signer.trust.keyless import KeylessIdentity
from signer.trust.keys import PublicKey

TrustAnchor = PublicKey | KeylessIdentity


def describe_anchor(anchor: TrustAnchor) -> str:
    if isinstance(anchor, PublicKey):
        return f"key {anchor.name} ({anchor.key_id})"
    return f"keyless identity {anchor.name} ({anchor.describe()})"


def describe_anchors(anchors: list[TrustAnchor]) -> str:
    names = [a.name for a in anchors]
    if len(names) == 1:
        return ("key " if isinstance(anchors[0], PublicKey) else "identity ") + names[0]
    return "any of " + ", ".join(names)
