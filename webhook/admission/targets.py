"""Classify each extracted field: an OCI artifact to verify, a URI modelsign cannot verify,
or a malformed value. Pure functions; no network."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from signer import REMOTE_SCHEMES, ImageReference, ReferenceFormatError, parse_image_reference, parse_reference, unsafe_character
from webhook.admission.extract import Found

MAX_VALUE_CHARACTERS = 8192  # far above references (about 500 at most) and signed URLs


@dataclass(frozen=True)
class Target:
    found: Found
    kind: str  # "oci" (verifiable), "uri" (not verifiable), "invalid"
    reference: ImageReference | None = None
    scheme: str = ""
    problem: str | None = None

    @property
    def key(self) -> str:
        """Identity for de-duplication: one verification per normalised reference."""
        return str(self.reference) if self.reference else str(self.found.value)


def bounded_text(value: Any) -> str:
    """A field's value as the policy and the records see it: the text, cut at the length no
    reference or URI reaches (anything longer is invalid anyway)."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= MAX_VALUE_CHARACTERS:
        return text
    marker = f"... ({len(text)} characters)"  # the whole within MAX_VALUE_CHARACTERS: the engine's cut (engine/values.py) leaves it be
    return text[:MAX_VALUE_CHARACTERS - len(marker)] + marker


def classify(found: Found) -> Target:
    value = found.value
    if not isinstance(value, str) or not value.strip():
        return Target(found=found, kind="invalid", problem=f"{found.source} must be a non-empty string, got {value!r}")
    if len(value) > MAX_VALUE_CHARACTERS:  # every artifact's text reaches the policy engine: bound it
        return Target(found=found, kind="invalid", problem=f"{found.source} is {len(value)} characters long; modelsign reads image references "
                                                          f"and model URIs of up to {MAX_VALUE_CHARACTERS}")
    unsafe = unsafe_character(value)
    if unsafe is not None:  # before any parsing or matching: rego-cpp, for one, cuts strings at NUL
        return Target(found=found, kind="invalid", problem=f"{found.source} {value!r} contains {unsafe}; remove it")
    value = value.strip()
    try:
        if found.role == "image":
            return Target(found=found, kind="oci", reference=parse_image_reference(value))
        scheme, separator, _ = value.partition("://")
        if separator and scheme in REMOTE_SCHEMES:
            reference = parse_reference(value)
            assert isinstance(reference, ImageReference)
            return Target(found=found, kind="oci", reference=reference, scheme=scheme)
        return Target(found=found, kind="uri", scheme=scheme if separator else "")
    except ReferenceFormatError as exc:
        return Target(found=found, kind="invalid", problem=f"{found.source}: {exc}")
