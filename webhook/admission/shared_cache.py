"""A verification cache shared by every webhook process through Redis (opt-in).

Layered on the per-process SingleFlightCache: a lookup that misses locally reads Redis; a
miss there takes a lock (SET NX with the lookup's deadline as expiry) so that one process of
the whole deployment verifies a digest while the others wait for its entry (polling, within
their own deadline). Entries are MACed (HMAC-SHA256 under a key from the webhook's Secret)
over the Redis key and the entry, and carry their own expiry: a planted, altered, copied,
stale or unreadable entry is a miss, never an allow. Redis down, slow or refusing: the
process verifies on its own (the per-process cache still single-flights) and leaves Redis
alone for `retry_seconds`, so a dead Redis costs one connect timeout, not one per admission.

Also a board for registry backoff notes (429 / Retry-After), so that a registry that asked
one process to wait is not hammered by the others (signer's ThrottleBoard protocol).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import hmac
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Hashable

from signer import UsageError
from webhook.admission.cache import SingleFlightCache
from webhook.admission.report_codec import ReportCodecError, decode_reports, encode_reports

ENV_URL = "MODELSIGN_SHARED_CACHE_URL"
ENV_KEY_FILE = "MODELSIGN_SHARED_CACHE_KEY_FILE"
MIN_KEY_BYTES = 32
_MAC_BYTES = 32
_NAMESPACE = "modelsign:v1"
STATEMENT_DAYS = 400  # how long a remembered statement outlives its last sighting (longer than any approval)
MAX_STATEMENT_FIELDS = 64  # a digest's remembered statements: far more than any real one has
MAX_STATEMENT_BYTES = 16384  # one remembered statement, sealed, on average (a signer's name may be long)
# A digest's remembered statements, read in Redis with bounds (checked before anything is
# copied): nil for a key that is not a hash, holds more fields than any real digest does, or
# more bytes than they could fill (1 MiB), so a planted giant is neither shipped nor held.
_BOUNDED_HASH = """
if redis.call('type', KEYS[1]).ok ~= 'hash' then
  if redis.call('exists', KEYS[1]) == 1 then return false end
  return {}
