"""The append timeouts of the coroutines waiting on audit writers, kept by one timer per event
loop instead of one per record.

asyncio keeps every `call_later` in a heap ordered by Python-level comparisons, and a cancelled
one stays there until the heap is cleaned: at 20k records/s the per-record timer was a tenth of
the append path (bench/bench_audit.py). Appends with the same timeout expire in the order they
were made, so a queue in that order and a timer at its head do the same work; an append with a
shorter timeout than the one before it gets its own timer.

The queue is kept on the loop itself, so it lives and dies with it (a table of loops would keep
every loop it ever saw alive through the futures it holds).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Callable

_ATTRIBUTE = "_modelsign_append_deadlines"
# A timer may fire this much before its time (the loop's clock resolution and rounding): the
# records due within it are expired now rather than re-arming the timer for a few microseconds.
_EARLY_SECONDS = 0.001

Expire = Callable[[Any, float], None]  # expire(slot, timeout): the writer gives up on the slot if it is not done


def watch(loop: asyncio.AbstractEventLoop, slot: Any, timeout: float, expire: Expire) -> None:
    """Call `expire(slot, timeout)` after `timeout` unless `slot.future` is done by then."""
    deadlines = getattr(loop, _ATTRIBUTE, None)
    if deadlines is None:
        deadlines = _LoopDeadlines(loop)
        try:
            setattr(loop, _ATTRIBUTE, deadlines)
        except AttributeError:  # a loop that takes no attributes: a timer per record, as asyncio does it
            loop.call_at(loop.time() + timeout, expire, slot, timeout)
            return
    deadlines.watch(slot, timeout, expire)


class _LoopDeadlines:
    """The waiting appends of one event loop; used from that loop only."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waiting: deque[tuple[float, float, Any, Expire]] = deque()  # (deadline, timeout, slot, expire), deadlines in order
        self._armed_at: float | None = None  # when the timer that sweeps the queue fires

    def watch(self, slot: Any, timeout: float, expire: Expire) -> None:
        deadline = self._loop.time() + timeout
        waiting = self._waiting
        while waiting and waiting[0][2].future.done():  # answered: forget them (the queue stays as short as what is in flight)
            waiting.popleft()
        if waiting and deadline < waiting[-1][0]:
            self._loop.call_at(deadline, expire, slot, timeout)
            return
        waiting.append((deadline, timeout, slot, expire))
        if self._armed_at is None or deadline < self._armed_at:  # an emptied queue may still have a later timer armed
            self._arm(deadline)

    def _arm(self, when: float) -> None:
        self._armed_at = when
        self._loop.call_at(when, self._sweep, when)

    def _sweep(self, when: float) -> None:
        if when != self._armed_at:
            return  # an earlier timer replaced this one, and re-armed for what was left
        self._armed_at = None
        now = self._loop.time() + _EARLY_SECONDS
        waiting = self._waiting
        while waiting:
            deadline, timeout, slot, expire = waiting[0]
            answered = slot.future.done()
            if not answered and deadline > now:
                break
            waiting.popleft()
            if not answered:
                _expire_or_fail(slot, timeout, expire)  # never raises: one writer's failure cannot stop the sweep
        if waiting:
            self._arm(waiting[0][0])


def _expire_or_fail(slot: Any, timeout: float, expire: Expire) -> None:
    """A failing expire still answers its waiter (with the error), and the loop reports it."""
    try:
        expire(slot, timeout)
    except Exception as exc:  # noqa: BLE001 - the waiter must get an answer whatever broke
        if not slot.future.done():
            slot.future.set_exception(exc)
        slot.future.get_loop().call_exception_handler({"message": "an audit append timeout could not be applied", "exception": exc})
