"""A TTL cache with single-flight: concurrent lookups of one key share one computation.

Per process (the webhook is stateless; each worker warms its own). Entries carry their own
TTL so callers can keep negative results (unsigned, not yet verified) briefly and positive
ones longer. Failures are never cached.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Callable, Generic, Hashable, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    shared: int = 0  # lookups that waited for another caller's in-flight computation


class SingleFlightCache(Generic[K, V]):
    def __init__(self, max_entries: int = 10000, clock: Callable[[], float] = time.monotonic) -> None:
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._inflight: dict[K, Future[V]] = {}
        self._lock = threading.Lock()
        self._max_entries = max_entries
        self._clock = clock
        self.stats = CacheStats()

    def get_or_compute(self, key: K, compute: Callable[[], V], ttl: Callable[[V], float], *, wait_seconds: float | None = None) -> tuple[V, bool]:
        """(value, from_cache). `ttl(value)` says how long to keep it (0 = do not keep)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] > self._clock():
                self._entries.move_to_end(key)
                self.stats.hits += 1
                return entry[1], True
            future = self._inflight.get(key)
            leader = future is None
            if leader:
                future = self._inflight[key] = Future()
                self.stats.misses += 1
            else:
                self.stats.shared += 1
        assert future is not None
        if not leader:
            return future.result(timeout=wait_seconds), True
        try:
            value = compute()
        except BaseException as exc:
            with self._lock:
                self._inflight.pop(key, None)
            future.set_exception(exc)
            raise
        lifetime = ttl(value)
        with self._lock:  # store before leaving in-flight, so no caller recomputes in between
            self._store(key, value, lifetime)
            self._inflight.pop(key, None)
        future.set_result(value)
        return value, False

    def _drop_expired(self, now: float) -> None:
        # Least recently used first: stop at the first live entry (amortised, no full scans).
        while self._entries:
            first_key, (expires, _) = next(iter(self._entries.items()))
            if expires > now:
                break
            del self._entries[first_key]

    def put(self, key: K, value: V, ttl_seconds: float) -> None:
        """Keep `value` for `ttl_seconds` (0: do not keep)."""
        with self._lock:
            self._store(key, value, ttl_seconds)

    def _store(self, key: K, value: V, lifetime: float) -> None:
        if lifetime <= 0:
            return
        now = self._clock()
        self._entries[key] = (now + lifetime, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        self._drop_expired(now)

    def peek(self, key: K) -> V | None:
        """The cached value if fresh, counted as a hit; None (no miss counted) otherwise."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] <= self._clock():
                return None
            self._entries.move_to_end(key)
            self.stats.hits += 1
            return entry[1]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