end
if redis.call('hlen', KEYS[1]) > tonumber(ARGV[1]) then return false end
local used = redis.call('memory', 'usage', KEYS[1], 'samples', 0)
if used and used > tonumber(ARGV[1]) * tonumber(ARGV[2]) then return false end
return redis.call('hgetall', KEYS[1])
"""
# Compare-and-delete: only the holder's token releases a lock (another's may have replaced it).
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


@dataclass
class SharedCacheStats:
    hits: int = 0  # a valid entry another process (or this one) wrote
    misses: int = 0  # no valid entry: this process verified (or waited for one that did)
    waits: int = 0  # waited for another process's verification of the same digest
    errors: int = 0  # Redis failed or was slow: verified on its own
    rejected: int = 0  # entries that failed authentication or decoding (counted as misses too)


class SharedVerificationCache:
    """Drop-in for SingleFlightCache in the evidence gatherer (same get_or_compute)."""

    def __init__(self, client: Any, secret: bytes, local: SingleFlightCache, *, poll_seconds: float = 0.02, retry_seconds: float = 5.0,
                 wall_clock: Callable[[], float] = time.time) -> None:
        if len(secret) < MIN_KEY_BYTES:
            raise UsageError(f"the shared cache key has {len(secret)} bytes; it needs at least {MIN_KEY_BYTES}",
                             hint="generate one with `head -c 32 /dev/urandom` into the webhook's Secret")
        self._client = client
        self._secret = secret
        self.local = local
        self._poll = poll_seconds
        self._retry = retry_seconds
        self._wall = wall_clock
        self._paused_until = 0.0  # monotonic: Redis failed moments ago
        self._hit = threading.local()
        self._lock = threading.Lock()
        self.shared_stats = SharedCacheStats()

    # -- the SingleFlightCache surface the pipeline and metrics use -------------------------

    @property
    def stats(self):  # noqa: ANN201 - the local CacheStats
        return self.local.stats

    def put(self, key: Hashable, value: Any, ttl_seconds: float) -> None:
        self.local.put(key, value, ttl_seconds)

    def peek(self, key: Hashable) -> Any:
        return self.local.peek(key)

    def clear(self) -> None:
        self.local.clear()

    def __len__(self) -> int:
        return len(self.local)

    def __bool__(self) -> bool:  # an empty cache is still the cache (`cache or default` must keep it)
        return True

    def get_or_compute(self, key: tuple[str, str, str], compute: Callable[[], Any], ttl: Callable[[Any], float], *,
                       wait_seconds: float | None = None) -> tuple[Any, bool]:
        deadline = time.monotonic() + (wait_seconds if wait_seconds is not None else 30.0)
        self._hit.value = False
        value, cached = self.local.get_or_compute(key, lambda: self._through_shared(key, compute, ttl, deadline), ttl, wait_seconds=wait_seconds)
        return value, cached or bool(getattr(self._hit, "value", False))

    # -- Redis ----------------------------------------------------------------------------

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self.shared_stats, name, getattr(self.shared_stats, name) + 1)

    def _available(self) -> bool:
        return time.monotonic() >= self._paused_until

    def _failed(self) -> None:
        self._count("errors")
        self._paused_until = time.monotonic() + self._retry

    @staticmethod
    def redis_key(key: tuple[str, str, str]) -> str:
        return f"{_NAMESPACE}:verify:" + hashlib.sha256(json.dumps(list(key)).encode()).hexdigest()

    def _mac(self, redis_key: str, body: bytes) -> bytes:
        return hmac.new(self._secret, redis_key.encode() + b"\0" + body, hashlib.sha256).digest()

    def seal(self, redis_key: str, key: tuple[str, str, str], value: Any, lifetime: float) -> bytes:
        body = json.dumps({"key": list(key), "expires": self._wall() + lifetime, "value": encode_reports(value)},
                          separators=(",", ":"), sort_keys=True, allow_nan=False).encode()
        return self._mac(redis_key, body) + body

    def authentic(self, redis_key: str, raw: Any) -> bytes | None:
        """The body of `raw` if it carries this deployment's MAC over the Redis key and the body."""
        if not isinstance(raw, bytes) or len(raw) <= _MAC_BYTES:
            return None
        body = raw[_MAC_BYTES:]
        return body if hmac.compare_digest(raw[:_MAC_BYTES], self._mac(redis_key, body)) else None

    def open(self, redis_key: str, key: tuple[str, str, str], raw: Any) -> Any | None:
        """The value of an authentic, fresh entry for `key`; None for anything else."""
        if not isinstance(raw, bytes) or len(raw) <= _MAC_BYTES:
            return None
        body = self.authentic(redis_key, raw)
        if body is None:
            self._count("rejected")
            return None
        try:
            entry = json.loads(body)
            if entry.get("key") != list(key) or not isinstance(entry.get("expires"), (int, float)) or entry["expires"] <= self._wall():
                return None
            return decode_reports(entry.get("value"))
        except (ValueError, ReportCodecError, AttributeError, TypeError, RecursionError):
            self._count("rejected")
            return None

    def _read(self, redis_key: str, key: tuple[str, str, str]) -> Any | None:
        return self.open(redis_key, key, self._client.get(redis_key))

    def _through_shared(self, key: tuple[str, str, str], compute: Callable[[], Any], ttl: Callable[[Any], float], deadline: float) -> Any:
        if not self._available():
            return compute()
        redis_key = self.redis_key(key)
        lock_key, token = redis_key + ":lock", os.urandom(16).hex()
        import redis  # the optional `shared-cache` extra; only imported when the shared cache is on

        try:
            value = self._read(redis_key, key)
            if value is not None:
                self._count("hits")
                self._hit.value = True
                return value
            self._count("misses")
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise concurrent.futures.TimeoutError()
                if self._client.set(lock_key, token, nx=True, px=max(1, int(left * 1000))):
                    break  # this process verifies
                self._count("waits")
                value = self._wait(redis_key, lock_key, key, deadline)
                if value is not None:
                    self._hit.value = True
                    return value
                # the lock went without an entry (the holder failed, or kept nothing): try to take it
        except redis.RedisError:
            self._failed()
            return compute()
        try:
            value = compute()
            lifetime = ttl(value)
            try:
                if lifetime > 0:
                    self._client.set(redis_key, self.seal(redis_key, key, value, lifetime), px=max(1, int(lifetime * 1000)))
            except redis.RedisError:
                self._failed()
            return value
        finally:
            try:
                self._client.eval(_RELEASE, 1, lock_key, token)
            except redis.RedisError:
                self._failed()

    def _wait(self, redis_key: str, lock_key: str, key: tuple[str, str, str], deadline: float) -> Any | None:
        """Poll for the holder's entry until it appears (its value), the lock goes (None), or
        the deadline (TimeoutError: the evidence gatherer reports the artifact as late)."""
        while time.monotonic() < deadline:
            value = self._read(redis_key, key)
            if value is not None:
                self._count("hits")
                return value
            if not self._client.exists(lock_key):
                return self._read(redis_key, key)  # written just before the lock went
            time.sleep(min(self._poll, max(0.0, deadline - time.monotonic())))
        raise concurrent.futures.TimeoutError()

    # -- registry backoff notes (signer's ThrottleBoard) -------------------------------------

    def _throttle_key(self, registry: str) -> str:
        return f"{_NAMESPACE}:throttle:" + hashlib.sha256(registry.encode()).hexdigest()

    def throttled_until(self, registry: str) -> float | None:
        """Wall-clock time until which `registry` asked to be left alone, if a process noted it."""
        if not self._available():
            return None
        import redis

        redis_key = self._throttle_key(registry)
        try:
            raw = self._client.get(redis_key)
        except redis.RedisError:
            self._failed()
            return None
        body = self.authentic(redis_key, raw)
        if body is None:
            return None
        try:
            until = float(body.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            return None
        return until if until > self._wall() else None

    def note_throttled(self, registry: str, until: float) -> None:
        if not self._available():
            return
        import redis

        redis_key = self._throttle_key(registry)
        body = repr(float(until)).encode("ascii")
        try:
            self._client.set(redis_key, self._mac(redis_key, body) + body, px=max(1, int((until - self._wall()) * 1000)))
        except redis.RedisError:
            self._failed()


def read_key_file(path: Path) -> bytes:
    try:
        secret = path.read_bytes().strip()
    except OSError as exc:
        raise UsageError(f"cannot read the shared cache key {path}: {exc.strerror}",
                         hint="mount the webhook Secret's shared-cache key there, or leave the shared cache off") from None
    return secret


def connect(url: str, *, timeout_seconds: float = 0.5) -> Any:
    """A Redis client whose every call gives up after `timeout_seconds` (then: verify alone)."""
    try:
        import redis
    except ImportError:
        raise UsageError("the shared cache needs the redis package", hint="pip install 'modelsign[shared-cache]'") from None
    try:
        return redis.Redis.from_url(url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds, retry_on_timeout=False)
    except ValueError as exc:
        raise UsageError(f"shared cache URL {url!r} is not a Redis URL: {exc}", hint="use redis://HOST:PORT/DB or rediss://...") from None


_CLIENTS: dict[tuple[str, str], Any] = {}
_CLIENTS_LOCK = threading.Lock()


@dataclass
class Recalled:
    """What Redis remembers for a digest: the statements, and the newest forget mark."""

    statements: list[dict[str, Any]]  # each with its `seenAt`
    forgotten_at: float = 0.0


class SharedStatements:
    """What StatementMemory remembers, shared by every replica (and kept across restarts)
    through the same Redis and key: per digest a hash with one field per denying statement and
    per signer's newest evaluation, each value MACed over the Redis key, its field and its body,
    which carries when a replica last saw the statement (`seenAt`, refreshed daily while seen).
    A value that does not authenticate, was last seen more than the keep period ago, or before
    the digest's forget mark (`modelsign webhook forget-statements`), is ignored; a replica that
    reads a newer mark drops its own memory of the digest too, and keeps the mark while it runs.
    So whoever can write to Redis can make replicas forget, never make them deny a digest they
    were not shown a statement for; a writer who deletes a mark can bring back an older sighting
    only for replicas started since (rotate the shared-cache key to forget everything). Reads
    are bounded in Redis itself: not a hash, too many fields or too many bytes is refused."""

    def __init__(self, cache: SharedVerificationCache, *, keep_seconds: float = STATEMENT_DAYS * 86400,
                 refresh_seconds: float = 86400.0) -> None:
        self._cache = cache
        self._keep = keep_seconds
        self._refresh = refresh_seconds

    @staticmethod
    def redis_key(digest: str) -> str:
        return f"{_NAMESPACE}:statements:" + hashlib.sha256(digest.encode()).hexdigest()

    @staticmethod
    def field(statement: dict[str, Any]) -> str:
        """One field per denial, one per signer's newest evaluation (a newer one replaces it), and
        the forget mark; short whatever the names (a signer's name is in the body)."""
        kind = statement.get("kind")
        if kind == "forgotten":
            return "forgotten"
        named = statement.get("id") if kind == "denial" else statement.get("signer")
        return f"{kind}:" + hashlib.sha256(str(named).encode()).hexdigest()[:32]

    def recall(self, digest: str) -> Recalled | None:
        """The authentic, current statements remembered for `digest`; None when Redis cannot be
        asked, or holds for it what no real digest does (then this replica uses its own memory)."""
        cache = self._cache
        if not cache._available():
            return None
        import redis

        redis_key = self.redis_key(digest)
        try:
            values = cache._client.eval(_BOUNDED_HASH, 1, redis_key, MAX_STATEMENT_FIELDS, MAX_STATEMENT_BYTES)
        except redis.RedisError:
            cache._failed()
            return None
        if values is None:  # not a hash, or too large: planted; the process keeps its own memory
            cache._count("rejected")
            return None
        opened = []
        for field, raw in zip(values[::2], values[1::2]):
            statement = self._open(redis_key, digest, field, raw)
            if statement is None:
                cache._count("rejected")
            else:
                opened.append(statement)
        forgotten = max((st["seenAt"] for st in opened if st.get("kind") == "forgotten"), default=0.0)
        oldest = cache._wall() - self._keep
        return Recalled([st for st in opened if st.get("kind") != "forgotten" and st["seenAt"] > max(forgotten, oldest)], forgotten)

    def remember(self, digest: str, statements: list[dict[str, str]], recalled: list[dict[str, Any]]) -> None:
        """Write what Redis lacks, and refresh what it last saw more than a day ago."""
        cache = self._cache
        now = cache._wall()
        seen = {self.field(st): st for st in recalled}
        due = [st for st in statements
               if self.field(st) not in seen or now - seen[self.field(st)]["seenAt"] > self._refresh
               or {k: v for k, v in seen[self.field(st)].items() if k != "seenAt"} != st]
        if not due or not cache._available():
            return
        self._write(digest, {self.field(st): {**st, "seenAt": now} for st in due})

    def forget(self, digest: str) -> int:
        """Drop what is remembered for `digest` and mark it forgotten now. Returns how many
        statements there were. Refused when values are there and none authenticates with this
        key (the wrong key file: replicas would not read the mark)."""
        import redis

        redis_key = self.redis_key(digest)
        client = self._cache._client
        try:
            values = client.eval(_BOUNDED_HASH, 1, redis_key, MAX_STATEMENT_FIELDS, MAX_STATEMENT_BYTES) or []
            genuine = [st for field, raw in zip(values[::2], values[1::2]) if (st := self._open(redis_key, digest, field, raw)) is not None]
            if values and not genuine:
                raise UsageError(f"none of the {len(values) // 2} value(s) remembered for {digest} authenticates with this key",
                                 hint="pass the webhook's own --shared-cache-key-file (the Secret the replicas mount)")
            client.delete(redis_key)
        except redis.RedisError as exc:
            raise UsageError(f"the shared cache could not be reached: {exc}", hint="check --shared-cache and that Redis is up") from None
        self._write(digest, {"forgotten": {"kind": "forgotten", "seenAt": self._cache._wall()}}, strict=True)
        return sum(1 for st in genuine if st.get("kind") != "forgotten")

    def _write(self, digest: str, fields: dict[str, dict[str, Any]], *, strict: bool = False) -> None:
        import redis

        redis_key = self.redis_key(digest)
        mapping = {field: self._seal(redis_key, digest, field, statement) for field, statement in fields.items()}
        try:
            pipe = self._cache._client.pipeline(transaction=False)
            pipe.hset(redis_key, mapping=mapping)
            pipe.expire(redis_key, int(self._keep))
            pipe.execute()
        except redis.RedisError as exc:
            if strict:
                raise UsageError(f"the shared cache could not be written: {exc}", hint="check --shared-cache and that Redis is up") from None
            self._cache._failed()

    def _seal(self, redis_key: str, digest: str, field: str, statement: dict[str, Any]) -> bytes:
        body = json.dumps({"digest": digest, "field": field, **statement}, separators=(",", ":"), sort_keys=True, allow_nan=False).encode()
        return self._cache._mac(redis_key, body) + body

    def _open(self, redis_key: str, digest: str, field: Any, raw: Any) -> dict[str, Any] | None:
        body = self._cache.authentic(redis_key, raw)
        if body is None:
            return None
        try:
            entry = json.loads(body)
        except (ValueError, RecursionError):
            return None
        if (not isinstance(entry, dict) or entry.pop("digest", None) != digest
                or not isinstance(entry.get("seenAt"), (int, float)) or isinstance(entry.get("seenAt"), bool)
                or not all(isinstance(v, str) for k, v in entry.items() if k != "seenAt")):
            return None
        # the field it was sealed for, and the one its content names: a value moved to another field is refused
        named = self.field(entry)
        if entry.pop("field", None) != named or _text(field) != named:
            return None
        return entry


def _text(value: Any) -> str | None:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value if isinstance(value, str) else None


def from_environment(local: SingleFlightCache) -> SingleFlightCache | SharedVerificationCache:
    """The shared cache if `webhook serve --shared-cache URL --shared-cache-key-file FILE` set
    it up (one Redis client per process, kept across policy reloads), else `local`."""
    url, key_file = os.environ.get(ENV_URL), os.environ.get(ENV_KEY_FILE)
    if not url:
        return local
    if not key_file:
        raise UsageError("the shared cache needs a key to authenticate its entries", hint="pass --shared-cache-key-file FILE")
    with _CLIENTS_LOCK:
        client = _CLIENTS.get((url, key_file))
        if client is None:
            client = _CLIENTS[(url, key_file)] = connect(url)
    return SharedVerificationCache(client, read_key_file(Path(key_file)), local)
