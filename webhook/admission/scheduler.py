"""Verification threads shared fairly between reviews.

A plain thread pool runs tasks first come, first served: three reviews of 32 slow lookups
each fill it, and a review with one quick lookup waits behind all of them. Here each review
gets a `Lane`: it runs at most `per_lane` tasks at once, and a free thread takes the next
task from the lanes in turn (round robin). A newly arrived review is therefore served at the
next free thread, however much others have queued; and no review can hold more than its
share. Tasks still queued when their review gives up (its deadline) are cancelled.
"""

from __future__ import annotations

import collections
import threading
from concurrent.futures import Future
from typing import Any, Callable, TypeVar

T = TypeVar("T")


class Lane:
    """One review's queue of tasks."""

    def __init__(self, scheduler: FairScheduler) -> None:
        self._scheduler = scheduler
        self.pending: collections.deque[tuple[Future[Any], Callable[[], Any]]] = collections.deque()
        self.running = 0

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        future: Future[T] = Future()
        self._scheduler._enqueue(self, future, lambda: fn(*args))
        return future

    def close(self) -> None:
        """Cancel what has not started (the review has its answer)."""
        self._scheduler._drop(self)


class FairScheduler:
    def __init__(self, workers: int, per_lane: int, *, name: str = "modelsign-verify") -> None:
        self.workers = workers
        self.per_lane = per_lane
        self._name = name
        self._ready: collections.deque[Lane] = collections.deque()  # lanes with pending tasks, in turn order
        self._condition = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._closed = False

    def lane(self) -> Lane:
        return Lane(self)

    def shutdown(self) -> None:
        with self._condition:
            self._closed = True
            lanes = list(self._ready)
            self._condition.notify_all()
        for lane in lanes:
            self._drop(lane)

    def _enqueue(self, lane: Lane, future: Future[Any], task: Callable[[], Any]) -> None:
        with self._condition:
            if self._closed:
                future.cancel()
                return
            lane.pending.append((future, task))
            if lane not in self._ready:
                self._ready.append(lane)
            if self._idle == 0 and len(self._threads) < self.workers:  # threads are started as needed
                thread = threading.Thread(target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True)
                self._threads.append(thread)
                thread.start()
            self._condition.notify()

    def _drop(self, lane: Lane) -> None:
        with self._condition:
            dropped = list(lane.pending)
            lane.pending.clear()
            if lane in self._ready:
                self._ready.remove(lane)
        for future, _ in dropped:
            future.cancel()

    def _next(self) -> tuple[Lane, Future[Any], Callable[[], Any]] | None:
        """The first task of the next lane in turn that is under its cap (caller holds the lock)."""
        for _ in range(len(self._ready)):
            lane = self._ready[0]
            self._ready.rotate(-1)
            if lane.running < self.per_lane:
                future, task = lane.pending.popleft()
                if not lane.pending:
                    self._ready.remove(lane)
                lane.running += 1
                return lane, future, task
        return None

    def _work(self) -> None:
        while True:
            with self._condition:
                self._idle += 1
                job = self._next()
                while job is None and not self._closed:
                    self._condition.wait()
                    job = self._next()
                self._idle -= 1
                if job is None:
                    return
            lane, future, task = job
            try:
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(task())
                    except BaseException as exc:  # handed to whoever waits on the future
                        future.set_exception(exc)
            finally:
                with self._condition:
                    lane.running -= 1
                    if lane.pending:
                        self._condition.notify()  # the lane was at its cap: its next task may run now
