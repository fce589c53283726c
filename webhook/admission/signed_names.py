"""The names a digest's verified signatures carry, and whether the pulled name is one of them.

Signatures, scans and approvals bind to the digest, not to the name it is pulled by: anyone
who can push to `scratch/*` can copy a digest signed as `models/llm` and its `.sig` there.
So the rules that apply to a digest are those of the pulled name and of every name its
verified signatures carry (the signed `docker-reference`, a bundle statement's subject
names): copying an image never sheds the rules of where it was signed. With
`requireSignedReference`, a signature also counts only where its signed name is the pulled
name, or a mirror of it (`imageMirrors`, like an ImageDigestMirrorSet).
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from signer import ReferenceFormatError, parse_image_reference


def normalised_name(signed: str) -> str:
    """A signed name as a repository name (`registry/repository`, Docker Hub spelled
    `docker.io`); kept as written if it does not parse, so its rules still match by glob."""
    try:
        return parse_image_reference(signed).name
    except ReferenceFormatError:
        return signed


def _under(name: str, prefix: str) -> str | None:
    """The rest of `name` below `prefix` ("" if equal), or None if it is not below it."""
    if name == prefix:
        return ""
    return name[len(prefix):] if name.startswith(prefix + "/") else None


def same_repository(pulled: str, signed: str, mirror_groups: Sequence[Sequence[str]]) -> bool:
    """Whether `signed` names what `pulled` names: equal, or the same path under two
    prefixes of one mirror group (every prefix of a group serves the same content)."""
    if pulled == signed:
        return True
    for group in mirror_groups:
        for prefix in group:
            rest = _under(signed, prefix)
            if rest is None:
                continue
            if any(_under(pulled, other) == rest for other in group):
                return True
    return False


def signed_name_facts(pulled: str, signatures: Iterable[dict[str, Any]], mirror_groups: Sequence[Sequence[str]]) -> list[str]:
    """Add `names` and `nameMatches` to each signature fact (in place); return every name
    the signatures carry, once, in order."""
    everything: list[str] = []
    for signature in signatures:
        names = [normalised_name(n) for n in signature.get("signedNames") or []]
        signature["names"] = names
        signature["nameMatches"] = any(same_repository(pulled, name, mirror_groups) for name in names)
        everything += [n for n in names if n not in everything]
    return everything
