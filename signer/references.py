"""Artifact references: registry images and ModelKits, local OCI layouts.

Registry references are normalised the way Docker does it (`nginx` ->
`docker.io/library/nginx:latest` when resolved). The `kit://` prefix defaults the
registry to `localhost` as KitOps does; `oci://`, `oci+fetch://` and `oci+native://`
(KServe storage URIs) use Docker's defaults. `oci:PATH[:tag|@digest]` names an image in
a local OCI image layout directory.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass, replace
from pathlib import Path

from signer.errors import ReferenceFormatError
from signer.formats.digests import is_digest

DOCKER_HUB = "docker.io"
DOCKER_HUB_API_HOST = "registry-1.docker.io"
KIT_DEFAULT_REGISTRY = "localhost"
DEFAULT_TAG = "latest"

# Prefixes that name a remote OCI artifact (KServe storageUri schemes and kit://).
REMOTE_SCHEMES = ("kit", "oci", "oci+fetch", "oci+native")

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
# fullmatch and ASCII: `$` would accept a trailing newline, and `\w` any Unicode letter.
_DOMAIN_RE = re.compile(rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?", re.ASCII)
_PATH_COMPONENT_RE = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*", re.ASCII)
_TAG_RE = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
# Control, format (bidi overrides, zero-width), surrogate and line/paragraph separator
# characters: never part of a name, and some engines cut or mangle strings at them.
_UNSAFE_CATEGORIES = ("Cc", "Cf", "Cs", "Zl", "Zp")
_MAX_NAME_LENGTH = 255


@dataclass(frozen=True)
class ImageReference:
    """A reference to a manifest in a registry repository."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None
    scheme: str = ""

    @property
    def name(self) -> str:
        """Registry plus repository, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def cosign_identity(self) -> str:
        """The `docker-reference` cosign writes: go-containerregistry's repository name."""
        registry = "index.docker.io" if self.registry == DOCKER_HUB else self.registry
        return f"{registry}/{self.repository}"

    @property
    def api_host(self) -> str:
        return DOCKER_HUB_API_HOST if self.registry == DOCKER_HUB else self.registry

    @property
    def reference(self) -> str:
        """What to ask the registry for: the digest if known, else the tag (default `latest`)."""
        return self.digest or self.tag or DEFAULT_TAG

    def pinned(self, digest: str) -> ImageReference:
        """The digest-only form that gets verified and recorded."""
        return replace(self, tag=None, digest=digest)

    def __str__(self) -> str:
        return _display(self.name, self.tag, self.digest)


@dataclass(frozen=True)
class LayoutReference:
    """A manifest in a local OCI image layout directory (`oci:PATH[:tag|@digest]`)."""

    path: Path
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        return f"oci:{self.path}"

    @property
    def cosign_identity(self) -> str:
        return f"oci:{self.path.resolve()}"

    @property
    def reference(self) -> str | None:
        return self.digest or self.tag

    def pinned(self, digest: str) -> LayoutReference:
        return replace(self, tag=None, digest=digest)

    def __str__(self) -> str:
        return _display(self.name, self.tag, self.digest)


ArtifactReference = ImageReference | LayoutReference


def _display(name: str, tag: str | None, digest: str | None) -> str:
    return name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


def unsafe_character(text: str) -> str | None:
    """Describe the first control or invisible formatting character in `text`, if any:
    `the control character U+0000 (NULL) at position 3`."""
    for position, character in enumerate(text):
        if unicodedata.category(character) in _UNSAFE_CATEGORIES:
            name = unicodedata.name(character, "") or {"\x00": "NULL", "\t": "TAB", "\n": "LINE FEED", "\r": "CARRIAGE RETURN"}.get(character, "control")
            return f"the control character U+{ord(character):04X} ({name}) at position {position}"
    return None


def printable(text: str) -> str:
    """`text` with every control, formatting or lone-surrogate character shown as a visible
    `\\uXXXX` escape: for text from a registry or a request that goes into a message, a log
    or a response, where it must neither break the encoding nor hide what it says."""
    if not any(unicodedata.category(c) in _UNSAFE_CATEGORIES for c in text):
        return text
    return "".join(f"\\u{ord(c):04x}" if unicodedata.category(c) in _UNSAFE_CATEGORIES else c for c in text)


def printable_lines(text: str) -> str:
    """`printable` for multi-line text meant for a terminal: its own line breaks stay, every
    other control character (ESC, CR, BEL, bidi overrides) is shown escaped."""
    return "\n".join(printable(line) for line in text.split("\n"))


def check_safe_text(text: str, what: str) -> None:
    """Refuse a reference or URI holding control characters, before anything parses or matches it."""
    problem = unsafe_character(text)
    if problem is not None:
        raise ReferenceFormatError(f"{what} {text!r} contains {problem}", hint="remove it: names and URIs are printable text")


