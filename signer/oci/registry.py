"""A small OCI distribution client on httpx.

Why our own: oras-py cannot list referrers or maintain the fallback tags (DESIGN.md).
Transport rules follow Docker: HTTPS with the system CAs (plus `--ca-file`), plain HTTP
only for loopback registries or hosts the user names as insecure. Idempotent requests are
retried with backoff on 429/5xx and connection failures; every error names the registry.

Time: `timeout_seconds` bounds a whole request (scheme detection, every attempt and the backoff
between them), and a budget in effect (signer.oci.budget) may end it sooner; bodies are read
in chunks that are charged to the budget, with its deadline checked between them. A registry
that timed out or refused connections is not contacted again for `unreachable_pause_seconds`:
later requests fail at once with that first error.

Politeness: a 429 (with its Retry-After, or a backoff of its own) is noted for the registry for
the whole process, and on a ThrottleBoard shared by processes if one is set (the webhook's
shared cache): until then, a request waits if that fits in its time, else fails at once
without contacting the registry.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import random
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol
from urllib.parse import urlencode, urljoin

import httpx

from signer.errors import AuthenticationError, FormatError, ModelsignError, NotFoundError, RegistryError, TooLargeError
from signer.formats import mediatypes as mt
from signer.formats.digests import check_content, digest_of, is_digest, sha256_digest, write_checked
from signer.jsonread import load_json
from signer.oci.auth import Challenge, Credentials, basic_header, load_credentials, parse_challenge
from signer.oci.budget import Budget, DeadlineExceeded, current as current_budget
from signer.oci.manifest import Descriptor, Manifest, parse_manifest
from signer.oci.repository import DEFAULT_MAX_BLOB_BYTES, MAX_MANIFEST_BYTES, PushedManifest
from signer.references import is_loopback_host

USER_AGENT = "modelsign/0.1"
_MANIFEST_ACCEPT = ", ".join(mt.MANIFEST_TYPES)
_RETRY_STATUSES = {429, 500, 502, 503, 504}
_IDEMPOTENT = {"GET", "HEAD", "PUT"}
_MAX_REDIRECTS = 5
# OCI error codes with which a registry that has the referrers API says "nothing is there"
# (Quay answers 404 NAME_UNKNOWN for an unknown repository, 400 for an unknown digest).
_NOTHING_REFERS = {"NAME_UNKNOWN", "MANIFEST_UNKNOWN", "BLOB_UNKNOWN", "DIGEST_INVALID", "NAME_INVALID"}
_MAX_PAGES = 1000
_MAX_ERROR_BODY_BYTES = 64 * 1024
UPLOAD_CHUNK_BYTES = 8 * 1024 * 1024
MAX_RETRY_AFTER_SECONDS = 300.0  # a registry's Retry-After is honoured up to this
THROTTLE_SECONDS = 1.0  # a 429 without Retry-After: leave the registry alone this long


class ThrottleBoard(Protocol):
    """Backoff notes shared by processes (wall-clock times)."""

    def throttled_until(self, registry: str) -> float | None: ...

    def note_throttled(self, registry: str, until: float) -> None: ...


_throttled: dict[str, float] = {}  # registry -> wall-clock time it asked to be left alone until (this process)
_board: ThrottleBoard | None = None


def set_throttle_board(board: ThrottleBoard | None) -> None:
    """Share 429 backoff notes with other processes through `board` (None: this process only)."""
    global _board
    _board = board


def throttled_until(registry: str) -> float | None:
    """Until when `registry` asked (a 429) to be left alone, noted here or by another process."""
    until = _throttled.get(registry)
    board = _board
    if board is not None and (until is None or until <= time.time()):
        until = board.throttled_until(registry)
    return until if until is not None and until > time.time() else None


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_SECONDS)
    try:
        from email.utils import parsedate_to_datetime

        return max(0.0, min(parsedate_to_datetime(value).timestamp() - time.time(), MAX_RETRY_AFTER_SECONDS))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def note_throttled(registry: str, retry_after: str | None) -> float:
    """Remember a 429 for this process (and the board): the time until which to wait."""
    asked = _retry_after_seconds(retry_after)
    until = time.time() + (THROTTLE_SECONDS if asked is None else asked)
    _throttled[registry] = max(until, _throttled.get(registry, 0.0))
    board = _board
    if board is not None:
        board.note_throttled(registry, until)
    return until


@dataclass(frozen=True)
class RegistryOptions:
    insecure_registries: tuple[str, ...] = ()  # host[:port] globs allowed over plain HTTP / unverified TLS
    ca_file: Path | None = None
    timeout_seconds: float = 30.0
    connect_timeout_seconds: float = 5.0
    retries: int = 3
    backoff_seconds: float = 0.25
    docker_config: Path | None = None
    unreachable_pause_seconds: float = 5.0  # after a timeout or refused connection, fail fast for this long

    def is_insecure(self, registry: str) -> bool:
        return any(fnmatch.fnmatchcase(registry, pattern) for pattern in self.insecure_registries)


@dataclass
class _Operation:
    """One registry request with its retries: the time it may take (the registry timeout, or
    the budget's deadline if sooner) and the attempts made, for timeouts and messages."""

    started: float
    deadline: float
    budget: Budget | None
    attempts: int = 0

    @classmethod
    def start(cls, timeout_seconds: float) -> _Operation:
        now = time.monotonic()
        return cls(started=now, deadline=now + timeout_seconds, budget=current_budget())

    def remaining(self) -> float:
        deadline = self.deadline
        if self.budget is not None and self.budget.deadline is not None:
            deadline = min(deadline, self.budget.deadline)
        return deadline - time.monotonic()

    def timeout(self, connect_seconds: float) -> httpx.Timeout:
        """Per-attempt httpx timeouts: nothing may outlast the operation (sync reads cannot be
        interrupted from another thread, so this is what stops them)."""
        left = max(0.01, self.remaining())
        return httpx.Timeout(left, connect=min(connect_seconds, left))

    def summary(self) -> str:
        return f"{self.attempts} attempt{'s' if self.attempts != 1 else ''} over {time.monotonic() - self.started:.1f}s"


@dataclass
class _AuthState:
    credentials: Credentials | None
    credentials_loaded: bool = False
    basic: bool = False
    tokens: dict[str, str] = field(default_factory=dict)  # scope -> bearer token


class RegistryClient:
    """One client per registry host: transport, scheme detection and auth state."""

    def __init__(self, registry: str, options: RegistryOptions | None = None, *, api_host: str | None = None) -> None:
        self.registry = registry
        self.api_host = api_host or registry
        self.options = options or RegistryOptions()
        self._insecure = self.options.is_insecure(registry)
        self._may_use_http = self._insecure or is_loopback_host(registry)
        self._base_url: str | None = None
        self._lock = threading.Lock()
        self._auth = _AuthState(credentials=None)
        self._referrers_supported: bool | None = None
        self._scheme_lock = threading.Lock()
        self._unreachable: tuple[float, RegistryError] | None = None  # (since, first error)
        self._upload_locks = [threading.Lock() for _ in range(64)]
        self._http = httpx.Client(
            verify=self._ssl_context(),
            timeout=httpx.Timeout(self.options.timeout_seconds, connect=self.options.connect_timeout_seconds),
            headers={"User-Agent": USER_AGENT},
            follow_redirects=False,
        )

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if self.options.ca_file is not None:
            try:
                context.load_verify_locations(cafile=str(self.options.ca_file))
            except (OSError, ssl.SSLError) as exc:
                raise RegistryError(f"cannot load CA bundle {self.options.ca_file}: {exc}", hint="pass a PEM file of CA certificates to --ca-file") from None
        if self._insecure:
            # Only for hosts the user explicitly listed with --insecure-registry.
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def close(self) -> None:
        self._http.close()

    def repository(self, name: str) -> RegistryRepository:
        return RegistryRepository(self, name)

    # -- transport -------------------------------------------------------------------

    def _base(self, operation: _Operation | None = None) -> str:
        if self._base_url is not None:
            return self._base_url
        operation = operation or _Operation.start(self.options.timeout_seconds)
        # One detection at a time; a caller does not wait on it past its own time.
        if not self._scheme_lock.acquire(timeout=max(0.0, operation.remaining())):
            raise self._timeout_error(operation)
        try:
            if self._base_url is None:
                self._base_url = self._detect_scheme(operation)
            return self._base_url
        finally:
            self._scheme_lock.release()

    def _detect_scheme(self, operation: _Operation) -> str:
        https = f"https://{self.api_host}"
        if not self._may_use_http:
            return https
        operation.attempts += 1
        # At most half the time left: a host that never answers still leaves the real request its share.
        share = max(0.01, operation.remaining() / 2)
        try:
            self._http.get(f"{https}/v2/", timeout=httpx.Timeout(share, connect=min(self.options.connect_timeout_seconds, share)))
            return https
        except httpx.ConnectError as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                raise self._connect_error(exc, operation) from None
            # The host does not speak TLS (or refused it): Docker falls back to HTTP here.
            return f"http://{self.api_host}"
        except (httpx.ReadTimeout, httpx.WriteTimeout):
            return https  # the TLS handshake worked: it speaks TLS, it is just slow
        except httpx.TransportError:
            return f"http://{self.api_host}"

    def _connect_error(self, exc: Exception, operation: _Operation) -> ModelsignError:
        text = str(exc) or type(exc).__name__
        if "CERTIFICATE_VERIFY_FAILED" in text:
            return RegistryError(
                f"TLS certificate of registry {self.registry} is not trusted: {text}",
                hint="pass the registry's CA with --ca-file, or (only for test registries) --insecure-registry " + self.registry,
            )
        if isinstance(exc, httpx.TimeoutException) or (operation.budget is not None and operation.budget.remaining() == 0):
            return self._timeout_error(operation)
        return RegistryError(
            f"cannot connect to registry {self.registry}: {text} ({operation.summary()})",
            hint="check the registry address and that it is running and reachable from here",
        )

    def _timeout_error(self, operation: _Operation) -> ModelsignError:
        """The caller's deadline if that is what ended the wait, else the registry's own timeout."""
        if operation.budget is not None and operation.budget.remaining() == 0:
            return DeadlineExceeded(f"the deadline passed while waiting for registry {self.registry} ({operation.summary()})", budget=operation.budget)
        return RegistryError(
            f"registry {self.registry} did not answer within {self.options.timeout_seconds:g}s ({operation.summary()})",
            hint="check the registry is up and reachable; raise --registry-timeout for slow links",
        )

    def _wait_if_throttled(self, operation: _Operation) -> None:
        """A registry that answered 429 (to any worker) is not contacted before the time it asked
        for: wait if that fits in this request's time, else fail at once."""
        until = throttled_until(self.registry)
        if until is None:
            return
        wait = until - time.time()
        if wait < operation.remaining():
            time.sleep(max(0.0, wait))
            return
        raise RegistryError(f"registry {self.registry} answered 429 Too Many Requests and asked modelsign to wait {wait:.1f}s more, longer than "
                            f"this request may take ({max(0.0, operation.remaining()):.1f}s); it was not contacted again",
                            hint="the registry is rate-limiting: raise its limits, pull through a mirror, or turn on the shared "
                            "verification cache so replicas verify each digest once")

    def _fail_fast(self) -> None:
        reason = self.unreachable()
        if reason is not None:
            assert self._unreachable is not None
            raise RegistryError(reason, hint=self._unreachable[1].hint)

    def unreachable(self) -> str | None:
        """Why this registry is not contacted right now (it timed out or refused moments ago), or None."""
        down = self._unreachable
        if down is None:
            return None
        since, error = down
        ago = time.monotonic() - since
        if ago >= self.options.unreachable_pause_seconds:
            return None
        return f"{error.message}, {ago:.1f}s ago; not contacted again for {self.options.unreachable_pause_seconds:g}s after that"

    def _mark_unreachable(self, error: ModelsignError) -> ModelsignError:
        """Remember a registry's own failure to answer (not a caller's deadline, not a TLS trust problem)."""
        if isinstance(error, RegistryError) and "CERTIFICATE_VERIFY_FAILED" not in error.message:
            self._unreachable = (time.monotonic(), error)
        return error

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        scope: str,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        params: dict[str, str] | None = None,
        stream: bool = False,
        follow_redirects: bool = False,
        retry: bool = True,
    ) -> httpx.Response:
        """Send a request with auth, retries and error mapping, within `timeout_seconds` in all
        (and the budget's deadline). Caller closes streamed responses and reads them with
        `read_body`/`iter_body`.

        Absolute URLs (upload locations, pagination links, redirects) come from the server:
        credentials go only to the registry's own origin, and plain HTTP only where allowed."""
        self._fail_fast()
        operation = _Operation.start(self.options.timeout_seconds)
        doing = f"about to send {method} {_path_of(path_or_url)} to registry {self.registry}"
        if operation.budget is not None:
            operation.budget.check_deadline(doing)
        self._base(operation)
        url = self._checked_url(path_or_url)
        attempts = 1 + (self.options.retries if retry and method in _IDEMPOTENT else 0)
        reauthenticated = False
        tries = 0
        while True:
            tries += 1
            if operation.budget is not None:
                operation.budget.check_deadline(doing)
            if operation.remaining() <= 0:
                raise self._mark_unreachable(self._timeout_error(operation))
            self._wait_if_throttled(operation)
            operation.attempts += 1
            try:
                response = self._send(method, url, scope, headers, content, params, stream, operation)
                if follow_redirects:
                    response = self._follow_redirects(method, response, headers, stream, operation)
            except httpx.TransportError as exc:
                if tries < attempts and "CERTIFICATE_VERIFY_FAILED" not in str(exc) and self._backoff(tries, None, operation):
                    continue
                raise self._mark_unreachable(self._connect_error(exc, operation)) from None
            self._unreachable = None
            if response.status_code == 401 and not self._same_origin(str(response.request.url)):
                # A redirect target (blob storage) asks for credentials: its challenge names a
                # token service of its choosing, and this registry's credentials go nowhere but here.
                response.close()
                raise AuthenticationError(
                    f"registry {self.registry} redirected {method} {_path_of(url)} to {_origin(str(response.request.url))}, which asked for "
                    "credentials; modelsign sends a registry's credentials only to the registry itself",
                    hint="the registry's storage redirect should carry its own authorisation (a signed URL); check the registry's storage settings",
                    status=401,
                )
            if response.status_code == 401 and not reauthenticated:
                challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
                response.close()
                reauthenticated = True
                if challenge is not None and self._answer_challenge(challenge, scope, operation):
                    tries -= 1
                    continue
                raise self._auth_error(method, url, 401)
            if response.status_code == 429:
                note_throttled(self.registry, response.headers.get("Retry-After"))
            if response.status_code in _RETRY_STATUSES and tries < attempts and self._backoff(tries, response.headers.get("Retry-After"), operation):
                response.close()
                continue
            return response

    def _send(self, method: str, url: str, scope: str, headers: dict[str, str] | None, content: bytes | None, params: dict[str, str] | None,
              stream: bool, operation: _Operation) -> httpx.Response:
        request_headers = dict(headers or {})
        authorization = self._authorization(scope) if self._same_origin(url) else None
        if authorization:
            request_headers["Authorization"] = authorization
        request = self._http.build_request(method, url, headers=request_headers, content=content, params=params,
                                           timeout=operation.timeout(self.options.connect_timeout_seconds))
        return self._http.send(request, stream=stream)

    def _follow_redirects(self, method: str, response: httpx.Response, headers: dict[str, str] | None, stream: bool, operation: _Operation) -> httpx.Response:
        """Blob downloads may redirect to storage; never downgrade to plain HTTP, never forward
        our credentials to another origin (the digest check guards the content itself)."""
        for _ in range(_MAX_REDIRECTS):
            if not response.is_redirect or "Location" not in response.headers:
                return response
            target = urljoin(str(response.request.url), response.headers["Location"])
            response.close()
            if str(response.request.url).startswith("https://") and target.startswith("http://"):
                raise RegistryError(f"registry {self.registry} redirected to plain HTTP ({target}); refusing the downgrade")
            response = self._send(method, self._checked_url(target), "", headers, None, None, stream, operation)
        raise RegistryError(f"registry {self.registry} redirected more than {_MAX_REDIRECTS} times")

    def read_body(self, response: httpx.Response, max_bytes: int, what: str) -> bytes:
        """A streamed body of at most `max_bytes` (refused by its declared length before reading)."""
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise TooLargeError(f"{what} is {int(declared)} bytes, more than the {max_bytes} allowed")
        chunks: list[bytes] = []
        total = 0
        for chunk in self.iter_body(response, what):
            total += len(chunk)
            if total > max_bytes:
                raise TooLargeError(f"{what} is larger than the {max_bytes} bytes allowed")
            chunks.append(chunk)
        return b"".join(chunks)

    def iter_body(self, response: httpx.Response, what: str, chunk_size: int | None = None) -> Iterator[bytes]:
        """Body chunks, each charged to the budget in effect (whose deadline stops the read)."""
        budget = current_budget()
        for chunk in response.iter_bytes(chunk_size):
            if budget is not None:
                budget.charge_bytes(len(chunk), f"reading {what}")
            yield chunk

    def _checked_url(self, path_or_url: str) -> str:
        if not path_or_url.startswith(("http://", "https://")):
            if "://" in path_or_url:
                raise RegistryError(f"registry {self.registry} sent an unsupported URL {path_or_url!r}")
            return self._base() + path_or_url
        try:
            parsed = httpx.URL(path_or_url)
        except httpx.InvalidURL:
            raise RegistryError(f"registry {self.registry} sent a malformed URL {path_or_url!r}") from None
        host = parsed.netloc.decode("ascii", errors="replace")
        if parsed.scheme == "http" and not (self._same_origin(path_or_url) or self._http_allowed(host)):
            raise RegistryError(f"registry {self.registry} pointed us at plain-HTTP URL {path_or_url}; refusing it", hint=f"use --insecure-registry {host} only if that host is trusted")
        return path_or_url

    def _same_origin(self, url: str) -> bool:
        base = httpx.URL(self._base())
        other = httpx.URL(url)
        return (other.scheme, other.netloc) == (base.scheme, base.netloc)

    def _http_allowed(self, host: str) -> bool:
        return is_loopback_host(host) or self.options.is_insecure(host)

    def _backoff(self, attempt: int, retry_after: str | None, operation: _Operation) -> bool:
        """Sleep before another attempt if one still fits in the operation; False if none does."""
        delay = self.options.backoff_seconds * (2 ** (attempt - 1)) * (1 + random.random() / 2)
        asked = _retry_after_seconds(retry_after)
        if asked is not None:
            delay = max(delay, asked)
        if delay >= operation.remaining():
            return False
        time.sleep(delay)
        return True

    # -- auth ------------------------------------------------------------------------

    def _credentials(self) -> Credentials | None:
        with self._lock:
            if not self._auth.credentials_loaded:
                self._auth.credentials = load_credentials(self.registry, self.options.docker_config)
                self._auth.credentials_loaded = True
            return self._auth.credentials

    def _authorization(self, scope: str) -> str | None:
        with self._lock:
            token = self._auth.tokens.get(scope) or self._auth.tokens.get("*")
            basic = self._auth.basic
            credentials = self._auth.credentials
        if token:
            return f"Bearer {token}"
        if basic and credentials:
            return basic_header(credentials)
        return None

    def _answer_challenge(self, challenge: Challenge, scope: str, operation: _Operation) -> bool:
        credentials = self._credentials()
        if challenge.scheme == "basic":
            if credentials is None or credentials.username is None:
                return False
            with self._lock:
                self._auth.basic = True
            return True
        if challenge.scheme != "bearer" or "realm" not in challenge.params:
            return False
        # Ask for what this request needs and what the server says it needs (Docker merges them).
        scopes = sorted({s for s in (scope, challenge.params.get("scope", "")) if s})
        token = self._fetch_token(challenge, scopes, credentials, operation)
        with self._lock:
            self._auth.tokens[scope] = token
        return True

    def _fetch_token(self, challenge: Challenge, scopes: list[str], credentials: Credentials | None, operation: _Operation | None = None) -> str:
        realm = challenge.params["realm"]
        try:
            parsed = httpx.URL(realm)
        except httpx.InvalidURL:
            raise AuthenticationError(f"registry {self.registry} names a malformed token realm {realm!r}") from None
        if parsed.scheme != "https" and not (parsed.scheme == "http" and self._http_allowed(parsed.netloc.decode("ascii", errors="replace"))):
            raise AuthenticationError(
                f"registry {self.registry} wants credentials sent to {realm}, which is not HTTPS; refusing",
                hint="only loopback or --insecure-registry token services may use plain HTTP",
            )
        query = httpx.QueryParams({"service": challenge.params.get("service", ""), "scope": scopes})
        timeout = (operation or _Operation.start(self.options.timeout_seconds)).timeout(self.options.connect_timeout_seconds)
        try:
            if credentials and credentials.identity_token:
                response = self._http.post(
                    realm,
                    data={"service": challenge.params.get("service", ""), "scope": " ".join(scopes), "grant_type": "refresh_token",
                          "refresh_token": credentials.identity_token, "client_id": "modelsign"},
                    timeout=timeout,
                )
            else:
                headers = {"Authorization": basic_header(credentials)} if credentials and credentials.username else {}
                response = self._http.get(realm, params=query, headers=headers, timeout=timeout)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise RegistryError(f"cannot reach the token service {realm} of registry {self.registry}: {exc}") from None
        if response.status_code in (401, 403):
            raise AuthenticationError(
                f"token service {realm} refused the credentials for registry {self.registry}",
                hint=f"run `docker login {self.registry}` (or set DOCKER_CONFIG) with an account that may access {' '.join(scopes) or 'this repository'}",
                status=response.status_code,
            )
        if response.status_code != 200:
            raise RegistryError(f"token service {realm} of registry {self.registry} answered HTTP {response.status_code}", status=response.status_code)
        try:
            body = load_json(response.content, what=f"answer of token service {realm}")
        except FormatError:
            body = None
        token = (body.get("token") or body.get("access_token")) if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"token service {realm} of registry {self.registry} returned no token")
        return token

    def _auth_error(self, method: str, url: str, status: int) -> AuthenticationError:
        has_credentials = self._credentials() is not None
        return AuthenticationError(
            f"registry {self.registry} refused {method} {_path_of(url)} (HTTP {status}, "
            + ("credentials were rejected or lack permission)" if has_credentials else "no credentials found)"),
            hint=f"run `docker login {self.registry}` or point DOCKER_CONFIG at a config.json with credentials for it",
            status=status,
        )

    def error_for(self, response: httpx.Response, what: str) -> RegistryError:
        status = response.status_code
        detail = self._error_detail(response)
        if status in (401, 403):
            return self._auth_error(response.request.method, str(response.request.url), status)
        if status == 404:
            return NotFoundError(f"{what} not found in registry {self.registry}{detail}", status=404)
        return RegistryError(
            f"registry {self.registry} answered HTTP {status} for {what}{detail}",
            hint="the registry failed; retry later or check its logs" if status >= 500 else None,
            status=status,
        )

    def _error_detail(self, response: httpx.Response) -> str:
        """The first error of a registry's JSON error body (only its first 64 KiB are read)."""
        errors = self.error_entries(response)
        if errors:
            return f": {str(errors[0].get('code', ''))[:100]} {str(errors[0].get('message', ''))[:300]}".rstrip()
        return ""

    def error_entries(self, response: httpx.Response) -> list[dict[str, Any]]:
        """The `errors` of an OCI distribution error body, or [] if it is not one."""
        head = b""
        try:
            for chunk in self.iter_body(response, "registry error body"):
                head += chunk
                if len(head) >= _MAX_ERROR_BODY_BYTES:
                    break
            body = load_json(head[:_MAX_ERROR_BODY_BYTES], what="registry error body")
        except (FormatError, httpx.HTTPError, httpx.StreamError):
            return []
        errors = body.get("errors") if isinstance(body, dict) else None
        return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []

    @contextlib.contextmanager
    def upload_lock(self, repository: str, digest: str) -> Iterator[None]:
        # Striped locks: bounded memory, and the same blob always maps to the same lock.
        with self._upload_locks[hash((repository, digest)) % len(self._upload_locks)]:
            yield

    # -- referrers capability ----------------------------------------------------------

    @property
    def referrers_supported(self) -> bool | None:
        return self._referrers_supported

    def note_referrers_support(self, supported: bool) -> None:
        self._referrers_supported = supported


