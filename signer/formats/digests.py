"""Content digests (`sha256:<hex>` everywhere) and the tag names derived from them."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Callable, Iterable

from signer.errors import FormatError

_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
_DIGEST_RE = re.compile(r"(sha256|sha384|sha512):([0-9a-f]+)")


def is_digest(text: str) -> bool:
    match = _DIGEST_RE.fullmatch(text)
    return match is not None and len(match.group(2)) == _HEX_LENGTHS[match.group(1)]


def validate_digest(text: str, *, what: str = "digest") -> str:
    """Return `text` if it is a well-formed digest, else raise a FormatError naming `what`."""
    if not isinstance(text, str) or not is_digest(text):
        raise FormatError(
            f"{what} {text!r} is not a valid digest",
            hint="expected 'sha256:' followed by 64 lowercase hex characters",
        )
    return text


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def digest_of(data: bytes, algorithm: str) -> str:
    return f"{algorithm}:" + hashlib.new(algorithm, data).hexdigest()


def check_content(data: bytes, expected: str, *, what: str) -> None:
    """Refuse content whose digest differs from the one it was fetched by."""
    algorithm = expected.split(":", 1)[0]
    actual = digest_of(data, algorithm)
    if actual != expected:
        raise FormatError(
            f"{what}: content digest {actual} does not match the requested {expected}",
            hint="the store returned different bytes than it advertised; it may be corrupt or tampered with",
        )


def hex_part(digest: str) -> str:
    return digest.split(":", 1)[1]


def tag_prefix(digest: str) -> str:
    """`sha256:abc` -> `sha256-abc`, the stem cosign and the OCI fallback scheme use."""
    algorithm, hexpart = digest.split(":", 1)
    return f"{algorithm}-{hexpart}"


def signature_tag(digest: str) -> str:
    return tag_prefix(digest) + ".sig"


def attestation_tag(digest: str) -> str:
    return tag_prefix(digest) + ".att"


def referrers_fallback_tag(digest: str) -> str:
    return tag_prefix(digest)


def write_checked(chunks: Iterable[bytes], path: Path, digest: str, max_bytes: int, what: str,
                  advance: Callable[[int], None] | None = None) -> None:
    """Write `chunks` to `path`; refuse more than `max_bytes` or content of another digest.
    `advance` is told the size of each chunk written (for progress)."""
    algorithm = digest.split(":", 1)[0]
    hasher = hashlib.new(algorithm)
    total = 0
    with path.open("wb") as handle:
        for chunk in chunks:
            total += len(chunk)
            if total > max_bytes:
                path.unlink(missing_ok=True)
                raise FormatError(f"{what} is larger than the {max_bytes} bytes allowed (its descriptor's size, or the limit)",
                                  hint="the store sent more than the manifest says: the artifact or the store is broken or hostile")
            hasher.update(chunk)
            handle.write(chunk)
            if advance is not None:
                advance(len(chunk))
    if f"{algorithm}:{hasher.hexdigest()}" != digest:
        path.unlink(missing_ok=True)
        raise FormatError(f"{what}: content does not match its digest", hint="the store returned different bytes than it advertised")