def parse_reference(text: str) -> ArtifactReference:
    """Parse any accepted artifact reference form."""
    if not isinstance(text, str) or not text.strip():
        raise ReferenceFormatError("empty artifact reference", hint="give e.g. registry.example.com/models/llm:1.0")
    check_safe_text(text, "reference")
    text = text.strip()
    if text.startswith("oci:") and not text.startswith("oci://"):
        return parse_layout_reference(text)
    scheme, sep, rest = text.partition("://")
    if sep:
        if scheme not in REMOTE_SCHEMES:
            raise ReferenceFormatError(
                f"unsupported reference scheme {scheme!r} in {text!r}",
                hint="use a plain registry reference, kit://, oci://, oci+fetch://, oci+native:// or oci:PATH",
            )
        default_registry = KIT_DEFAULT_REGISTRY if scheme == "kit" else DOCKER_HUB
        return parse_image_reference(rest, default_registry=default_registry, scheme=scheme, original=text)
    return parse_image_reference(text)


def parse_image_reference(
    text: str, *, default_registry: str = DOCKER_HUB, scheme: str = "", original: str | None = None
) -> ImageReference:
    shown = original or text
    check_safe_text(shown, "reference")
    remainder, digest = _split_digest(text, shown)
    name, tag = _split_tag(remainder, shown)
    registry, repository = _split_registry(name, default_registry)
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    _check_repository(repository, shown)
    if len(f"{registry}/{repository}") > _MAX_NAME_LENGTH:
        raise ReferenceFormatError(f"repository name in {shown!r} is longer than {_MAX_NAME_LENGTH} characters")
    return ImageReference(registry=registry, repository=repository, tag=tag, digest=digest, scheme=scheme)


def parse_layout_reference(text: str) -> LayoutReference:
    body = text[len("oci:"):]
    digest = None
    tag = None
    if "@" in body:
        body, _, digest = body.rpartition("@")
        _check_digest(digest, text)
    else:
        head, sep, candidate = body.rpartition(":")
        if sep and "/" not in candidate and _TAG_RE.fullmatch(candidate):
            body, tag = head, candidate
    if not body:
        raise ReferenceFormatError(f"missing layout directory in {text!r}", hint="write oci:PATH[:tag|@digest], e.g. oci:./store:llm-1.0")
    return LayoutReference(path=Path(body), tag=tag, digest=digest)


def _split_digest(text: str, shown: str) -> tuple[str, str | None]:
    if "@" not in text:
        return text, None
    remainder, _, digest = text.partition("@")
    _check_digest(digest, shown)
    return remainder, digest


def _check_digest(digest: str, shown: str) -> None:
    if not is_digest(digest):
        raise ReferenceFormatError(
            f"invalid digest {digest!r} in {shown!r}",
            hint="a digest is 'sha256:' followed by 64 lowercase hex characters",
        )


def _split_tag(text: str, shown: str) -> tuple[str, str | None]:
    colon = text.rfind(":")
    if colon == -1 or "/" in text[colon + 1:] or text.endswith("]"):
        return text, None
    # A colon inside the first component with no slash after it is a port (e.g. "host:5000").
    tag = text[colon + 1:]
    if not _TAG_RE.fullmatch(tag):
        raise ReferenceFormatError(
            f"invalid tag {tag!r} in {shown!r}",
            hint="tags are up to 128 characters of letters, digits, '_', '.' and '-', not starting with '.' or '-'",
        )
    return text[:colon], tag


def _split_registry(name: str, default_registry: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    looks_like_domain = sep and (
        "." in first or ":" in first or first == "localhost" or first.startswith("[") or first.lower() != first
    )
    if not looks_like_domain:
        return default_registry, name
    if not _DOMAIN_RE.fullmatch(first):
        raise ReferenceFormatError(f"invalid registry host {first!r} in {name!r}")
    first = canonical_host(first)
    if first == "index.docker.io":
        first = DOCKER_HUB
    return first, rest


def canonical_host(host: str) -> str:
    """One spelling per registry host, so allow-lists, rules and caches see one name for what
    clients treat as one host: DNS names lowercased, IP addresses in their canonical form,
    ports without leading zeros (`127.0.0.1:05000` and `LOCALHOST:5000` are not new names)."""
    name, port = host, ""
    if host.startswith("["):
        end = host.index("]")
        name, port = host[: end + 1], host[end + 2:] if host[end + 1:end + 2] == ":" else ""
    elif ":" in host:
        name, port = host.rsplit(":", 1)
    if port:
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ReferenceFormatError(f"invalid port {port!r} in registry host {host!r}")
        port = str(int(port))
    bare = name[1:-1] if name.startswith("[") else name
    try:
        address = ipaddress.ip_address(bare)
        name = f"[{address.compressed}]" if address.version == 6 else address.compressed
    except ValueError:
        name = name.lower()
    return f"{name}:{port}" if port else name


def _check_repository(repository: str, shown: str) -> None:
    if not repository:
        raise ReferenceFormatError(f"missing repository name in {shown!r}")
    for component in repository.split("/"):
        if not _PATH_COMPONENT_RE.fullmatch(component):
            raise ReferenceFormatError(
                f"invalid repository path component {component!r} in {shown!r}",
                hint="repository names are lowercase letters and digits separated by '.', '_', '__' or '-'",
            )


def is_loopback_host(registry: str) -> bool:
    """Docker allows plain HTTP for these without configuration. Only literal loopback
    addresses and `localhost` count: `127.evil.example` is a public name."""
    host = registry
    if host.startswith("[") and "]" in host:
        host = host[1:host.index("]")]
    elif host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
