"""What no policy may admit, checked after the engine answers.

The Rego policy decides; this is a floor under it. Whatever rules are loaded and whatever
the engine returns, an artifact that is malformed, from a registry not on the allow-list,
could not be verified, or carries no signature by any trusted key must be named by at
least one violation (enforced, or a warning in warn mode). An answer that leaves one out
contradicts the evidence: the engine was subverted or the rules are broken, and the review
is denied with that reason.
"""

from __future__ import annotations

from typing import Any, Iterable


def must_fail(artifact: dict[str, Any]) -> str | None:
    """Why this artifact can never pass, or None."""
    if artifact.get("kind") == "invalid":
        return "it is malformed"
    if artifact.get("kind") != "oci":
        return None
    evidence = artifact.get("evidence") or {}
    if not evidence.get("registryAllowed"):
        return f"registry {artifact.get('registry')} is not allowed"
    if evidence.get("error") is not None:
        return "it could not be verified"
    if not evidence.get("signatures"):
        return "no trusted key signed it"
    return None


def unaccounted(artifacts: Iterable[dict[str, Any]], violations: Iterable[dict[str, Any]]) -> list[str]:
    """`value (source): why` for each artifact that must fail but no violation names."""
    named = {v.get("source") for v in violations}
    return [f"{a.get('value')} ({a.get('source')}): {why}" for a in artifacts
            if (why := must_fail(a)) is not None and a.get("source") not in named]