def _origin(url: str) -> str:
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.netloc.decode('ascii', errors='replace')}"


def _path_of(url: str) -> str:
    return "/" + url.split("://", 1)[-1].split("/", 1)[-1] if "://" in url else url


class RegistryRepository:
    """`Repository` over the distribution API for one repository name."""

    def __init__(self, client: RegistryClient, name: str) -> None:
        self.client = client
        self.name = name

    @property
    def display_name(self) -> str:
        return f"{self.client.registry}/{self.name}"

    def _scope(self, push: bool = False) -> str:
        return f"repository:{self.name}:{'pull,push' if push else 'pull'}"

    # -- manifests -----------------------------------------------------------------

    def resolve(self, reference: str) -> Descriptor:
        response = self.client.request(
            "HEAD", f"/v2/{self.name}/manifests/{reference}", scope=self._scope(), headers={"Accept": _MANIFEST_ACCEPT}
        )
        if response.status_code == 200:
            digest = response.headers.get("Docker-Content-Digest", "")
            media_type = response.headers.get("Content-Type", "").split(";", 1)[0].strip()
            size = int(response.headers.get("Content-Length", "0") or 0)
            if is_digest(digest) and media_type in mt.MANIFEST_TYPES and (not is_digest(reference) or digest == reference):
                return Descriptor(media_type=media_type, digest=digest, size=size)
        elif response.status_code != 404 and response.status_code not in (405, 501):
            raise self.client.error_for(response, f"manifest {self.display_name}:{reference}")
        # No usable HEAD answer: GET the manifest and hash it ourselves.
        manifest = self.fetch_manifest(reference)
        if manifest is None:
            raise NotFoundError(
                f"{self.display_name}:{reference} not found in registry {self.client.registry}",
                hint="check the repository and tag, or push the artifact first",
                status=404,
            )
        return Descriptor(media_type=manifest.media_type, digest=manifest.digest, size=len(manifest.raw), artifact_type=manifest.artifact_type)

    def fetch_manifest(self, reference: str, *, max_bytes: int = MAX_MANIFEST_BYTES) -> Manifest | None:
        what = f"manifest {self.display_name}{'@' if is_digest(reference) else ':'}{reference}"
        response = self.client.request(
            "GET", f"/v2/{self.name}/manifests/{reference}", scope=self._scope(), headers={"Accept": _MANIFEST_ACCEPT}, stream=True
        )
        try:
            if response.status_code == 404:
                return None
            if response.status_code != 200:
                raise self.client.error_for(response, what)
            raw = self.client.read_body(response, max_bytes, what)
        finally:
            response.close()
        if is_digest(reference):
            check_content(raw, reference, what=what)
            digest = reference
        else:
            digest = sha256_digest(raw)
            header = response.headers.get("Docker-Content-Digest", "")
            if is_digest(header) and header != digest_of(raw, header.split(":", 1)[0]):
                raise FormatError(f"{what}: registry says digest {header} but the bytes hash differently")
        return parse_manifest(raw, digest=digest, content_type=response.headers.get("Content-Type"), what=what)

    def push_manifest(self, data: bytes, media_type: str, *, tag: str | None = None) -> PushedManifest:
        digest = sha256_digest(data)
        reference = tag or digest
        response = self.client.request(
            "PUT",
            f"/v2/{self.name}/manifests/{reference}",
            scope=self._scope(push=True),
            headers={"Content-Type": media_type},
            content=data,
        )
        if response.status_code not in (200, 201, 202):
            raise self.client.error_for(response, f"pushing manifest {self.display_name}:{reference}")
        returned = response.headers.get("Docker-Content-Digest")
        if returned and returned != digest:
            raise RegistryError(f"registry {self.client.registry} stored manifest as {returned}, expected {digest}")
        return PushedManifest(digest=digest, subject_indexed=bool(response.headers.get("OCI-Subject")))

    # -- blobs -----------------------------------------------------------------------

    def fetch_blob(self, digest: str, *, max_bytes: int = DEFAULT_MAX_BLOB_BYTES) -> bytes:
        what = f"blob {digest} in {self.display_name}"
        response = self.client.request("GET", f"/v2/{self.name}/blobs/{digest}", scope=self._scope(), stream=True, follow_redirects=True)
        try:
            if response.status_code != 200:
                raise self.client.error_for(response, what)
            data = self.client.read_body(response, max_bytes, what)
        finally:
            response.close()
        check_content(data, digest, what=what)
        return data

    def fetch_blob_to_file(self, digest: str, path: Path, *, max_bytes: int, advance: Callable[[int], None] | None = None) -> None:
        what = f"blob {digest} in {self.display_name}"
        response = self.client.request("GET", f"/v2/{self.name}/blobs/{digest}", scope=self._scope(), stream=True, follow_redirects=True)
        try:
            if response.status_code != 200:
                raise self.client.error_for(response, what)
            write_checked(self.client.iter_body(response, what, UPLOAD_CHUNK_BYTES), path, digest, max_bytes, what, advance)
        finally:
            response.close()

    def has_blob(self, digest: str) -> bool:
        response = self.client.request("HEAD", f"/v2/{self.name}/blobs/{digest}", scope=self._scope(push=True), follow_redirects=True)
        if response.status_code == 200:
            return True
        if response.status_code == 404:
            return False
        raise self.client.error_for(response, f"blob {digest} in {self.display_name}")

    def push_blob(self, data: bytes) -> str:
        digest = sha256_digest(data)
        # One upload per blob at a time from this process: concurrent uploads of the same
        # content (e.g. the empty config every referrer shares) race inside some registries.
        with self.client.upload_lock(self.name, digest):
            if self.has_blob(digest):
                return digest
            return self._upload(data, digest)

    def _upload(self, data: bytes, digest: str) -> str:
        location = self._start_upload()
        response = self.client.request(
            "PUT",
            _with_query(location, {"digest": digest}),
            scope=self._scope(push=True),
            headers={"Content-Type": "application/octet-stream"},
            content=data,
            retry=False,
        )
        if response.status_code not in (201, 204):
            raise self.client.error_for(response, f"uploading blob {digest} to {self.display_name}")
        return digest

    def push_blob_file(self, path: Path) -> str:
        digest = _file_sha256(path)
        if self.has_blob(digest):
            return digest
        location = self._start_upload()
        offset = 0
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(UPLOAD_CHUNK_BYTES), b""):
                response = self.client.request(
                    "PATCH",
                    location,
                    scope=self._scope(push=True),
                    headers={"Content-Type": "application/octet-stream", "Content-Range": f"{offset}-{offset + len(chunk) - 1}"},
                    content=chunk,
                    retry=False,
                )
                if response.status_code != 202:
                    raise self.client.error_for(response, f"uploading chunk at {offset} of {path.name} to {self.display_name}")
                location = self._absolute(response.headers.get("Location", location))
                offset += len(chunk)
        response = self.client.request("PUT", _with_query(location, {"digest": digest}), scope=self._scope(push=True), retry=False)
        if response.status_code not in (201, 204):
            raise self.client.error_for(response, f"finishing upload of {path.name} to {self.display_name}")
        return digest

    def _start_upload(self) -> str:
        response = self.client.request("POST", f"/v2/{self.name}/blobs/uploads/", scope=self._scope(push=True))
        if response.status_code != 202 or "Location" not in response.headers:
            raise self.client.error_for(response, f"starting a blob upload to {self.display_name}")
        return self._absolute(response.headers["Location"])

    def _absolute(self, location: str) -> str:
        return urljoin(self.client._base() + "/", location)

    # -- tags and referrers ------------------------------------------------------------

    def list_tags(self, *, page_size: int = 1000) -> list[str]:
        tags: list[str] = []
        seen: set[str] = set()
        url: str | None = f"/v2/{self.name}/tags/list?n={page_size}"
        while url and url not in seen and len(seen) < _MAX_PAGES:
            seen.add(url)
            response = self.client.request("GET", url, scope=self._scope())
            if response.status_code == 404:
                return tags
            if response.status_code != 200:
                raise self.client.error_for(response, f"tag list of {self.display_name}")
            body = load_json(response.content, what=f"tag list of {self.display_name}")
            page = body.get("tags") if isinstance(body, dict) else None
            tags.extend(t for t in page or [] if isinstance(t, str))
            url = _next_link(response.headers.get("Link"))
        return tags

    def referrers_api(self, digest: str, artifact_type: str | None = None) -> list[Descriptor] | None:
        if self.client.referrers_supported is False:
            return None
        found: list[Descriptor] = []
        seen: set[str] = set()
        url: str | None = f"/v2/{self.name}/referrers/{digest}" + (f"?{urlencode({'artifactType': artifact_type})}" if artifact_type else "")
        while url and url not in seen and len(seen) < _MAX_PAGES:
            seen.add(url)
            what = f"referrers of {digest} in {self.display_name}"
            response = self.client.request("GET", url, scope=self._scope(), stream=True)
            try:
                status, content_type = response.status_code, response.headers.get("Content-Type", "")
                if status in (400, 404) and {str(e.get("code")) for e in self.client.error_entries(response)} & _NOTHING_REFERS:
                    # The API answered in its own error format: this repository or subject is
                    # unknown, so nothing refers to it. Not a sign the API is missing.
                    self.client.note_referrers_support(True)
                    return found
                if status in (400, 404, 405, 501) or (status == 200 and not content_type.startswith(mt.OCI_INDEX)):
                    if self.client.referrers_supported:
                        # Falling back to tags now could hide referrers only the API lists (a
                        # revocation, a newer scan): fail instead.
                        raise RegistryError(f"registry {self.client.registry} served the referrers API before but answered HTTP {status} "
                                            f"({content_type or 'no content type'}) for {what}", status=status,
                                            hint="retry; if it persists, the registry or a proxy in front of it is misbehaving")
                    if not found:
                        self.client.note_referrers_support(False)
                        return None
                    break
                if status != 200:
                    raise self.client.error_for(response, what)
                raw = self.client.read_body(response, MAX_MANIFEST_BYTES, what)
            finally:
                response.close()
            self.client.note_referrers_support(True)
            found += parse_manifest(raw, digest=sha256_digest(raw), what=what).manifests
            url = _next_link(response.headers.get("Link"))
        # Registries may ignore the artifactType filter; apply it ourselves.
        return [d for d in found if artifact_type is None or d.artifact_type == artifact_type]


def _with_query(url: str, query: dict[str, str]) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(query)


def _next_link(header: str | None) -> str | None:
    if not header or 'rel="next"' not in header:
        return None
    start, end = header.find("<"), header.find(">")
    return header[start + 1:end] if 0 <= start < end else None


def _file_sha256(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(UPLOAD_CHUNK_BYTES), b""):
            hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()

