"""Registry credentials and the auth challenge dance.

Credentials come from Docker's `config.json` (`$DOCKER_CONFIG/config.json`, else
`~/.docker/config.json`): inline `auths` entries and credential helpers
(`credHelpers`/`credsStore`, run as `docker-credential-<name> get` with an argument list).
Challenges are `Basic` or `Bearer` (token service) as in the distribution spec.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from signer.errors import AuthenticationError, FormatError
from signer.jsonread import parse_json_object

_CHALLENGE_PARAM_RE = re.compile(r'(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')
_HELPER_TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class Credentials:
    username: str | None = None
    password: str | None = None
    identity_token: str | None = None  # OAuth2 refresh token (docker login with a token service)

    def __repr__(self) -> str:  # never print secrets
        return f"Credentials(username={self.username!r}, password=***, identity_token={'***' if self.identity_token else None})"


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "basic" or "bearer"
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge | None:
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        return None
    params = {
        match.group(1).lower(): (match.group(2).replace('\\"', '"') if match.group(2) is not None else match.group(3))
        for match in _CHALLENGE_PARAM_RE.finditer(rest)
    }
    return Challenge(scheme=scheme.lower(), params=params)


def docker_config_path() -> Path:
    base = os.environ.get("DOCKER_CONFIG")
    return (Path(base) if base else Path.home() / ".docker") / "config.json"


def _host_key(entry: str) -> str:
    """`https://index.docker.io/v1/` -> `index.docker.io`; `registry:5000` stays."""
    entry = re.sub(r"^[a-z]+://", "", entry.strip())
    return entry.split("/", 1)[0].lower()


def _config_hosts(registry: str) -> set[str]:
    host = registry.lower()
    if host in ("docker.io", "registry-1.docker.io", "index.docker.io"):
        return {"docker.io", "index.docker.io", "registry-1.docker.io"}
    return {host}


def load_credentials(registry: str, config_path: Path | None = None) -> Credentials | None:
    path = config_path or docker_config_path()
    if not path.is_file():
        return None
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise FormatError(f"cannot read Docker credentials from {path}: {exc.strerror}") from None
    try:
        config = parse_json_object(raw, what=f"Docker config {path}")
    except FormatError as exc:
        raise FormatError(f"cannot read Docker credentials: {exc.message}", hint="fix or remove the file, or point DOCKER_CONFIG elsewhere") from None
    hosts = _config_hosts(registry)
    helpers = config.get("credHelpers") or {}
    for key, helper in helpers.items() if isinstance(helpers, dict) else []:
        if _host_key(key) in hosts and isinstance(helper, str):
            return _run_helper(helper, key)
    auths = config.get("auths") or {}
    for key, entry in auths.items() if isinstance(auths, dict) else []:
        if _host_key(key) in hosts and isinstance(entry, dict):
            creds = _inline_credentials(entry, path)
            if creds:
                return creds
    store = config.get("credsStore")
    if isinstance(store, str) and store:
        for key in auths if isinstance(auths, dict) else []:
            if _host_key(key) in hosts:
                return _run_helper(store, key)
    return None


def _inline_credentials(entry: dict[str, object], path: Path) -> Credentials | None:
    identity_token = entry.get("identitytoken")
    auth = entry.get("auth")
    username = entry.get("username")
    password = entry.get("password")
    if isinstance(auth, str) and auth:
        try:
            decoded = base64.b64decode(auth, validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            raise FormatError(f"the 'auth' entry in {path} is not base64 of user:password", hint="run `docker login` again") from None
        username, _, password = decoded.partition(":")
    if isinstance(identity_token, str) and identity_token:
        return Credentials(username=username if isinstance(username, str) else None, identity_token=identity_token)
    if isinstance(username, str) and username:
        return Credentials(username=username, password=password if isinstance(password, str) else "")
    return None


def _run_helper(helper: str, server: str) -> Credentials | None:
    program = shutil.which(f"docker-credential-{helper}")
    if program is None:
        raise AuthenticationError(
            f"Docker credential helper docker-credential-{helper} is configured but not on PATH",
            hint="install it or remove it from your Docker config.json",
        )
    try:
        completed = subprocess.run(
            [program, "get"], input=server.encode(), capture_output=True, timeout=_HELPER_TIMEOUT_SECONDS, check=False
        )
    except subprocess.TimeoutExpired:
        raise AuthenticationError(f"credential helper docker-credential-{helper} timed out") from None
    if completed.returncode != 0:
        # Helpers exit non-zero with "credentials not found" when there is nothing stored.
        return None
    try:
        answer = parse_json_object(completed.stdout, what=f"output of docker-credential-{helper}")
        username, secret = answer["Username"], answer["Secret"]
        if not isinstance(username, str) or not isinstance(secret, str):
            raise TypeError
    except (FormatError, KeyError, TypeError):
        raise AuthenticationError(f"credential helper docker-credential-{helper} returned malformed output") from None
    if username == "<token>":
        return Credentials(identity_token=secret)
    return Credentials(username=username, password=secret)


def basic_header(credentials: Credentials) -> str:
    raw = f"{credentials.username or ''}:{credentials.password or ''}".encode()
    return "Basic " + base64.b64encode(raw).decode()
