"""The append timeouts of the coroutines waiting on one audit writer, kept by one timer per
event loop instead of one per record.

asyncio keeps every `call_later` in a heap ordered by Python-level comparisons, and a cancelled
one stays there until the heap is cleaned: at 20k records/s the per-record timer was a tenth of
the append path (bench/bench_audit.py). Appends with the same timeout expire in the order they
were made, so a queue in that order and a timer at its head do the same work; an append with a
shorter timeout than the one before it gets its own timer.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Callable

# A timer may fire this much before its time (the loop's clock resolution and rounding): the
# records due within it are expired now rather than re-arming the timer for a few microseconds.
_EARLY_SECONDS = 0.001


class LoopDeadlines:
    """The waiting appends of one event loop; used from that loop only."""

    def __init__(self, loop: asyncio.AbstractEventLoop, expire: Callable[[Any, float], None]) -> None:
        self._loop = loop
        self._expire = expire  # expire(slot, timeout): the writer gives up on the slot if it is not done
        self._waiting: deque[tuple[float, float, Any]] = deque()  # (deadline, timeout, slot), deadlines in order
        self._timer: asyncio.TimerHandle | None = None

    def watch(self, slot: Any, timeout: float) -> None:
        """Expire `slot` (whose `future` the caller awaits) after `timeout` unless it is done by then."""
        deadline = self._loop.time() + timeout
        waiting = self._waiting
        while waiting and waiting[0][2].future.done():  # answered: forget them (the queue stays as short as what is in flight)
            waiting.popleft()
        if waiting and deadline < waiting[-1][0]:
            self._loop.call_at(deadline, self._expire, slot, timeout)
            return
        waiting.append((deadline, timeout, slot))
        if self._timer is None:
            self._timer = self._loop.call_at(deadline, self._sweep)

    def _sweep(self) -> None:
        self._timer = None
        now = self._loop.time() + _EARLY_SECONDS
        waiting = self._waiting
        while waiting:
            deadline, timeout, slot = waiting[0]
            if not slot.future.done():
                if deadline > now:
                    break
                self._expire(slot, timeout)
            waiting.popleft()
        if waiting:
            self._timer = self._loop.call_at(waiting[0][0], self._sweep)
